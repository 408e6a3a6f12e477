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


def test_list_shows_kind_and_authors_not_bibtex_keys(tmp_path, capsys):
    assert main(["--workdir", str(tmp_path), "list", "--scale", "quick"]) == 0
    out = capsys.readouterr().out
    assert "Goodfellow et al. 2014" in out and "goodfellow2014generative" not in out
    line = next(x for x in out.splitlines() if x.startswith("optimal-discriminator"))
    assert "identity" in line.split()


def test_list_into_a_closed_pipe_exits_quietly():
    # `repro list | head -1`: the reader has left before the output is written (read end
    # closed first, so every write fails): no BrokenPipeError traceback, exit 0
    import os

    read, write = os.pipe()
    os.close(read)
    out = subprocess.run(
        [sys.executable, "-m", "repro.cli", "list"], stdout=write, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    os.close(write)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


def test_missing_workdir_is_an_error(tmp_path):
    out = repro("--workdir", str(tmp_path / "nope"), "list")
    assert out.returncode == 2
    assert f"error: --workdir {tmp_path / 'nope'}: no such folder" in out.stderr


def test_validate_checks_the_lock(capsys):
    assert main(["validate"]) == 0
    assert "claim specs valid" in capsys.readouterr().out
