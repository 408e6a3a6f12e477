"""Issue 16: the record never shows a verdict that its code, checks and evidence do not support.

In-process tests of the pipeline's functions on the toy experiments (tests/fixtures), smoke or
quick scale; the few that need Snakemake itself are in tests/test_pipeline.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import yaml

from repro import claims, heal, pipeline, provenance, records, report

from .conftest import FIXTURES, ROOT, register


def run_and_report(claims_dir, results, figures, cid="toy-mean", scale="quick"):
    """Run, summarise and draw one toy claim, then build the scale's report (as the rules do)."""
    spec = claims_dir / f"{cid}.yaml"
    out = results / scale / cid
    pipeline.run_claim(spec, scale, out, device="cpu")
    pipeline.summarise_claim(spec, out / "run.json")
    pipeline.plot_figure(spec, out / "run.json", "curve", figures / scale / cid / "curve.png")
    report.build_report(scale, results / scale, results, figures / scale, claims_dir)
    return out


def listed(results, scale="quick") -> dict[str, str]:
    table = pd.read_csv(results / scale / "claims.csv", keep_default_na=False)
    return {r.id + (f"@{r.variant}" if r.variant else ""): r.verdict for r in table.itertuples()}


@pytest.fixture
def editable_experiment(tmp_path, toy_claims, monkeypatch):
    """toy-mean's experiment as a module in tmp_path that a test may edit."""
    mod = tmp_path / "mods"
    mod.mkdir()
    shutil.copy(FIXTURES / "toy_experiments.py", mod / "toy_editable.py")
    monkeypatch.syspath_prepend(str(mod))
    monkeypatch.setenv("GAN_CLAIMS_EXTRA_EXPERIMENTS", "editable=toy_editable:TOY")
    spec = toy_claims / "toy-mean.yaml"
    spec.write_text(spec.read_text().replace("experiment: toy", "experiment: editable"))
    (toy_claims / "toy-boom.yaml").unlink()
    register(toy_claims)
    provenance._CODE_CACHE.clear()
    yield mod / "toy_editable.py"
    provenance._CODE_CACHE.clear()


# ---------------------------------------------------------------- 1. keyed on the code


def test_code_files_follow_repro_imports_transitively_and_nothing_else():
    files = {
        "repro/__init__.py": "",
        "repro/experiments/x.py": (
            "import numpy\nfrom repro import a\nfrom repro.experiments import E\n"
        ),
        "repro/experiments/__init__.py": "E = 1\nREGISTRY = {'x': 'repro.experiments.x:X'}\n",
        "repro/a.py": "def f():\n    from repro.b import g  # a function-level import\n",
        "repro/b.py": "from . import c\n",
        "repro/c.py": "",
        "repro/unused.py": "",
    }
    read = files.get
    got = provenance.code_files("repro.experiments.x", read)
    assert sorted(got) == sorted(set(files) - {"repro/unused.py"})
    base = provenance.hash_files(got)
    # the registry only names experiments: adding one changes no result
    more = {**files, "repro/experiments/__init__.py": "E = 1\nREGISTRY = {'x': 1, 'y': 2}\n"}
    assert provenance.hash_files(provenance.code_files("repro.experiments.x", more.get)) == base
    # a change two imports away does
    edited = {**files, "repro/c.py": "K = 2\n"}
    assert provenance.hash_files(provenance.code_files("repro.experiments.x", edited.get)) != base


def test_real_experiment_hash_covers_the_modules_it_imports():
    state = provenance.code_state("noise_bound")
    assert {
        "repro/experiments/noise_bound.py",
        "repro/experiments/family/noise.py",  # imported by the claim module
        "repro/divergences.py",  # imported by the family module: followed transitively
    } <= set(state["code_files"])
    assert "repro/pipeline.py" not in state["code_files"]
    assert len(state["code_hash"]) == 12


def test_changed_experiment_code_makes_the_result_outdated_in_every_view(
    tmp_path, toy_claims, editable_experiment, capsys
):
    results, figures = tmp_path / "results", tmp_path / "figures"
    out = run_and_report(toy_claims, results, figures)
    record = json.loads((out / "run.json").read_text())
    assert record["code_hash"] == provenance.current_code("editable")["code_hash"]
    spec = claims.load_spec(toy_claims / "toy-mean.yaml")
    assert listed(results)["toy-mean"] == "partial"
    assert records.rerun_reason(out, spec, None) is None
    # a "bug fix": the metric is now ten times larger
    src = editable_experiment.read_text()
    editable_experiment.write_text(src.replace('"abs_error": abs(', '"abs_error": 10 * abs('))
    provenance._CODE_CACHE.clear()
    summary = records.fresh_summary(out)
    assert report.verdict_label(spec, summary) == "outdated (code changed)"
    assert records.rerun_reason(out, spec, None) == "outdated (code changed)"  # Snakemake reruns
    heal.rebuild_views(results, figures, "quick", toy_claims)
    assert listed(results)["toy-mean"] == "outdated (code changed)"
    md = (results / "quick/REPORT.md").read_text()
    assert "⏳ outdated (code changed since this result)" in md
    assert f"*This result ran code `{record['code_hash']}`" in md


def test_changed_params_make_the_result_outdated(tmp_path, toy_claims):
    results, figures = tmp_path / "results", tmp_path / "figures"
    out = run_and_report(toy_claims, results, figures)
    path = toy_claims / "toy-mean.yaml"
    path.write_text(path.read_text().replace("n: 10000}", "n: 20000}"))
    spec = claims.load_spec(path)
    assert report.verdict_label(spec, records.fresh_summary(out)) == "outdated (params changed)"
    assert records.rerun_reason(out, spec, None) == "outdated (params changed)"


def test_moving_the_first_seed_makes_the_result_outdated_but_a_seed_count_override_does_not(
    tmp_path, toy_claims
):
    results, figures = tmp_path / "results", tmp_path / "figures"
    out = run_and_report(toy_claims, results, figures)
    path = toy_claims / "toy-mean.yaml"
    spec = claims.load_spec(path)
    record = json.loads((out / "run.json").read_text())
    assert record["seeds"][0] == 0
    # the config's seeds=N changes how many seeds run, not where they start: still current
    assert records.outdated_reason(spec, {**record, "seeds": [0, 1]}) is None
    data = spec.data
    data["scales"]["quick"]["first_seed"] = 10
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = claims.load_spec(path)
    n = data["scales"]["quick"]["seeds"]
    assert spec.seeds("quick") == list(range(10, 10 + n)) and spec.seeds("quick", 2) == [10, 11]
    assert report.verdict_label(spec, records.fresh_summary(out)) == "outdated (seeds changed)"
    assert records.rerun_reason(out, spec, None) == "outdated (seeds changed)"


def test_a_record_without_a_code_hash_is_outdated_and_backfill_computes_it_from_its_commit(
    tmp_path,
):
    """The committed full record was made before code hashes: backfill reads the files at the
    recorded commit, so a result whose experiment code changed since shows outdated."""
    src = ROOT / "results/full/optimal-discriminator"
    run_dir = tmp_path / "optimal-discriminator"
    shutil.copytree(src, run_dir, ignore=shutil.ignore_patterns("tables", "logs"))
    record = json.loads((run_dir / "run.json").read_text())
    expected = record.pop("code_hash")
    # a backfilled record has a source; a new one not
    for key in ("code_files", "code_hash_source"):
        record.pop(key, None)
    (run_dir / "run.json").write_text(json.dumps(record))
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("code_hash", "code_files", "code_hash_source"):
        summary["provenance"].pop(key, None)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    spec = claims.load_all()["optimal-discriminator"]
    assert report.verdict_label(spec, records.fresh_summary(run_dir)).startswith("outdated (code")
    fields = records.backfill_code_hash(run_dir)
    assert fields["code_hash"] == expected
    # the recorded commit's code equals HEAD's for this experiment (git diff agrees)
    files = provenance.current_code("optimal_discriminator")["code_files"]
    same = subprocess.run(["git", "diff", "--quiet", record["commit"], "HEAD", "--", *files],
                          cwd=ROOT).returncode == 0  # fmt: skip
    assert same == (expected == provenance.current_code("optimal_discriminator")["code_hash"])
    assert records.backfill_code_hash(run_dir) is None  # idempotent


def test_committed_full_record_is_marked_against_the_current_code():
    """Every committed full result carries the hash of the code it ran; a result whose code
    differs from the current code is shown outdated in claims.csv (and README's table)."""
    specs = claims.load_all()
    table = pd.read_csv(ROOT / "results/full/claims.csv", keep_default_na=False)
    table = table.set_index(["id", "variant"])  # a variant's run has its own row
    for run_json in sorted((ROOT / "results/full").glob("*/run.json")):
        record = json.loads(run_json.read_text())
        assert "code_hash" in record, run_json
        spec = specs[record["claim"]]
        current = provenance.current_code(spec["experiment"])["code_hash"]
        shown = table.loc[(record["claim"], record.get("variant") or ""), "verdict"]
        if record["code_hash"] != current:
            assert shown.startswith("outdated"), (
                f"{run_json}: ran code {record['code_hash']}, now {current}: rebuild the full "
                "report (python -m repro.pipeline report --scale full ...) and `repro readme`"
            )


# ---------------------------------------------------------------- 2. pre-registration


def test_lock_refuses_a_changed_hash_without_revision_also_when_the_lock_was_deleted(
    tmp_path, toy_env
):
    repo = tmp_path / "repo"
    claims_dir = repo / "claims"
    claims_dir.mkdir(parents=True)
    shutil.copy(FIXTURES / "toy-mean.yaml", claims_dir)
    lock = claims_dir / "checks.lock"
    claims.write_lock(claims.load_all(claims_dir), lock)

    def git(*args):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "register")
    spec = claims_dir / "toy-mean.yaml"
    spec.write_text(spec.read_text().replace("value: 0.04", "value: 0.06"))
    lock.unlink()
    with pytest.raises(claims.SpecError, match="differs from the registered"):
        claims.write_lock(claims.load_all(claims_dir), lock)
    assert not lock.exists()
    # a lock edited by hand to hold the new hash does not pass the pipeline's check either
    lock.write_text(f"claims:\n  toy-mean: {claims.load_spec(spec).checks_hash}\n")
    specs = claims.load_all(claims_dir)
    assert claims.lock_problems(specs, claims.read_lock(lock)) == []
    (problem,) = claims.registration_problems(specs, lock)
    assert f"{spec}: field 'checks'" in problem and "differs from the committed" in problem
    lock.unlink()
    # with a revision entry it is registered
    new = claims.load_spec(spec).checks_hash
    spec.write_text(spec.read_text() + textwrap.dedent(f"""\
        revisions:
          - date: "2026-01-01"
            checks_hash: {new}
            change: threshold 0.04 -> 0.06
            reason: a test
        """))  # fmt: skip
    assert claims.write_lock(claims.load_all(claims_dir), lock) == {"toy-mean": new}


def test_a_corrupt_lock_names_the_file(tmp_path):
    lock = tmp_path / "checks.lock"
    lock.write_text("claims: {toy-mean: [unclosed\n")
    with pytest.raises(claims.SpecError, match=f"{lock}: field '<yaml>': not valid YAML"):
        claims.read_lock(lock)
    lock.write_text("- a list\n")
    with pytest.raises(claims.SpecError, match="field 'claims'"):
        claims.read_lock(lock)


# ---------------------------------------------------------------- 3. every view agrees


def test_a_rerun_retracts_the_old_verdict_from_report_and_claims_csv_before_training(
    tmp_path, toy_claims
):
    results, figures = tmp_path / "results", tmp_path / "figures"
    out = run_and_report(toy_claims, results, figures)
    assert listed(results)["toy-mean"] == "partial"
    # a forced rerun: Snakemake deletes run.json and seeds.csv, then the job starts
    (out / "run.json").unlink()
    (out / "seeds.csv").unlink()
    removed = heal.retract(out, figures / "quick/toy-mean", toy_claims)
    assert out / "summary.json" in removed and not (figures / "quick/toy-mean/curve.png").exists()
    # ... and is killed here: every view says "not run" already
    assert listed(results)["toy-mean"] == "not run"
    assert "**not run** at this scale" in (results / "quick/REPORT.md").read_text()
    history = pd.read_csv(results / "quick/history.csv")
    assert list(history["verdict"]) == ["partial"]  # the audit trail keeps the old verdict


def test_after_a_failed_job_the_views_are_rebuilt_for_every_claim(tmp_path, toy_claims):
    results, figures = tmp_path / "results", tmp_path / "figures"
    shutil.copy(toy_claims / "toy-mean.yaml", toy_claims / "toy-two.yaml")
    two = toy_claims / "toy-two.yaml"
    two.write_text(two.read_text().replace("id: toy-mean", "id: toy-two"))
    register(toy_claims)
    run_and_report(toy_claims, results, figures, "toy-two")
    out = run_and_report(toy_claims, results, figures, "toy-mean")
    (out / "run.json").unlink()  # its rerun was killed; the report rule never ran
    assert heal.rebuild_views(results, figures, "quick", toy_claims)  # Snakefile's onerror
    assert listed(results) == {"toy-boom": "not run", "toy-mean": "not run", "toy-two": "partial"}


def test_heal_on_a_dry_run_deletes_nothing(tmp_path, toy_claims):
    results, figures = tmp_path / "results", tmp_path / "figures"
    out = run_and_report(toy_claims, results, figures)
    (out / "run.json").unlink()
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    would = heal.heal(results, figures, "quick", toy_claims, dry_run=True)
    assert out / "summary.json" in would
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before
    heal.heal(results, figures, "quick", toy_claims)
    assert not (out / "summary.json").exists()
    assert listed(results)["toy-mean"] == "not run"  # rebuilt, not deleted
    assert (results / "quick/REPORT.md").exists()


# ---------------------------------------------------------------- 4. evidence checked first


def test_seeds_csv_with_missing_rows_is_refused_and_the_claim_reruns(tmp_path, toy_claims):
    results, figures = tmp_path / "results", tmp_path / "figures"
    out = run_and_report(toy_claims, results, figures)  # quick: 3 seeds
    seeds = pd.read_csv(out / "seeds.csv")
    seeds.iloc[:2].to_csv(out / "seeds.csv", index=False)
    spec = toy_claims / "toy-mean.yaml"
    with pytest.raises(ValueError, match=r"seeds.csv: field 'seed': rows for seeds \[0, 1\], but"):
        pipeline.summarise_claim(spec, out / "run.json")
    assert "run.json ran seeds [0, 1, 2]" in records.record_problem(out)
    assert records.rerun_reason(out, claims.load_spec(spec), None)
    heal.heal(results, figures, "quick", toy_claims)
    assert not (out / "run.json").exists() and not (out / "summary.json").exists()
    assert listed(results)["toy-mean"] == "not run"


def test_a_run_record_missing_a_field_counts_as_corrupt(tmp_path, toy_claims):
    results, figures = tmp_path / "results", tmp_path / "figures"
    out = run_and_report(toy_claims, results, figures)
    record = json.loads((out / "run.json").read_text())
    del record["scale"]
    (out / "run.json").write_text(json.dumps(record))
    assert records.read_record(out / "run.json") is None
    assert records.fresh_summary(out) is None
    with pytest.raises(ValueError, match="run.json: unreadable or missing one of the fields"):
        pipeline.summarise_claim(toy_claims / "toy-mean.yaml", out / "run.json")
    heal.heal(results, figures, "quick", toy_claims)
    assert not (out / "run.json").exists()


def test_a_missing_seeds_csv_hides_the_verdict_and_makes_the_claim_rerun(tmp_path, toy_claims):
    results, figures = tmp_path / "results", tmp_path / "figures"
    out = run_and_report(toy_claims, results, figures)
    (out / "seeds.csv").unlink()
    assert records.fresh_summary(out) is None  # repro list / show: not run
    assert "seeds.csv: missing" in records.rerun_reason(
        out, claims.load_spec(toy_claims / "toy-mean.yaml"), None
    )
    heal.heal(results, figures, "quick", toy_claims)
    assert not (out / "run.json").exists() and listed(results)["toy-mean"] == "not run"


@pytest.mark.parametrize("missing", ["summary.csv", "summary.tex", "curve.pdf"])
def test_a_missing_summary_file_or_pdf_is_rebuilt(tmp_path, toy_claims, missing):
    results, figures = tmp_path / "results", tmp_path / "figures"
    out = run_and_report(toy_claims, results, figures)
    fig = figures / "quick/toy-mean"
    (fig / missing if missing.endswith(".pdf") else out / missing).unlink()
    removed = heal.heal(results, figures, "quick", toy_claims)
    # Snakemake then rebuilds the deleted target (summary.json or the PNG) and its companions
    assert removed == [fig / "curve.png" if missing.endswith(".pdf") else out / "summary.json"]
    assert (out / "run.json").exists()  # the evidence is kept: nothing retrains


# ---------------------------------------------------------------- poor cases


def test_history_with_git_conflict_markers_keeps_both_sides_rows(tmp_path):
    path = tmp_path / "history.csv"
    header = ",".join(report.HISTORY_COLUMNS)
    path.write_text(
        f"{header}\na,,h1,c1,t1,partial\n<<<<<<< HEAD\nb,,h2,c2,t2,reproduced\n=======\n"
        "c,,h3,c3,t3,not reproduced\n>>>>>>> other\n"
    )
    got = report.read_history(path)
    assert list(got["claim"]) == ["a", "b", "c"]
    assert not got.apply(lambda r: r.str.contains("<<<|>>>|===")).any().any()


def test_a_malformed_history_line_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(",".join(report.HISTORY_COLUMNS) + "\na,,h1\n")
    with pytest.raises(ValueError, match=f"{path}: line 2: 3 fields, expected 6"):
        report.read_history(path)
    path.write_text("garbage\n")
    with pytest.raises(ValueError, match=f"{path}: line 1: header must be"):
        report.read_history(path)


def test_thresholds_in_exponent_form_are_numbers(tmp_path, toy_env):
    spec = tmp_path / "toy-mean.yaml"
    spec.write_text((FIXTURES / "toy-mean.yaml").read_text().replace("value: 0.04", "value: 4e-2"))
    assert claims.load_spec(spec).checks[0]["value"] == pytest.approx(0.04)


def test_a_non_utf8_spec_names_the_file(tmp_path, toy_env):
    spec = tmp_path / "toy-mean.yaml"
    spec.write_bytes((FIXTURES / "toy-mean.yaml").read_bytes().replace(b"toy sentence", b"\xff"))
    with pytest.raises(claims.SpecError, match=f"{spec}: field '<file>': not UTF-8 text"):
        claims.load_spec(spec)


def test_seeds_below_the_specs_own_min_seeds_fail_validation(tmp_path, toy_env):
    spec = tmp_path / "toy-mean.yaml"
    text = (FIXTURES / "toy-mean.yaml").read_text()
    spec.write_text(text.replace("quick: {seeds: 3", "quick: {seeds: 2"))
    with pytest.raises(claims.SpecError, match="field 'scales.quick.seeds': 2 is below"):
        claims.load_spec(spec)


def test_a_seeds_count_far_beyond_the_scale_is_refused_with_an_estimate(tmp_path, toy_claims):
    results, figures = tmp_path / "results", tmp_path / "figures"
    run_and_report(toy_claims, results, figures)
    spec = claims.load_spec(toy_claims / "toy-mean.yaml")
    assert pipeline.seeds_budget_problem(spec, "quick", 30, results) is None
    said = pipeline.seeds_budget_problem(spec, "quick", 100000, results)
    assert said.startswith("config field 'seeds': 100000 seeds for toy-mean at scale quick")
    assert " h and " in said and "GiB" in said and "at most 30" in said


def test_repro_run_refuses_zero_cores():
    out = subprocess.run([sys.executable, "-m", "repro.cli", "run", "noise-bound", "--cores", "0"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2 and "'0': give a positive integer or 'all'" in out.stderr


@pytest.mark.parametrize("to_group", [False, True])
def test_ctrl_c_is_forwarded_to_snakemake_once_and_exits_130(tmp_path, to_group):
    """SIGINT to `repro run` alone, or to its process group (a terminal's Ctrl-C): Snakemake gets
    exactly one SIGINT (not SIGKILL), is waited for, and the command exits 130 without a
    traceback."""
    import os

    flag = tmp_path / "child-got-sigint"
    child = (
        "import signal, sys, time, pathlib\n"
        "def stop(*_):\n"
        f"    p = pathlib.Path({str(flag)!r}); p.write_text(p.read_text() + 'x' if p.exists()"
        " else 'x'); time.sleep(1); sys.exit(1)\n"
        "signal.signal(signal.SIGINT, stop)\n"
        "print('ready', flush=True); time.sleep(30)\n"
    )
    parent = (
        "import sys; from repro.cli import call_snakemake\n"
        f"sys.exit(call_snakemake([sys.executable, '-c', {child!r}]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "ready"
    if to_group:
        os.killpg(proc.pid, subprocess.signal.SIGINT)
    else:
        proc.send_signal(subprocess.signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err
    assert flag.read_text() == "x"  # one SIGINT, and the child was waited for


@pytest.mark.parametrize("corrupt", [False, True])
def test_dataset_auto_says_why_it_fell_back_to_the_digits(tmp_path, monkeypatch, corrupt):
    from repro import data
    from repro.experiments.stacked_digits_modes import auto_note

    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    if corrupt:
        (tmp_path / data.FASHION_MNIST_SUBDIR).mkdir()
        for name in data.FASHION_MNIST_SHA256:
            (tmp_path / data.FASHION_MNIST_SUBDIR / name).write_bytes(b"not gzip")
    note = auto_note(data.resolve_dataset("auto"))
    assert "fell back to the digits" in note and "absent" not in note
    assert ("has SHA-256" if corrupt else "is missing") in note


def test_a_config_yaml_error_names_file_and_line(tmp_path, monkeypatch, capsys):
    from repro import cli

    bad = tmp_path / "config.yaml"
    bad.write_text("scale: quick\nseeds: [3\n")
    with pytest.raises(cli.ConfigError, match=rf"{bad}: line \d+: not valid YAML"):
        cli.read_config(bad)
    monkeypatch.setattr(cli, "CONFIG", bad)
    assert cli.main(["list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: line") and "Traceback" not in err


def test_repro_data_without_apt_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from repro import cli

    monkeypatch.setenv("GAN_CLAIMS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get, no dpkg
    assert cli.main(["data"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: repro data: `apt-get download dataset-fashion-mnist` failed")
    assert "place the files" in err and "\n" not in err


def test_the_report_names_a_missing_summary_file_or_pdf(tmp_path, toy_claims):
    results, figures = tmp_path / "results", tmp_path / "figures"
    out = run_and_report(toy_claims, results, figures)
    fig = figures / "quick/toy-mean"
    assert records.missing_outputs(out, fig, ["curve"]) == []
    (out / "summary.csv").unlink()
    (fig / "curve.pdf").unlink()
    assert records.missing_outputs(out, fig, ["curve"]) == [out / "summary.csv", fig / "curve.pdf"]


def test_summarising_a_run_that_lacks_a_checked_metric_names_it_and_writes_nothing(
    tmp_path, toy_claims
):
    """A run made before a check's metric existed: one message naming the run, the metric, the
    check and the command that reruns it; the old summary stays as it was (no KeyError)."""
    results, figures = tmp_path / "results", tmp_path / "figures"
    out = run_and_report(toy_claims, results, figures)
    seeds = pd.read_csv(out / "seeds.csv")
    seeds.drop(columns=["abs_error"]).to_csv(out / "seeds.csv", index=False)
    before = (out / "summary.json").read_bytes()
    spec = toy_claims / "toy-mean.yaml"
    with pytest.raises(pipeline.StaleRunError) as err:
        pipeline.summarise_claim(spec, out / "run.json")
    said = str(err.value)
    assert f"{out / 'run.json'}: the run has no metric 'abs_error'" in said
    assert f"check 'close' of {spec}" in said and "`repro run toy-mean --scale quick`" in said
    assert (out / "summary.json").read_bytes() == before
    cli = subprocess.run(
        [sys.executable, "-m", "repro.pipeline", "summarise", str(spec), str(out / "run.json")],
        capture_output=True, text=True,  # toy_env put the toy experiments in os.environ
    )  # fmt: skip
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert "the run has no metric 'abs_error'" in cli.stderr
