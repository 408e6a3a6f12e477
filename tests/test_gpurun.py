"""The prepared GPU run (repro.gpurun), dry-run on the CPU at smoke scale as CI can."""

from __future__ import annotations

import json
import os
import random
import tarfile

import pytest

from repro import experiments, gpurun

CLAIMS = ["optimal-discriminator", "noise-bound"]


@pytest.mark.pipeline
@pytest.mark.slow  # a real Snakemake run (~40 s): `make test-slow`, which CI runs
def test_cpu_smoke_run_self_tests_runs_the_pipeline_and_packs_the_record(tmp_path):
    out = tmp_path / "out"
    rc = gpurun.main(
        ["--scale", "smoke", "--device", "cpu", "--jobs", "2", "--time-limit", "600",
         "--claims", *CLAIMS, "--out", str(out), "--workdir", str(tmp_path / "wd")]
    )  # fmt: skip
    assert rc == 0
    report = json.loads((out / "gpurun.json").read_text())
    assert [r["claim"] for r in report["self_test"]] == CLAIMS
    assert all(r["ok"] for r in report["self_test"])
    assert report["pipeline"]["rc"] == 0 and not report["pipeline"]["stopped_at_limit"]
    whole = tmp_path / "record.tar.gz"
    whole.write_bytes(b"".join((out / p).read_bytes() for p in report["parts"]))
    with tarfile.open(whole) as tar:
        names = set(tar.getnames())
    for cid in CLAIMS:
        assert f"results/smoke/{cid}/run.json" in names
    assert "results/smoke/REPORT.md" in names


def _raising(message: str, only_on_graphs: bool = False):
    """experiments.get, with optimal-discriminator raising ``message`` (with ``only_on_graphs``,
    only on the static-step path; eagerly it runs as usual)."""
    from repro.engine import use_graphs

    real_get = experiments.get

    def get(name):
        exp = real_get(name)
        if name != "optimal_discriminator":
            return exp

        def run(params, seeds, device):
            if not only_on_graphs or use_graphs(device):
                raise RuntimeError(message)
            return exp.run(params, seeds, device)

        return experiments.Experiment(
            run=run, params=exp.params, metrics=exp.metrics, figures=exp.figures
        )

    return get


def test_a_failing_self_test_stops_before_the_pipeline(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "get", _raising("CUDA kernel failed"))
    monkeypatch.setattr(gpurun, "run_pipeline", lambda *a, **k: pytest.fail("pipeline ran"))
    out = tmp_path / "out"
    rc = gpurun.main(
        ["--scale", "smoke", "--device", "cpu", "--claims", *CLAIMS, "--out", str(out)]
    )
    assert rc == gpurun.EXIT_SELF_TEST
    report = json.loads((out / "gpurun.json").read_text())
    assert report["stopped"] == "self-test failed: optimal-discriminator"
    assert "CUDA kernel failed" in report["self_test"][0]["error"]


def test_pack_splits_into_parts_that_reassemble(tmp_path):
    root = tmp_path / "repo"
    (root / "results/full/x").mkdir(parents=True)
    blob = random.Random(0).randbytes(2**16)  # incompressible: several parts of 10 KiB
    (root / "results/full/x/blob.bin").write_bytes(blob)
    (root / "figures/full").mkdir(parents=True)
    (root / "figures/full/f.png").write_bytes(b"png")
    parts = gpurun.pack("full", tmp_path / "out", part_mb=0.01, root=root)
    assert len(parts) > 1 and all(p.stat().st_size <= 0.01 * 2**20 for p in parts)
    whole = tmp_path / "all.tar.gz"
    whole.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(whole) as tar:
        assert tar.extractfile("results/full/x/blob.bin").read() == blob
        assert "figures/full/f.png" in tar.getnames()


def _predicted(tmp_path, rows):
    path = tmp_path / "predicted.csv"
    lines = ["claim,variant,predicted_h100_s"] + [f"{c},{v},{s}" for c, v, s in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_plan_takes_the_shortest_claims_that_fit_summing_their_variants(tmp_path):
    path = _predicted(
        tmp_path,
        [("a", "", 100), ("b", "", 50), ("b", "big", 300), ("c", "", 200), ("d", "", 30),
         ("total", "", 680)],
    )  # fmt: skip
    chosen, skipped = gpurun.plan(path, 335.0, ["a", "b", "c", "d", "e"])
    # costs: d 30, a 100, c 200, b 350 (50 + its variant); shortest first within 335 s: d, a, c
    assert chosen == ["a", "c", "d"]  # in the order given
    assert [s["claim"] for s in skipped] == ["b", "e"]
    assert skipped[0]["predicted_s"] == 350 and "5.0 s of 335 left" in skipped[0]["why"]
    assert skipped[1]["predicted_s"] is None and "no row in" in skipped[1]["why"]
    # nothing fits: nothing chosen; everything fits: all of them
    assert gpurun.plan(path, 10.0, ["a", "d"])[0] == []
    assert gpurun.plan(path, 1e9, ["a", "b", "c", "d"])[0] == ["a", "b", "c", "d"]


def test_the_committed_predictions_cover_every_run_at_full_and_the_plan_fits_480_s():
    """profiles/gpu/predicted_h100.csv has one row per run the full scale makes (each claim and
    each variant declared for full), so the plan skips no claim for want of a prediction."""
    import csv

    from repro import claims

    specs = claims.load_all()
    with open(gpurun.DEFAULT_PREDICTED, newline="") as f:
        rows = {(r["claim"], r["variant"]) for r in csv.DictReader(f)}
    want = {(c, "") for c in specs} | {(c, v) for c in specs for v in specs[c].variants_at("full")}
    assert rows == want
    chosen, skipped = gpurun.plan(gpurun.DEFAULT_PREDICTED, 480.0, sorted(specs))
    assert chosen and all(s["predicted_s"] is not None for s in skipped)
    assert set(chosen) | {s["claim"] for s in skipped} == set(specs)


def test_a_full_run_starts_only_the_planned_claims_and_records_the_skipped(tmp_path, monkeypatch):
    path = _predicted(tmp_path, [("optimal-discriminator", "", 10), ("noise-bound", "", 1000)])
    monkeypatch.setattr(
        gpurun, "self_test", lambda dev, ids: [{"claim": c, "ok": True} for c in ids]
    )
    started = {}

    def pipeline(scale, device, jobs, limit, ids, dry_run, workdir):
        started.update(scale=scale, ids=ids, limit=limit)
        return {"rc": 0}

    monkeypatch.setattr(gpurun, "run_pipeline", pipeline)
    monkeypatch.setattr(gpurun, "pack", lambda *a, **k: [])
    out = tmp_path / "out"
    rc = gpurun.main(
        ["--scale", "full", "--device", "cpu", "--claims", *CLAIMS, "--out", str(out),
         "--predicted", str(path), "--time-limit", "480"]
    )  # fmt: skip
    assert rc == 0 and started["scale"] == "full" and started["ids"] == ["optimal-discriminator"]
    report = json.loads((out / "gpurun.json").read_text())
    assert report["plan"]["chosen"] == ["optimal-discriminator"]
    assert [s["claim"] for s in report["plan"]["skipped"]] == ["noise-bound"]


def test_graph_check_on_the_cpu_runs_both_paths_and_they_agree_bitwise():
    """Off CUDA the static path runs eagerly on its static buffers: the same numbers."""
    row = gpurun.graph_check("cpu", steps=4, n_seeds=3)
    assert row["device"] == "cpu" and not row["captured"]
    assert row["bitwise_equal"] and row["max_abs_diff"] == 0.0
    assert row["eager_s_per_step"] > 0 and row["graphs_s_per_step"] > 0


def test_a_claim_failing_only_on_graphs_runs_the_whole_record_eagerly(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_GRAPHS", "1")  # the CPU's stand-in for CUDA's default
    monkeypatch.setattr(
        experiments,
        "get",
        _raising("operation not permitted when stream is capturing", only_on_graphs=True),
    )
    seen = {}

    def pipeline(scale, device, jobs, limit, ids, dry_run, workdir):
        seen.update(graphs=os.environ.get("REPRO_GRAPHS"), ids=ids)  # what the jobs inherit
        return {"rc": 0}

    monkeypatch.setattr(gpurun, "run_pipeline", pipeline)
    monkeypatch.setattr(gpurun, "pack", lambda *a, **k: [])
    out = tmp_path / "out"
    rc = gpurun.main(["--scale", "full", "--device", "cpu", "--claims", *CLAIMS, "--out", str(out)])
    assert rc == 0 and seen["graphs"] == "0"
    report = json.loads((out / "gpurun.json").read_text())
    fallback = report["graphs_fallback"]
    assert fallback["failed_on_graphs"] == ["optimal-discriminator"]
    assert [r["ok"] for r in fallback["eager_self_test"]] == [True]
    assert report["graphs_on"] is False
    assert report["plan"]["predicted"] == str(gpurun.DEFAULT_PREDICTED_EAGER)


def test_a_claim_failing_eagerly_too_stops_before_the_pipeline(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_GRAPHS", "1")
    monkeypatch.setattr(
        experiments, "get", _raising("operation not permitted when stream is capturing")
    )
    monkeypatch.setattr(gpurun, "run_pipeline", lambda *a, **k: pytest.fail("pipeline ran"))
    out = tmp_path / "out"
    rc = gpurun.main(
        ["--scale", "smoke", "--device", "cpu", "--claims", *CLAIMS, "--out", str(out)]
    )
    assert rc == gpurun.EXIT_SELF_TEST
    report = json.loads((out / "gpurun.json").read_text())
    assert report["graphs_fallback"]["failed_on_graphs"] == ["optimal-discriminator"]
    assert report["stopped"] == "self-test failed: optimal-discriminator"
