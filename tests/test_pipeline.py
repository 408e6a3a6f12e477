"""The whole Snakemake pipeline, in temporary folders: dry run, real run, report, failures."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from repro import claims

from .conftest import ROOT, register, snakemake_cmd

pytestmark = pytest.mark.pipeline


def snakemake(workdir, *args, env=None, check=True, timeout=600):
    cmd = snakemake_cmd("-d", str(workdir), "--cores", "2", *args)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"snakemake failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


# ---------------------------------------------------------------- the real claims at smoke scale


# Two real claims (an identity; an empirical claim with a run-time "setup" table and two figures)
# keep `make test` within its budget. Every claim goes through the real pipeline at smoke scale in
# CI's `make slurm-check` (one SLURM job per claim), and each experiment's smoke run and figures
# are tested in-process by its family's test file.
SMOKE_CLAIMS = ["optimal-discriminator", "stacked-digits-modes"]
SMOKE_CONFIG = ["--config", "scale=smoke", f"claims={SMOKE_CLAIMS}".replace("'", "")]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The SMOKE_CLAIMS at smoke scale (and a dry run of every claim), once for the tests below."""
    wd = tmp_path_factory.mktemp("smoke")
    dry = snakemake(wd, "-n", "--config", "scale=smoke")
    real = snakemake(wd, *SMOKE_CONFIG)
    html = snakemake(wd, *SMOKE_CONFIG, "--report", str(wd / "report.html"))
    return wd, dry, real, html


def test_dry_run_plans_every_claim_and_trains_nothing(smoke_run):
    wd, dry, _, _ = smoke_run
    for cid in claims.load_all():
        assert f"results/smoke/{cid}/run.json" in dry.stdout
    assert "run_claim" in dry.stdout


def test_real_run_writes_results_tables_figures_and_report(smoke_run):
    wd, _, _, _ = smoke_run
    specs = claims.load_all()
    table = pd.read_csv(wd / "results/smoke/claims.csv").set_index("id")
    assert sorted(table.index) == sorted(specs)  # every claim listed, run or not
    # smoke never supports a verdict; an "error" here means an experiment is broken
    ran = table.loc[SMOKE_CLAIMS, "verdict"]
    assert set(ran) == {"inconclusive"}, table.loc[SMOKE_CLAIMS, ["verdict", "measured"]]
    assert set(table.drop(index=SMOKE_CLAIMS)["verdict"]) == {"not run"}
    summary = json.loads((wd / "results/smoke/stacked-digits-modes/summary.json").read_text())
    assert "digits" in summary["setup"]["data"] and "MLP" in summary["setup"]["model"]
    assert (
        "*Setup used:* data: scikit-learn's 8x8 digits"
        in (wd / "results/smoke/REPORT.md").read_text()
    )
    for cid, spec in ((c, specs[c]) for c in SMOKE_CLAIMS):
        res = wd / "results/smoke" / cid
        for name in ("run.json", "seeds.csv", "summary.json", "summary.csv", "summary.md",
                     "summary.tex"):  # fmt: skip
            assert (res / name).stat().st_size > 0, name
        record = json.loads((res / "run.json").read_text())
        assert record["status"] == "ok" and record["device"] == "cpu"
        assert {"commit", "dirty", "packages", "wall_time_s", "peak_mem_mb"} <= set(record)
        # the CPU's model and the vector instruction set of its kernels (issue 13)
        assert record["cpu"]["cpu_isa"] in ("AVX512", "AVX2", "DEFAULT", "ZVECTOR", "VSX", "SVE256")
        assert record["cpu"]["cpu_model"] in record["device_name"]
        seeds = pd.read_csv(res / "seeds.csv")
        assert list(seeds["seed"]) == spec.seeds("smoke")
        assert {"claim", "scale", "params_hash", "commit", "device"} <= set(seeds.columns)
        for fig in spec.figures:
            for ext in ("png", "pdf"):
                assert (wd / f"figures/smoke/{cid}/{fig['name']}.{ext}").stat().st_size > 1000
    md = (wd / "results/smoke/REPORT.md").read_text()
    for field in (
        "report commit",
        "dirty",
        "scale",
        "device(s)",
        "generated",
        "packages",
        "CPU(s)",
    ):
        assert field in md
    assert f"kernels {record['cpu']['cpu_isa']}" in md
    assert (wd / "report.html").stat().st_size > 10_000


def test_second_run_has_nothing_to_do(smoke_run):
    wd, _, _, _ = smoke_run
    again = snakemake(wd, "-n", *SMOKE_CONFIG)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_cli_show_json_reads_the_results(smoke_run):
    wd, _, _, _ = smoke_run
    cid = SMOKE_CLAIMS[0]
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
    ids = SMOKE_CLAIMS
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
    unrun = sorted(set(claims.load_all()) - set(SMOKE_CLAIMS))[0]
    assert not (wd / f"results/smoke/{unrun}").exists()  # claims never run are not built either
    assert f"{target}: inconclusive" in out.stdout


# ---------------------------------------------------------------- failures, with the toy claims


@pytest.mark.slow  # a deliberately failing job: fault injection, `make test-slow`
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


AB_CLAIMS = ["d-perfect", "vanishing-gradients", "minus-log-d-instability"]


def test_arjovsky_bottou_claims_read_one_shared_gan_run(tmp_path):
    """rules/shared.smk: one arjovsky_bottou_gan job, its file an input of each claim's run job."""
    cfg = ["--config", "scale=smoke", f"claims={AB_CLAIMS}".replace("'", "")]
    out = snakemake(tmp_path, "-n", *cfg)
    plan = out.stdout + out.stderr
    files = set(re.findall(r"results/smoke/_shared/arjovsky-bottou-[0-9a-f]{16}\.pt", plan))
    assert len(files) == 1, files
    (shared,) = files
    jobs = plan.split("rule ")
    assert sum(j.startswith("arjovsky_bottou_gan:") for j in jobs) == 1
    for cid in AB_CLAIMS:
        (job,) = [j for j in jobs if j.startswith("run_claim:") and f"smoke/{cid}/run.json" in j]
        assert shared in job.split("output:")[0]  # an input of the claim's run job


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


@pytest.mark.slow
def test_killed_run_leaves_nothing_trusted_and_rerun_completes(tmp_path, toy_claims, toy_env):
    for spec in toy_claims.glob("*.yaml"):
        spec.unlink()
    slow = (ROOT / "tests/fixtures/toy-mean.yaml").read_text()
    slow = slow.replace("id: toy-mean", "id: toy-slow").replace(
        "experiment: toy", "experiment: slow"
    )
    slow = slow.replace("n: 100}", "n: 30}")  # smoke: the experiment sleeps n = 30 s
    (toy_claims / "toy-slow.yaml").write_text(slow)
    register(toy_claims)
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


# ---------------------------------------------------------------- never a stale verdict (issue 9)


def slow_spec(toy_claims, seconds: int) -> list[str]:
    """Only toy-slow (sleeps `seconds` at smoke) and toy-mean in the claims folder."""
    (toy_claims / "toy-boom.yaml").unlink(missing_ok=True)
    text = (ROOT / "tests/fixtures/toy-mean.yaml").read_text()
    text = text.replace("id: toy-mean", "id: toy-slow").replace(
        "experiment: toy", "experiment: slow"
    )
    (toy_claims / "toy-slow.yaml").write_text(text.replace("n: 100}", f"n: {seconds}}}"))
    register(toy_claims)
    return ["--config", "scale=smoke", f"claims_dir={toy_claims}"]


@pytest.mark.slow
def test_interrupted_forced_rerun_never_leaves_the_old_verdict_trusted(
    tmp_path, toy_claims, toy_env
):
    from repro.records import fresh_summary

    cfg = slow_spec(toy_claims, 0)
    snakemake(tmp_path, *cfg, env=toy_env)
    res = tmp_path / "results/smoke/toy-slow"
    assert fresh_summary(res)["verdict"] == "inconclusive"
    # a forced rerun (what `repro run` does), killed while the experiment runs
    cfg = slow_spec(toy_claims, 30)
    cmd = snakemake_cmd("-d", str(tmp_path), "--cores", "2", *cfg,
                        "--forcerun", "results/smoke/toy-slow/run.json")  # fmt: skip
    proc = subprocess.Popen(cmd, env=toy_env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 90
    while (
        (res / "run.json").exists()
        or not (res / "logs/run.log").exists()
        or ("claim toy-slow" not in (res / "logs/run.log").read_text())
    ):
        assert time.time() < deadline, "the forced rerun never started"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    # Snakemake deleted run.json; the job retracted the old summary and figure before training
    # and rebuilt REPORT.md and claims.csv, so no view shows the old verdict (issue 16)
    assert not (res / "run.json").exists() and not (res / "summary.json").exists()
    assert fresh_summary(res) is None  # never shown as current
    table = pd.read_csv(tmp_path / "results/smoke/claims.csv").set_index("id")
    assert table.loc["toy-slow", "verdict"] == "not run"
    assert not (tmp_path / "figures/smoke/toy-slow/curve.png").exists()
    snakemake(tmp_path, "--unlock", *cfg, env=toy_env)
    plan = snakemake(tmp_path, "-n", *cfg, env=toy_env).stdout
    assert "results/smoke/toy-slow/run.json" in plan  # not "Nothing to be done"
    cfg = slow_spec(toy_claims, 0)
    snakemake(tmp_path, *cfg, env=toy_env)
    assert fresh_summary(res)["verdict"] == "inconclusive"


@pytest.mark.slow
def test_corrupt_run_record_is_treated_as_absent_and_the_claim_reruns(
    tmp_path, toy_claims, toy_env
):
    from repro.records import fresh_summary

    cfg = ["--config", "scale=quick", f"claims_dir={toy_claims}"]
    snakemake(tmp_path, *cfg, env=toy_env)
    record = tmp_path / "results/quick/toy-mean/run.json"
    old = json.loads(record.read_text())
    record.write_text(record.read_text()[:40])  # truncated
    assert fresh_summary(record.parent) is None
    plan = snakemake(tmp_path, "-n", *cfg, env=toy_env).stdout
    assert "results/quick/toy-mean/run.json" in plan
    snakemake(tmp_path, *cfg, env=toy_env)
    new = json.loads(record.read_text())
    assert new["status"] == "ok" and new["run_id"] != old["run_id"]
    table = pd.read_csv(tmp_path / "results/quick/claims.csv").set_index("id")
    assert table.loc["toy-mean", "verdict"] == "partial"


def test_subset_run_report_still_covers_every_claim_and_report_builds_without_all_results(
    tmp_path, toy_claims, toy_env
):
    # toy-mean gets a variant that runs at smoke scale
    # and a departure, which the HTML report must show (issue 14)
    spec = toy_claims / "toy-mean.yaml"
    departure = "departures:\n  - {what: steps, paper: 4000 steps, here: 40 steps, why: CPU time}\n"
    spec.write_text(spec.read_text().replace("departures: []\n", departure) + (
        "variants:\n  big-n:\n    description: ten times the draws\n"
        "    scales: [smoke]\n    params: {n: 1000}\n"))  # fmt: skip
    cfg = ["--config", "scale=smoke", f"claims_dir={toy_claims}", "claims=[toy-mean]"]
    snakemake(tmp_path, *cfg, env=toy_env)
    variant = json.loads((tmp_path / "results/smoke/toy-mean@big-n/run.json").read_text())
    assert variant["variant"] == "big-n" and variant["params"] == {"mu": 1.0, "n": 1000}
    assert (tmp_path / "figures/smoke/toy-mean@big-n/curve.png").exists()
    table = pd.read_csv(tmp_path / "results/smoke/claims.csv", keep_default_na=False)
    rows = {(r.id, r.variant): r.verdict for r in table.itertuples()}
    assert rows == {("toy-boom", ""): "not run", ("toy-mean", ""): "inconclusive",
                    ("toy-mean", "big-n"): "inconclusive"}  # fmt: skip
    md = (tmp_path / "results/smoke/REPORT.md").read_text()
    assert "not run: 1" in md and "*Variant `big-n`*" in md
    # the HTML report builds from the runs that have results (toy-boom has none)
    html = tmp_path / "report.html"
    snakemake(tmp_path, "--config", "scale=smoke", f"claims_dir={toy_claims}",
              "--report", str(html), env=toy_env)  # fmt: skip
    assert html.stat().st_size > 10_000
    landing = (tmp_path / ".snakemake/gan-claims-landing.rst").read_text()
    assert "toy-boom" in landing and "not run" in landing and "toy-mean @ big-n" in landing
    assert "     - departures\n" in landing and "     - inconclusive\n     - 1\n" in landing
    # the caption of toy-mean's metric table (its section) lists the departure, rendered as a
    # table (the job's params, also in the page, hold it as raw text only)
    assert "<td>40 steps</td>\\n<td>CPU time</td>" in html.read_text()


MISCONFIGURATIONS = [
    ("device=cuda", "config field 'device': 'cuda' was asked for but torch sees no CUDA"),
    ("results_dir=afile", "config field 'results_dir': 'afile' exists and is not a folder"),
    ("claims_dir=/nonexistent-claims", "field 'claims_dir': no such folder"),
    ("results_dir=afile/sub", "config field 'results_dir': 'afile' exists and is not a folder"),
    ("figures_dir=afile/sub", "config field 'figures_dir': 'afile' exists and is not a folder"),
    ("claims_dir=emptydir", "field 'claims_dir': holds no claim spec (*.yaml)"),
    ("claims=[no-such-claim]", "no-such-claim"),
    ("seeds=100000", "config field 'seeds': 100000 seeds for annealed-noise-training at "),
    ("scale=full data_dir=/nonexistent-data", "is missing: run `make data`"),
    ("scale=full data_dir=/nonexistent-data", "the config field 'data_dir' (now "),
]


def _misconfigure(tmp_path, setting: str) -> str:
    import torch

    if setting == "device=cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    (tmp_path / "afile").write_text("")
    (tmp_path / "emptydir").mkdir()
    return setting.replace("emptydir", str(tmp_path / "emptydir"))


@pytest.mark.parametrize("setting,message", MISCONFIGURATIONS)
def test_misconfiguration_is_a_start_problem_naming_the_field(
    tmp_path, monkeypatch, setting, message
):
    """repro.workflow.check_start, in-process: what the Snakefile runs before any job."""
    from repro.cli import read_config
    from repro.workflow import StartProblem, check_start

    setting = _misconfigure(tmp_path, setting)
    monkeypatch.chdir(tmp_path)  # Snakemake's -d: relative folders are read from there
    config = read_config(ROOT / "config/config.yaml")
    for item in setting.split():
        key, value = item.split("=", 1)
        config[key] = int(value) if value.isdigit() else value
    if config["claims"].startswith("["):
        config["claims"] = config["claims"].strip("[]").split(",")
    with pytest.raises(StartProblem, match=re.escape(message)):
        check_start(config, ROOT / config["claims_dir"])


@pytest.mark.parametrize(
    "setting,message",
    [MISCONFIGURATIONS[0], MISCONFIGURATIONS[3], MISCONFIGURATIONS[9]],
    ids=["device", "folder", "data"],
)
def test_misconfiguration_stops_snakemake_at_start_with_the_field_named(tmp_path, setting, message):
    """The Snakefile's wiring of check_start: one case per kind of problem, end to end."""
    setting = _misconfigure(tmp_path, setting)
    out = snakemake(tmp_path, "-n", "--config", *setting.split(), check=False)
    assert out.returncode != 0
    assert message in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- issue 16


def test_checks_changed_without_a_revision_stop_the_pipeline_at_start(
    tmp_path, toy_claims, toy_env
):
    spec = toy_claims / "toy-mean.yaml"
    spec.write_text(spec.read_text().replace("value: 0.04", "value: 0.06"))
    out = snakemake(tmp_path, "-n", "--config", f"claims_dir={toy_claims}", env=toy_env,
                    check=False)  # fmt: skip
    assert out.returncode != 0
    said = out.stdout + out.stderr
    assert f"{toy_claims / 'checks.lock'}" in said and f"{spec}: field 'checks'" in said
    assert "add a 'revisions:' entry" in said and "`repro lock`" in said
    assert "Traceback" not in said
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_changed_code_reruns_the_claim_and_a_dry_run_changes_nothing(tmp_path, toy_claims, toy_env):
    import shutil

    from .conftest import FIXTURES

    mods = tmp_path / "mods"
    mods.mkdir()
    shutil.copy(FIXTURES / "toy_experiments.py", mods / "toy_editable.py")
    env = {**toy_env, "GAN_CLAIMS_EXTRA_EXPERIMENTS": "toy=toy_editable:TOY",
           "PYTHONPATH": os.pathsep.join([str(mods), toy_env["PYTHONPATH"]])}  # fmt: skip
    (toy_claims / "toy-boom.yaml").unlink()
    cfg = ["--config", "scale=smoke", f"claims_dir={toy_claims}"]
    wd = tmp_path / "wd"
    snakemake(wd, *cfg, env=env)
    src = (mods / "toy_editable.py").read_text()
    (mods / "toy_editable.py").write_text(
        src.replace('"abs_error": abs(', '"abs_error": 10 * abs(')
    )
    (wd / "results/smoke/toy-mean/run.json").unlink()  # and a record gone, to heal
    files = lambda: {p: p.stat().st_mtime_ns for p in wd.rglob("*")  # noqa: E731
                     if p.is_file() and ".snakemake" not in p.parts}  # fmt: skip
    before = files()
    plan = snakemake(wd, "-n", *cfg, env=env).stdout
    assert "results/smoke/toy-mean/run.json" in plan
    assert files() == before  # a dry run deletes and writes nothing
    snakemake(wd, *cfg, env=env)
    record = json.loads((wd / "results/smoke/toy-mean/run.json").read_text())
    assert record["code_hash"] != "" and "<toy_editable>" in record["code_files"]
    assert "Nothing to be done" in snakemake(wd, "-n", *cfg, env=env).stdout
    # the record kept, the code changed again: its stamp forces the rerun, and that rerun is the
    # last one (a stamp that came and went made the next call rerun the claim once more: "Set
    # of input files has changed")
    (mods / "toy_editable.py").write_text(
        src.replace('"abs_error": abs(', '"abs_error": 100 * abs(')
    )
    out = snakemake(wd, *cfg, env=env)
    assert "gan-claims-retry/smoke/toy-mean.run.stamp" in out.stdout + out.stderr
    again = json.loads((wd / "results/smoke/toy-mean/run.json").read_text())
    assert again["run_id"] != record["run_id"] and again["code_hash"] != record["code_hash"]
    assert "Nothing to be done" in snakemake(wd, "-n", *cfg, env=env).stdout


@pytest.mark.slow
def test_ctrl_c_on_repro_run_stops_snakemake_cleanly(tmp_path, toy_claims, toy_env):
    """A terminal's Ctrl-C reaches repro's process group: Snakemake (in its own group) gets one
    SIGINT from repro, cancels the job and releases its lock; repro exits 130, no traceback."""
    cfg = slow_spec(toy_claims, 60)
    snake = snakemake_cmd("-d", str(tmp_path), "--cores", "2", *cfg)
    code = f"import sys; from repro.cli import call_snakemake; sys.exit(call_snakemake({snake!r}))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=toy_env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log = tmp_path / "results/smoke/toy-slow/logs/run.log"
    deadline = time.time() + 90
    while not (log.exists() and "claim toy-slow" in log.read_text()):
        assert time.time() < deadline, "the run never started"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in out
    assert not (tmp_path / "results/smoke/toy-slow/run.json").exists()
    assert not any((tmp_path / ".snakemake/locks").glob("*"))  # no stale lock
