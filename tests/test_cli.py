"""The `repro` command line: list, show, run and validate, and their errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import yaml

from repro import claims, cli, pipeline
from repro.cli import main

from .conftest import FIXTURES


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


def _toy_means(seeds, n=10_000):
    """The toy experiment's per-seed sample means (tests/fixtures/toy_experiments.py)."""
    return [float(np.random.default_rng(s).normal(1.0, 1.0, size=n).mean()) for s in seeds]


def test_show_prints_premises_as_the_verdict_used_them(tmp_path, toy_env, monkeypatch, capsys):
    """Premises are judged per seed: `show` says how many seeds met each, every seed's value,
    and which seeds vote, not one aggregate."""
    data = yaml.safe_load((FIXTURES / "toy-mean.yaml").read_text())
    data["premises"] = [{"id": "above_mu", "metric": "mean", "op": ">", "value": 1.0,
                         "description": "d", "basis": "b"}]  # fmt: skip
    folder = tmp_path / "claims"
    folder.mkdir()
    path = folder / "toy-mean.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "results" / "quick" / "toy-mean"
    pipeline.run_claim(path, "quick", out, device="cpu", n_seeds=5)
    summary = pipeline.summarise_claim(path, out / "run.json")
    means = _toy_means(range(5))
    met = [m > 1.0 for m in means]
    assert met == [True, False, True, False, True]  # the closed-form draws of seeds 0-4
    assert summary["verdict"] == "partial"
    assert summary["reason"] == "1 of 2 checks hold (on the 3 of 5 seeds that met every premise)"
    monkeypatch.setattr(cli, "load_all", lambda: {"toy-mean": claims.load_spec(path)})

    assert main(["--workdir", str(tmp_path), "show", "toy-mean", "--scale", "quick"]) == 0
    shown = capsys.readouterr().out
    assert "  premise above_mu: mean (per seed: > 1): 3 of 5 seeds met it\n" in shown
    marks = ["✓" if ok else "✗" for ok in met]
    per_seed = ", ".join(f"{s}: {m:.4g} {marks[s]}" for s, m in enumerate(means))
    assert f"    per seed (seed: value, met): {per_seed}\n" in shown
    assert "  seeds that vote in the checks (met every premise): 0, 2, 4 (3 of 5)\n" in shown
    errors = [abs(m - 1.0) for m in means]
    worst = max(errors[s] for s in (0, 2, 4))  # the check's max over the voting seeds only
    assert f"  check close: abs_error: measured {worst:.4g} over 3 voting seed(s) (max < 0.04)" in (
        shown
    )
    assert "measured 3 (" not in shown  # the premise is not shown as one aggregate

    # many seeds: their range and the seeds that missed the premise
    monkeypatch.setattr(cli, "LIST_SEEDS", 2)
    assert main(["--workdir", str(tmp_path), "show", "toy-mean", "--scale", "quick"]) == 0
    shown = capsys.readouterr().out
    span = f"{min(means):.4g} to {max(means):.4g}"
    assert f"per-seed values {span} (range); missed by seeds 1, 3" in shown

    assert main(["--workdir", str(tmp_path), "show", "toy-mean", "--scale", "quick", "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert as_json["voting_seeds"] == [0, 2, 4]
    assert as_json["premises"][0]["met"] == met


def test_show_says_when_a_premise_was_judged_on_an_aggregate():
    """A summary from before per-seed premises: its premise is shown as what it was."""
    old = {"seeds": [0, 1, 2], "premises": [
        {"id": "d_confident", "metric": "d_fake", "aggregate": "median", "op": "<=", "value": 0.01,
         "rule": "median <= 0.01", "measured": 0.008, "passed": True}]}  # fmt: skip
    (line,) = cli.premise_lines(old)
    assert line == (
        "premise d_confident: d_fake: measured 0.008 (median <= 0.01) -> holds (judged on an "
        "aggregate over seeds: rerun for per-seed premises)"
    )
