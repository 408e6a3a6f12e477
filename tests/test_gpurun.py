"""The prepared GPU run (repro.gpurun), dry-run on the CPU at smoke scale as CI can."""

from __future__ import annotations

import json
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


def test_a_failing_self_test_stops_before_the_pipeline(tmp_path, monkeypatch):
    real_get = experiments.get

    def broken(name):
        exp = real_get(name)
        if name != "optimal_discriminator":
            return exp

        def boom(params, seeds, device):
            raise RuntimeError("CUDA kernel failed")

        return experiments.Experiment(
            run=boom, params=exp.params, metrics=exp.metrics, figures=exp.figures
        )

    monkeypatch.setattr(experiments, "get", broken)
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
