"""The prepared GPU run (issue 15, item 7): self-test, the full record side by side, packed.

On a bare GPU machine that has PyTorch but no package registry, ``profiles/gpu/run.sh`` installs
the carried wheels (snakemake, POT, ...) and calls this module, which

1. **self-tests** the device: every claim's experiment at smoke scale, in this process, on the
   device (1 seed; a few seconds each), with each update a captured CUDA graph where the claim
   supports it (``repro.engine.use_graphs``). A claim that raises there is tried again eagerly;
   if it passes, the whole record runs eagerly ($REPRO_GRAPHS=0, planned with
   ``predicted_h100_eager.csv``) and ``gpurun.json`` says why (``graphs_fallback``). If one still
   raises, it stops before the full run (exit 3), so no GPU minutes go to a broken build; then
   ``graph_check`` trains a batched GAN eagerly and on captured CUDA graphs and records in
   ``gpurun.json`` whether they agree bit for bit and the seconds per step of each (never fatal);
2. **plans** which claims fit: with a table of predicted one-H100 seconds per run
   (``--predicted``, default ``profiles/gpu/predicted_h100.csv``, the columns of ``make
   budget``'s ``bench/out/budget.csv``), the claims whose runs' predicted seconds add up to at
   most the time left, shortest first; the others are skipped and listed with their prediction
   in ``gpurun.json`` (a claim that cannot finish is not started, so no job is killed midway);
3. runs **the full record** through the real pipeline (``snakemake --config scale=full
   device=...``), ``--jobs`` claims side by side on the one device, each job with its own CUDA
   context; it stops Snakemake at ``--time-limit`` seconds (results are written atomically per
   claim, so whatever finished is a valid record and the rest shows "not run");
4. **packs** ``results/{scale}`` and ``figures/{scale}`` into ``record.tar.gz`` split into parts
   of at most ``--part-mb`` MiB (the device tool returns at most 8 files of 16 MiB), plus
   ``gpurun.json`` (what ran, how long, the self-test's per-claim seconds).

Unpack here with ``cat record.tar.gz.part* | tar xz`` in the repository root.

CI runs it on the CPU at smoke scale on two claims (tests/test_gpurun.py); ``--dry-run`` only
plans the pipeline (``snakemake -n``) after the self-test.
"""

from __future__ import annotations

import argparse
import io as _io
import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXIT_SELF_TEST = 3


def self_test(device: str, claim_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Every (selected) claim's experiment at smoke scale on ``device``, one seed, in-process.

    Returns one row per claim: id, seconds, ok, and the error or the non-finite metrics."""
    import numpy as np
    import torch

    from repro import claims, experiments, provenance

    dev = provenance.pick_device(device)
    specs = claims.load_all()
    rows = []
    for cid in claim_ids or sorted(specs):
        spec = specs[cid]
        t0 = time.perf_counter()
        row: dict[str, Any] = {"claim": cid, "device": str(dev)}
        try:
            tables = experiments.get(spec["experiment"]).run(spec.params("smoke"), [0], dev)
            checked = [c["metric"] for c in [*spec.checks, *spec.premises]]
            values = tables["seeds"][checked].to_numpy(dtype=float)
            bad = [m for m, v in zip(checked, values[0], strict=True) if not np.isfinite(v)]
            # at smoke scale a metric may be NaN by design (too short a run); only raising is
            # fatal, a NaN is reported
            row.update(ok=True, non_finite=bad)
        except Exception as e:  # noqa: BLE001 - the self-test reports every failure
            row.update(ok=False, error=f"{type(e).__name__}: {e}")
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        rows.append(row)
        print(f"self-test {cid}: {'ok' if row['ok'] else row['error']} ({row['seconds']} s)")
    return rows


def graph_check(device: str, steps: int = 200, n_seeds: int = 64) -> dict[str, Any]:
    """The engine's static-step path (``gan(graphs=True)``: captured CUDA graphs on CUDA) against
    eager on ``device``: a batched ring GAN (MLPs 2-64-64, Adam without fusing, k = 1, batch 64)
    trained ``steps`` G steps both ways from the same start. Returns whether the parameters and
    losses agree bit for bit, their largest difference, whether a graph was captured, and the
    seconds per G step of each path (warm-up and capture included). Informational: the
    claims' own capture is tested by the self-test; this measures, on the first GPU lent, that
    capture gives eager's numbers and what it saves (the budget's replay constant)."""
    import torch

    from repro import provenance
    from repro.data import sample_ring
    from repro.engine import Stream, gan, optim
    from repro.losses import get_objective
    from repro.nets import STREAM_D, BatchedMLP

    dev = provenance.pick_device(device)
    obj, seeds = get_objective("non-saturating"), list(range(n_seeds))

    def run(graphs: bool):
        G = BatchedMLP((2, 64, 64, 2), seeds).to(dev)
        D = BatchedMLP((2, 64, 64, 1), seeds, stream=STREAM_D).to(dev)
        opts = [
            optim.make("adam", net.parameters(), lr, betas=(0.5, 0.999), capturable=graphs,
                       fused=False)
            for net, lr in ((D, 2e-4), (G, 1e-4))
        ]  # fmt: skip
        data = Stream(seeds, "data", dev, static=graphs)

        def d_loss(step, k):
            with torch.no_grad():
                fake = G(data.normal(64, 2))
            return obj.d_loss(D(sample_ring(data, 64, device=dev)), D(fake))

        def g_loss(step):
            return obj.g_loss(D(G(data.normal(64, 2))))

        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        res = gan(*opts, d_loss, g_loss, steps, discriminator=D, graphs=graphs)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        params = torch.cat([p.detach().reshape(-1) for p in (*G.parameters(), *D.parameters())])
        return params, res.losses, seconds / steps

    (p0, l0, s0), (p1, l1, s1) = run(False), run(True)
    diff = max(float((p0 - p1).abs().max()), float((l0 - l1).abs().max()))
    return {
        "device": str(dev),
        "steps": steps,
        "copies": n_seeds,
        "captured": dev.type == "cuda",
        "bitwise_equal": bool(torch.equal(p0, p1) and torch.equal(l0, l1)),
        "max_abs_diff": diff,
        "eager_s_per_step": round(s0, 6),
        "graphs_s_per_step": round(s1, 6),
    }


DEFAULT_PREDICTED = ROOT / "profiles" / "gpu" / "predicted_h100.csv"  # updates as CUDA graphs
DEFAULT_PREDICTED_EAGER = ROOT / "profiles" / "gpu" / "predicted_h100_eager.csv"


def graphs_on(device: str) -> bool:
    """Whether the claims' updates take the static-step path on ``device`` now
    (``repro.engine.use_graphs``: on CUDA unless $REPRO_GRAPHS=0)."""
    from repro import provenance
    from repro.engine import use_graphs

    return use_graphs(provenance.pick_device(device))


def plan(
    predicted: Path, budget_s: float, claim_ids: list[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """The claims of ``claim_ids`` whose predicted seconds fit ``budget_s`` together.

    ``predicted``: CSV with columns claim, variant, predicted_h100_s (one row per run; a claim's
    variants are separate rows; a row with claim = total is ignored). A claim's cost is the sum
    over its rows. Claims are taken shortest first while the running sum stays within
    ``budget_s`` (a conservative rule: as if the claims ran one after another; side by side, the
    host-bound ones overlap). Returns (chosen ids in the order given, skipped rows: claim,
    predicted_s or None, why).
    """
    import csv

    with open(predicted, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["claim"] != "total"]
    cost: dict[str, float] = {}
    for r in rows:
        cost[r["claim"]] = cost.get(r["claim"], 0.0) + float(r["predicted_h100_s"])
    chosen, skipped, used = set(), [], 0.0
    for cid in sorted((c for c in claim_ids if c in cost), key=lambda c: (cost[c], c)):
        if used + cost[cid] <= budget_s:
            chosen.add(cid)
            used += cost[cid]
        else:
            why = f"predicted {cost[cid]:,.1f} s; {budget_s - used:,.1f} s of {budget_s:,.0f} left"
            skipped.append({"claim": cid, "predicted_s": round(cost[cid], 1), "why": why})
    for cid in claim_ids:
        if cid not in cost:
            skipped.append({"claim": cid, "predicted_s": None, "why": f"no row in {predicted}"})
    return [c for c in claim_ids if c in chosen], skipped


def run_pipeline(
    scale: str,
    device: str,
    jobs: int,
    time_limit: float,
    claim_ids: list[str] | None = None,
    dry_run: bool = False,
    workdir: Path = ROOT,
) -> dict[str, Any]:
    """Snakemake at ``scale`` on ``device`` in ``workdir``, ``jobs`` claims at a time, stopped
    (SIGINT, then SIGKILL) at ``time_limit`` seconds. Returns the return code and the wall time."""
    config = [f"scale={scale}", f"device={device}"]
    if claim_ids:
        config.append("claims=[" + ",".join(claim_ids) + "]")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", str(jobs)]
    cmd += ["--directory", str(workdir), "--keep-going", "--config", *config]
    if dry_run:
        cmd.append("-n")
    t0 = time.perf_counter()
    Path(workdir).mkdir(parents=True, exist_ok=True)
    # each claim job runs with 1 torch thread; its exact W1 solves (repro.metrics.w1_pool, after
    # training) share the machine's cores among the jobs that run side by side
    env = dict(os.environ)
    env.setdefault("GAN_CLAIMS_W1_WORKERS", str(max(1, (os.cpu_count() or 1) // max(1, jobs))))
    proc = subprocess.Popen(cmd, cwd=workdir, start_new_session=True, env=env)
    try:
        rc = proc.wait(timeout=time_limit)
        stopped = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # Snakemake cleans up: finished claims stay valid
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        stopped = True
    return {"cmd": cmd, "rc": rc, "stopped_at_limit": stopped,
            "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip


def pack(scale: str, out: Path, part_mb: float = 15.0, root: Path = ROOT) -> list[Path]:
    """results/{scale} and figures/{scale} as record.tar.gz in parts of at most ``part_mb`` MiB."""
    buf = _io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for sub in (f"results/{scale}", f"figures/{scale}"):
            if (root / sub).exists():
                tar.add(root / sub, arcname=sub)
    data, size = buf.getvalue(), int(part_mb * 2**20)
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for i in range(max(1, math.ceil(len(data) / size))):
        part = out / f"record.tar.gz.part{i:02d}"
        part.write_bytes(data[i * size : (i + 1) * size])
        parts.append(part)
    return parts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="full", choices=("smoke", "quick", "full"))
    ap.add_argument("--device", default="cuda", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--jobs", type=int, default=8, help="claims run side by side (default 8)")
    ap.add_argument("--time-limit", type=float, default=480.0, help="seconds for the pipeline")
    ap.add_argument("--claims", nargs="*", help="claim ids (default: all)")
    ap.add_argument("--out", default=os.environ.get("OUT", "gpurun-out"))
    ap.add_argument("--part-mb", type=float, default=15.0)
    ap.add_argument("--dry-run", action="store_true", help="self-test, then plan only (-n)")
    ap.add_argument("--workdir", default=str(ROOT), help="where results/ and figures/ go")
    ap.add_argument(
        "--predicted",
        default=str(DEFAULT_PREDICTED),
        help="predicted one-H100 seconds per run (CSV as bench/out/budget.csv); 'none': no plan",
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    report: dict[str, Any] = {"scale": args.scale, "device": args.device}
    report["self_test"] = self_test(args.device, args.claims)
    failed = [r["claim"] for r in report["self_test"] if not r["ok"]]
    predicted = args.predicted
    if failed and graphs_on(args.device):
        # the static-step path (captured graphs) failed somewhere: if those claims pass eagerly,
        # the whole record runs eagerly ($REPRO_GRAPHS=0 reaches every Snakemake job), planned
        # with the eager predictions
        from repro.engine.graph import GRAPHS_ENV

        os.environ[GRAPHS_ENV] = "0"
        retry = self_test(args.device, failed)
        report["graphs_fallback"] = {"failed_on_graphs": failed, "eager_self_test": retry}
        failed = [r["claim"] for r in retry if not r["ok"]]
        if predicted == str(DEFAULT_PREDICTED):
            predicted = str(DEFAULT_PREDICTED_EAGER)
    report["graphs_on"] = graphs_on(args.device)
    if failed:
        report["stopped"] = f"self-test failed: {', '.join(failed)}"
        (out / "gpurun.json").write_text(json.dumps(report, indent=1))
        print(report["stopped"], file=sys.stderr)
        return EXIT_SELF_TEST
    try:  # informational: a failure is recorded, never fatal
        small = args.device == "cpu" or args.scale != "full"
        report["graphs"] = graph_check(args.device, *((10, 4) if small else (200, 64)))
    except Exception as e:  # noqa: BLE001
        report["graphs"] = {"error": f"{type(e).__name__}: {e}"}
    print(f"graphs: {report['graphs']}")
    budget = args.time_limit - (time.perf_counter() - t0)
    claim_ids = args.claims
    if args.predicted != "none" and args.scale == "full":  # the predictions are for full
        from repro import claims

        every = args.claims or sorted(claims.load_all())
        claim_ids, skipped = plan(Path(predicted), budget, every)
        report["plan"] = {"predicted": predicted, "budget_s": round(budget, 1),
                          "chosen": claim_ids, "skipped": skipped}  # fmt: skip
        if not claim_ids:
            report["stopped"] = f"no claim fits {budget:.0f} s by {predicted}"
            (out / "gpurun.json").write_text(json.dumps(report, indent=1))
            print(report["stopped"], file=sys.stderr)
            return 1
    report["pipeline"] = run_pipeline(
        args.scale,
        args.device,
        args.jobs,
        max(budget, 30.0),
        claim_ids,
        args.dry_run,
        Path(args.workdir),
    )
    if not args.dry_run:
        parts = pack(args.scale, out, args.part_mb, Path(args.workdir))
        report["parts"] = [p.name for p in parts]
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    (out / "gpurun.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "self_test"}, indent=1))
    return 0 if report["pipeline"]["rc"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
