"""The `repro` command line: list, show, run and validate, and their errors."""

from __future__ import annotations

import json
import subprocess
import sys

from repro import claims
from repro.cli import main


def repro(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "repro.cli", *args], capture_output=True, text=True
    )


def test_list_prints_every_claim(tmp_path, capsys):
    assert main(["--workdir", str(tmp_path), "list", "--scale", "quick"]) == 0
    out = capsys.readouterr().out
    for cid in claims.load_all():
        assert cid in out
    assert "not run" in out


def test_run_with_unknown_id_lists_valid_ids_and_exits_nonzero():
    out = repro("run", "no-such-claim", "--scale", "smoke")
    assert out.returncode == 2
    assert "unknown claim id(s): no-such-claim; valid ids:" in out.stderr
    for cid in claims.load_all():
        assert cid in out.stderr


def test_invalid_scale_is_rejected_with_allowed_values():
    out = repro("list", "--scale", "huge")
    assert out.returncode == 2
    assert "invalid choice: 'huge' (choose from 'smoke', 'quick', 'full')" in out.stderr


def test_show_unrun_claim(tmp_path, capsys):
    cid = sorted(claims.load_all())[0]
    assert main(["--workdir", str(tmp_path), "show", cid, "--scale", "full"]) == 0
    assert "not run" in capsys.readouterr().out
    assert main(["--workdir", str(tmp_path), "show", cid, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == cid and shown["verdict"] == "not run" and shown["spec"]["id"] == cid


def test_validate_counts_the_specs(capsys):
    assert main(["validate"]) == 0
    assert f"{len(claims.load_all())} claim specs valid" in capsys.readouterr().out
