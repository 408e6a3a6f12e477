"""The whole Snakemake pipeline, in temporary folders: dry run, real run, report, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from repro import claims

from .conftest import ROOT, snakemake_cmd

pytestmark = pytest.mark.pipeline


def snakemake(workdir, *args, env=None, check=True, timeout=600):
    cmd = snakemake_cmd("-d", str(workdir), "--cores", "2", *args)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"snakemake failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


# ---------------------------------------------------------------- the real claims at smoke scale


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """Every real claim at smoke scale, once for the tests below."""
    wd = tmp_path_factory.mktemp("smoke")
    dry = snakemake(wd, "-n", "--config", "scale=smoke")
    real = snakemake(wd, "--config", "scale=smoke")
    html = snakemake(wd, "--config", "scale=smoke", "--report", str(wd / "report.html"))
    return wd, dry, real, html


def test_dry_run_plans_every_claim_and_trains_nothing(smoke_run):
    wd, dry, _, _ = smoke_run
    for cid in claims.load_all():
        assert f"results/smoke/{cid}/run.json" in dry.stdout
    assert "run_claim" in dry.stdout


def test_real_run_writes_results_tables_figures_and_report(smoke_run):
    wd, _, _, _ = smoke_run
    specs = claims.load_all()
    table = pd.read_csv(wd / "results/smoke/claims.csv")
    assert sorted(table["id"]) == sorted(specs)
    # smoke never supports a verdict; an "error" here means an experiment is broken
    assert set(table["verdict"]) == {"inconclusive"}, table[["id", "verdict", "measured"]]
    for cid, spec in specs.items():
        res = wd / "results/smoke" / cid
        for name in ("run.json", "seeds.csv", "summary.json", "summary.csv", "summary.md",
                     "summary.tex"):  # fmt: skip
            assert (res / name).stat().st_size > 0, name
        record = json.loads((res / "run.json").read_text())
        assert record["status"] == "ok" and record["device"] == "cpu"
        assert {"commit", "dirty", "packages", "wall_time_s", "peak_mem_mb"} <= set(record)
        seeds = pd.read_csv(res / "seeds.csv")
        assert list(seeds["seed"]) == spec.seeds("smoke")
        assert {"claim", "scale", "params_hash", "commit", "device"} <= set(seeds.columns)
        for fig in spec.figures:
            for ext in ("png", "pdf"):
                assert (wd / f"figures/smoke/{cid}/{fig['name']}.{ext}").stat().st_size > 1000
    md = (wd / "results/smoke/REPORT.md").read_text()
    for field in ("report commit", "dirty", "scale", "device(s)", "generated", "packages"):
        assert field in md
    assert (wd / "report.html").stat().st_size > 10_000


def test_second_run_has_nothing_to_do(smoke_run):
    wd, _, _, _ = smoke_run
    again = snakemake(wd, "-n", "--config", "scale=smoke")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_cli_show_json_reads_the_results(smoke_run):
    wd, _, _, _ = smoke_run
    cid = sorted(claims.load_all())[0]
    out = subprocess.run(
        [sys.executable, "-m", "repro.cli", "--workdir", str(wd), "show", cid,
         "--scale", "smoke", "--json"],  # fmt: skip
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    shown = json.loads(out.stdout)
    assert shown["id"] == cid and shown["scale"] == "smoke"
    assert shown["verdict"] == "inconclusive"
    assert shown["checks"] and {"measured", "passed"} <= set(shown["checks"][0])
    assert shown["provenance"]["device"] == "cpu"


def test_cli_run_reruns_just_the_named_claim(smoke_run):
    wd, _, _, _ = smoke_run
    ids = sorted(claims.load_all())
    target, other = ids[0], ids[1]
    before = {c: json.loads((wd / f"results/smoke/{c}/run.json").read_text()) for c in ids[:2]}
    out = subprocess.run(
        [sys.executable, "-m", "repro.cli", "--workdir", str(wd), "run", target, "--scale"]
        + ["smoke"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    after = {c: json.loads((wd / f"results/smoke/{c}/run.json").read_text()) for c in ids[:2]}
    assert after[target]["started"] > before[target]["started"]  # rerun
    assert after[other] == before[other]  # untouched
    assert f"{target}: inconclusive" in out.stdout


# ---------------------------------------------------------------- failures, with the toy claims


def test_failing_experiment_fails_only_its_claim_and_is_retried(tmp_path, toy_claims, toy_env):
    cfg = ["--config", "scale=quick", f"claims_dir={toy_claims}"]
    snakemake(tmp_path, *cfg, env=toy_env)
    table = pd.read_csv(tmp_path / "results/quick/claims.csv").set_index("id")
    assert table.loc["toy-boom", "verdict"] == "error"
    assert "deliberate failure" in table.loc["toy-boom", "measured"]
    assert table.loc["toy-mean", "verdict"] == "partial"  # 1 of its 2 checks can hold
    log = (tmp_path / "results/quick/toy-boom/logs/run.log").read_text()
    assert "RuntimeError: deliberate failure" in log
    # the error record is not trusted: the next run retries that claim, and only that one
    plan = snakemake(tmp_path, "-n", *cfg, env=toy_env).stdout
    assert "results/quick/toy-boom/run.json" in plan
    assert "results/quick/toy-mean/run.json" not in plan


def test_malformed_spec_stops_before_any_job(tmp_path, toy_claims, toy_env):
    bad = (toy_claims / "toy-mean.yaml").read_text().replace('op: "<"', 'op: "=>"', 1)
    (toy_claims / "toy-mean.yaml").write_text(bad)
    out = snakemake(tmp_path, "--config", f"claims_dir={toy_claims}", env=toy_env, check=False)
    assert out.returncode != 0
    assert f"{toy_claims / 'toy-mean.yaml'}: field 'checks[0].op'" in out.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "setting,allowed",
    [
        ("scale=huge", "'huge' is not one of ['smoke', 'quick', 'full']"),
        ("device=tpu", "'tpu' is not one of ['auto', 'cpu', 'cuda']"),
        ("threads=0", "0 is less than the minimum of 1"),
    ],
)
def test_invalid_config_value_is_rejected_with_allowed_values(tmp_path, setting, allowed):
    out = snakemake(tmp_path, "-n", "--config", setting, check=False)
    assert out.returncode != 0
    assert allowed in out.stdout + out.stderr


def test_killed_run_leaves_nothing_trusted_and_rerun_completes(tmp_path, toy_claims, toy_env):
    for spec in toy_claims.glob("*.yaml"):
        spec.unlink()
    slow = (ROOT / "tests/fixtures/toy-mean.yaml").read_text()
    slow = slow.replace("id: toy-mean", "id: toy-slow").replace(
        "experiment: toy", "experiment: slow"
    )
    slow = slow.replace("n: 100}", "n: 30}")  # smoke: the experiment sleeps n = 30 s
    (toy_claims / "toy-slow.yaml").write_text(slow)
    cfg = ["--config", "scale=smoke", f"claims_dir={toy_claims}"]
    cmd = snakemake_cmd("-d", str(tmp_path), "--cores", "2", *cfg)
    proc = subprocess.Popen(cmd, env=toy_env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    log = tmp_path / "results/smoke/toy-slow/logs/run.log"
    deadline = time.time() + 60
    while not (log.exists() and "claim toy-slow" in log.read_text()):
        assert time.time() < deadline, "the run never started"
        time.sleep(0.5)
    # the hardest kill (power loss): nobody cleans up, the job dies mid-experiment, and only the
    # stale lock must be lifted by hand (README); Ctrl-C is gentler (Snakemake cleans up)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (tmp_path / "results/smoke/toy-slow/run.json").exists()
    snakemake(tmp_path, "--unlock", *cfg, env=toy_env)
    slow = slow.replace("n: 30}", "n: 0}")
    (toy_claims / "toy-slow.yaml").write_text(slow)
    snakemake(tmp_path, *cfg, env=toy_env)
    record = json.loads((tmp_path / "results/smoke/toy-slow/run.json").read_text())
    assert record["status"] == "ok"
