"""Per-claim budget of the full-scale record on one H100, measured without a GPU (issue 15, item 6).

For every claim (and every variant that runs at full scale) the claim's own experiment runs in
this process at its FULL params and seeds on ``device="meta"`` under ``bench.counting.Counting``
(meta op = a GPU kernel, CPU op = host work, CPU<->meta transfer = a copy, reading a device value
on the host = a sync), twice, with its training-loop length set to two small values (``PHASES``).
The difference of the two runs, divided by the difference in steps, is the cost of one step;
anything outside the loop (initialisation, the final evaluation) cancels out.

Time model per step (constants from ../shared/BUDGET.md, host op measured here, see below):

    host = KERNEL_US * eager kernels + REPLAY_US * graph replays
           + host_op_us * eager host ops + COPY_US * copies + SYNC_US * syncs
    gpu  = FLOPs / GPU_FLOPS + KERNEL_GPU_US * kernels (eager and graph alike)
    step = max(host, gpu);   predicted_h100_s = sum over phases of step * full-scale steps
           + exact W1 solves of ``repro.metrics.w1_pool`` / POOL_WORKERS

Graph kernels are the ops a step issues inside ``repro.engine.graph.StaticStep`` (counted by
``Counting``): only code that actually runs through it gets the replay price, so nothing is
predicted for a path an experiment does not use yet. The count runs with $REPRO_GRAPHS=1
(what CUDA does by default, ``repro.engine.use_graphs``); ``--eager`` counts the eager path.
Likewise the W1 term: only solves that go through ``w1_pool`` are seen (a serial
``w1_samples`` loop is numpy work the count does not see); they are recorded without solving
(``repro.metrics.w1_dry_run``), extrapolated linearly in the loop length like the kernels, and
priced by timing one solve of each shape on this CPU.

The Arjovsky-Bottou GAN run is one Snakemake job per distinct file (rules/shared.smk), not one
per claim job: its ``g_epochs`` phase is priced in the first row that reads each file and skipped
in the others (column ``shared_gan_s``: the seconds they would have spent retraining it).

``host_op_us`` is calibrated on the machine running this script (``--host-op-us`` overrides):
the time per op of the per-seed sampling that makes up most host ops (``calibrate_host_op_us``).

Output: ``bench/out/budget.csv`` with columns claim, variant, kernels_per_step,
host_ops_per_step, syncs_per_step, predicted_h100_s, then copies_per_step, gflop_per_step,
full_steps, note; the last row (claim = total) sums the predictions. Exit status 1 when a step
syncs or the total exceeds ``LIMIT_S`` (480 s: the whole record in 8 minutes of one GPU).

    python bench/budget.py                          # every claim (tens of minutes on one core)
    python bench/budget.py --claims js-disjoint-supports optimal-discriminator --out /tmp/b.csv
    python bench/budget.py --eager                  # as if every step ran eagerly on CUDA
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bench.counting import Counting, Counts  # noqa: E402
from repro import experiments  # noqa: E402
from repro.claims import load_all  # noqa: E402
from repro.engine.graph import GRAPHS_ENV  # noqa: E402
from repro.experiments.family.shared_runs import (  # noqa: E402
    ARJOVSKY_BOTTOU_USERS,
    shared_gan_name,
)

OUT = Path(__file__).resolve().parent / "out" / "budget.csv"

# time model (../shared/BUDGET.md); HOST_OP_US is replaced by the calibration unless overridden
KERNEL_US = 10.0  # host cost of launching one device op (eager PyTorch on an H100 host)
HOST_OP_US = 4.5  # BUDGET.md's value; the calibrated one is used by default
COPY_US = 15.0  # one host -> device copy
SYNC_US = 30.0  # one device -> host sync
GPU_FLOPS = 30e12  # FP32 batched matmul on an H100 (grouped convs: 30-100 TFLOP/s plausible)
LIMIT_S = 480.0  # issue 15: the whole record from one run of at most 8 minutes
# GPU time of one small kernel (BUDGET.md: ~4 us inside a CUDA graph); an eager kernel runs no
# faster, its launch just costs the host more, so every kernel is charged it
KERNEL_GPU_US = 4.0
REPLAY_US = 10.0  # host cost of one graph launch (assumed: one eager launch)
POOL_WORKERS = 16  # CPU cores of the lent H100 machine: w1_pool's default workers there


@dataclass(frozen=True)
class Phase:
    """One training loop of a claim: ``param`` set to ``lo`` and ``hi`` (``lo_steps`` /
    ``hi_steps`` loop steps), scaled to ``full_steps(params)`` steps at full scale."""

    param: str
    lo: Any
    hi: Any
    lo_steps: int
    hi_steps: int
    full_steps: Any  # params -> int
    fixed: dict[str, Any] = field(default_factory=dict)
    unit: str = "step"


def steps_of(name: str):
    return lambda p: int(p[name])


def _loop(param: str, lo: int = 2, hi: int = 4, **fixed) -> Phase:
    """A loop of ``param`` steps, counted at ``lo`` and ``hi`` steps. Where an evaluation
    schedule depends on the run length (e.g. every steps // 50) pick lo and hi with the same
    number of evaluations; where it is a fixed interval, multiples of it (the real density)."""
    return Phase(param, lo, hi, lo, hi, steps_of(param), fixed)


def _fresh_d() -> list[Phase]:
    # the Arjovsky-Bottou claims: a DCGAN trained for max(g_epochs) epochs, then a fresh D of
    # d_iterations per snapshot (one per entry of g_epochs)
    return [
        Phase(
            "d_iterations",
            2,
            4,
            2,
            4,
            lambda p: int(p["d_iterations"]) * len(p["g_epochs"]),
            {"g_epochs": [1]},
            "D iteration",
        ),
        Phase(
            "g_epochs",
            [1],
            [2],
            1,
            2,
            lambda p: max(p["g_epochs"]),
            {"d_iterations": 1},
            "epoch",
        ),
    ]


def _critic_warmup() -> list[Phase]:
    # critic-tracks-quality: the WGAN critic takes warmup_d_steps (100) instead of d_steps (5)
    # before the first warmup_g_steps G steps and every warmup_every-th. Counted as two loops:
    # every G step at the steady d_steps (warm-up off), then the extra of a warm G step (its
    # count grows with warmup_g_steps at a fixed length), priced at the run's number of warm steps
    # (from the experiment's own schedule, ``critic_steps``). Counting only the first few steps
    # (all warm) would price all 5,000 steps as warm ones.
    from repro.experiments.critic_tracks_quality import critic_steps

    def warm_steps(p) -> int:
        warm = int(p["warmup_d_steps"])
        if warm <= 0:
            return 0
        return sum(critic_steps(p, "wgan", t) == warm for t in range(int(p["steps"])))

    return [
        _loop("steps", warmup_d_steps=0),
        Phase("warmup_g_steps", 2, 4, 2, 4, warm_steps, {"steps": 4}, "warm-up G step"),
    ]


# claim -> its training loops. Analytic claims have none (their cost is host numerics).
PHASES: dict[str, list[Phase]] = {
    "annealed-noise-training": [_loop("steps")],
    "clipping-gradients": [_loop("steps"), _loop("surface_steps")],
    "critic-tracks-quality": _critic_warmup(),
    "d-perfect": [*_fresh_d(), _loop("classifier_steps")],
    "dirac-gan": [_loop("n_steps")],
    "fenchel-conjugates": [_loop("steps")],
    "fgan-gaussian-fit": [_loop("steps", 100, 200)],  # trajectory every steps // 50
    "js-disjoint-supports": [_loop("steps")],
    "kl-covers-reverse-kl-seeks": [_loop("steps", 100, 200)],
    "minus-log-d-instability": _fresh_d(),
    "minus-log-d-is-kl-minus-2js": [],
    "mode-collapse-mixtures": [_loop("steps")],
    "mode-rotation": [_loop("steps", burn_in_steps=0)],
    "noise-bound": [],
    "noise-restores-overlap": [_loop("d_iterations")],
    "optimal-discriminator": [_loop("steps")],
    "pacgan-table1": [_loop("steps")],
    "saturation": [_loop("steps", 5, 10, early_steps=5)],  # evaluation every 5 steps
    "stacked-digits-modes": [_loop("steps", 20, 40), _loop("classifier_steps")],  # log: steps // 10
    "vanishing-gradients": _fresh_d(),
    "wgan-critic-vs-discriminator": [_loop("steps")],
}


# claims without a training loop: host numerics the counting does not see. Their seconds are
# BUDGET.md's estimates (made on the CPU record), not measured by this script; the note says so.
ANALYTIC_S = {"minus-log-d-is-kl-minus-2js": 35.0, "noise-bound": 60.0}


def calibrate_host_op_us(repeats: int = 9, n: int = 50) -> float:
    """Microseconds per host op as the experiments issue them, measured on this machine.

    Host ops are what a step still runs on CPU tensors (Python-side bookkeeping, small CPU
    tensors); since every draw moved onto the device (``repro.engine.streams.Stream``) no
    sampling is among them. We time a representative mix of small CPU ops:
    ``repro.experiments.optimal_discriminator.draw_batch`` on a CPU stream (3 pairs x 10 seeds x
    64 samples: small integer, float64 and indexing ops, as a step's host ops are) and divide by
    its op count. The fastest of ``repeats`` timings of ``n`` calls: on a shared machine the others
    measure the neighbours' load.
    """
    from repro.engine.streams import Stream
    from repro.experiments.optimal_discriminator import draw_batch

    gens = Stream(range(10), "data", "cpu")

    def call():
        return draw_batch(["shift", "scale", "mixture"], gens, 64)

    with Counting() as mode:
        call()
    ops = mode.counts.host_ops
    timings = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        timings.append((time.perf_counter() - t0) / (n * ops) * 1e6)
    return min(timings)


def _small_add_us(device: str, repeats: int, n: int) -> float:
    """Microseconds of one add of two 64-float tensors on ``device`` (fastest of ``repeats``)."""
    a, b = torch.randn(64, device=device), torch.randn(64, device=device)
    timings = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            torch.add(a, b)
        timings.append((time.perf_counter() - t0) / n * 1e6)
    return min(timings)


def bare_host_op_us(repeats: int = 5, n: int = 4000) -> float:
    """Microseconds of a bare small CPU op (fastest of ``repeats``), for reference."""
    return _small_add_us("cpu", repeats, n)


def measure_meta_op_us(repeats: int = 5, n: int = 4000) -> float:
    """Microseconds of one small op on the meta device here (fastest of ``repeats``)."""
    return _small_add_us("meta", repeats, n)


def fashion_present() -> bool:
    from repro.data import DataMissingError, require_dataset

    try:
        require_dataset("fashion-mnist")
    except DataMissingError:
        return False
    return True


# the stand-in's training split: an epoch of it is 60,000 / STAND_IN_TRAIN times shorter, so
# per-epoch counts are scaled by (60,000 // B) / (STAND_IN_TRAIN // B) (counting a real epoch of
# Python meta kernels takes minutes)
FASHION_TRAIN, STAND_IN_TRAIN = 60_000, 1_280
FASHION_NAMES = ("fashion-mnist", "auto")  # auto resolves to Fashion-MNIST when it is present


@contextlib.contextmanager
def fashion_stand_in():
    """Fashion-MNIST's shapes without its files: zeros (STAND_IN_TRAIN / 10,000 x 28 x 28,
    labels 0). Counts depend on shapes only, so the budget needs no download; used only when
    the data set is missing (the row's note says so).
    """
    import numpy as np

    from repro import data
    from repro.experiments.family import arjovsky_bottou as ab

    sizes = {"train": STAND_IN_TRAIN, "test": 10_000}

    def arrays(root, split):
        n = sizes[split]
        return np.zeros((n, 28, 28), np.uint8), np.zeros(n, np.uint8)

    saved = (data.require_dataset, data._fashion_arrays, ab.require_dataset)
    data.require_dataset = ab.require_dataset = lambda name, root=None: None
    data._fashion_arrays = arrays
    try:
        yield
    finally:
        data.require_dataset, data._fashion_arrays, ab.require_dataset = saved


_SOLVE_S: dict[tuple, float] = {}


def w1_solve_seconds(shapes: tuple) -> float:
    """Seconds of one exact W1 (``repro.divergences.w1_samples``) of point sets of these shapes
    ((n, d), (m, d)) on this CPU: one timed solve of standard normal points, cached per shape."""
    if shapes not in _SOLVE_S:
        import numpy as np

        from repro.divergences import w1_samples

        rng = np.random.default_rng(0)
        x, y = rng.normal(size=shapes[0]), rng.normal(0.5, 1.0, size=shapes[1])
        w1_samples(x[:2], y[:2])  # POT's import is not the solve
        t0 = time.perf_counter()
        w1_samples(x, y)
        _SOLVE_S[shapes] = time.perf_counter() - t0
    return _SOLVE_S[shapes]


def w1_cpu_seconds(solves: list[tuple], solve_s=None) -> tuple[float, float]:
    """(sum, longest) of the solves' seconds on this CPU (``solve_s``: shapes -> seconds)."""
    times = [(solve_s or w1_solve_seconds)(tuple(sh)) for sh in solves]
    return sum(times), max(times, default=0.0)


def pool_wall_seconds(cpu_s: float, longest_s: float, workers: int = POOL_WORKERS) -> float:
    """Wall time of solves worth ``cpu_s`` CPU-seconds on ``workers`` processes: the work
    spread evenly, but never less than the longest single solve."""
    return max(cpu_s / workers, longest_s) if cpu_s > 0 else 0.0


def count_run(
    spec, params: dict[str, Any], seeds: list[int]
) -> tuple[Counts, str | None, list[tuple]]:
    """Run the experiment on meta under ``Counting``; an exception ends the run (noted).
    Warnings (numpy on the all-zero results of meta tensors) are silenced. Returns the counts,
    the error and the shapes of the exact W1 solves the run handed to ``w1_pool``."""
    from repro.data import clear_caches
    from repro.metrics import w1_dry_run

    clear_caches()  # one-time tables are made in every counted run, so they cancel per step
    mode = Counting()
    err = None
    with w1_dry_run() as solves, mode, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            experiments.get(spec["experiment"]).run(params, seeds, torch.device("meta"))
        except Exception as e:  # a host-only step, a numpy call on meta data, missing data...
            err = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            tb = traceback.extract_tb(e.__traceback__)[-1]
            err += f" (at {Path(tb.filename).name}:{tb.lineno})"
    return mode.counts, err, list(solves)


@dataclass
class Row:
    claim: str
    variant: str
    kernels_per_step: float = 0.0
    host_ops_per_step: float = 0.0
    syncs_per_step: float = 0.0
    predicted_h100_s: float = 0.0
    copies_per_step: float = 0.0
    gflop_per_step: float = 0.0
    full_steps: int = 0
    note: str = ""
    graph_kernels_per_step: float = 0.0
    w1_pool_s: float = 0.0
    # seconds of the Arjovsky-Bottou GAN run this row does not pay: another run of the record
    # trains the shared file it reads (rules/shared.smk); 0 for the run that trains it
    shared_gan_s: float = 0.0


# shared GAN file name -> (the row that trains it, its predicted seconds), in counting order
_SHARED_GAN: dict[str, tuple[str, float]] = {}


COUNTED = ("kernels", "host_ops", "copies", "syncs", "flops", "graph_kernels", "graph_host_ops",
           "replays")  # fmt: skip


def step_seconds(per: dict[str, float], host_op_us: float) -> tuple[float, str]:
    """One step's predicted seconds, max(host, gpu), and which bound it is (module doc)."""
    graph_k, graph_h = per.get("graph_kernels", 0.0), per.get("graph_host_ops", 0.0)
    host = (
        KERNEL_US * (per["kernels"] - graph_k)
        + REPLAY_US * per.get("replays", 0.0)
        + host_op_us * (per["host_ops"] - graph_h)
        + COPY_US * per["copies"]
        + SYNC_US * per["syncs"]
    ) * 1e-6
    gpu = per["flops"] / GPU_FLOPS + KERNEL_GPU_US * per["kernels"] * 1e-6
    return max(host, gpu), ("gpu" if gpu > host else "host")


def budget_claim(spec, variant: str | None, host_op_us: float) -> Row:
    """Count every phase of one claim (variant) and predict its seconds on one H100."""
    row = Row(spec.id, variant or "")
    phases = PHASES.get(spec.id)
    base = spec.params("full", variant)
    seeds = spec.seeds("full")
    if not phases:
        if spec.id in ANALYTIC_S:
            row.predicted_h100_s = ANALYTIC_S[spec.id]
            row.note = "no training loop: host numerics, not counted; seconds = BUDGET.md estimate"
        else:
            row.note = "no PHASES entry: not counted"
        return row
    notes, missing = [], not fashion_present()
    w1_cpu, w1_longest = 0.0, 0.0  # exact W1 handed to w1_pool, at full length (CPU seconds)
    shared = None  # the shared GAN file this run reads (its g_epochs phase), if any
    if spec["experiment"] in ARJOVSKY_BOTTOU_USERS:
        shared = shared_gan_name(base, seeds, "auto")
    label = spec.id + (f"@{variant}" if variant else "")
    for i, ph in enumerate(phases):
        if ph.param == "g_epochs" and shared in _SHARED_GAN and _SHARED_GAN[shared][0] != label:
            owner, owner_s = _SHARED_GAN[shared]
            row.shared_gan_s = owner_s  # same GAN params and seeds: the same count
            notes.append(f"+ g_epochs: the GAN run of {owner}, shared ({owner_s:.1f} s there)")
            continue
        counts, errs, solves = [], [], []
        for value in (ph.lo, ph.hi):
            # the other loops at their short length, so only this one grows
            others = {o.param: o.lo for o in phases if o is not ph}
            params = {**copy.deepcopy(base), **others, **ph.fixed, ph.param: value}
            fake = missing and params.get("dataset") in FASHION_NAMES
            with fashion_stand_in() if fake else contextlib.nullcontext():
                c, err, w1 = count_run(spec, params, seeds)
            counts.append(c)
            errs.append(err)
            solves.append(w1)
        d = counts[1] - counts[0]
        n = ph.hi_steps - ph.lo_steps
        if ph.unit == "epoch" and missing and base.get("dataset") in FASHION_NAMES:
            b = int(base["batch_size"])
            n = n * (STAND_IN_TRAIN // b) / (FASHION_TRAIN // b)  # a stand-in epoch is shorter
        per = {k: getattr(d, k) / n for k in COUNTED}
        full = ph.full_steps(base)
        sec, bound = step_seconds(per, host_op_us)
        row.predicted_h100_s += sec * full
        if ph.param == "g_epochs" and shared is not None:
            _SHARED_GAN[shared] = (label, sec * full)
            notes.append(f"GAN run ({sec * full:.1f} s) shared by every run with its GAN params")
        if solves[0] or solves[1]:
            # exact W1 in the pool: the short run's solves (i == 0 only: the other phases' runs
            # hold the same ones) plus the loop's extra solves, extrapolated to full length
            (lo_s, lo_max), (hi_s, hi_max) = w1_cpu_seconds(solves[0]), w1_cpu_seconds(solves[1])
            w1_cpu += (lo_s if i == 0 else 0.0) + (hi_s - lo_s) / n * (full - ph.lo_steps)
            w1_longest = max(w1_longest, lo_max, hi_max)
            notes.append(f"W1 pool ({ph.param}): {len(solves[1])} solves at {ph.hi} {ph.unit}s")
        if per["graph_kernels"]:
            notes.append(
                f"{ph.param}: {per['graph_kernels']:.0f} of {per['kernels']:.0f} kernels in a"
                f" CUDA graph ({per['replays']:.1f} replays)"
            )
        if i == 0:  # the main loop's counts go into the columns
            row.kernels_per_step = per["kernels"]
            row.host_ops_per_step = per["host_ops"]
            row.syncs_per_step = per["syncs"]
            row.copies_per_step = per["copies"]
            row.gflop_per_step = per["flops"] / 1e9
            row.full_steps = full
            row.graph_kernels_per_step = per["graph_kernels"]
            notes.append(f"per {ph.unit} ({ph.param}): {bound}-bound")
        else:
            notes.append(
                f"+ {ph.param} x{full}: {per['kernels']:.0f} kernels,"
                f" {per['host_ops']:.0f} host ops, {per['syncs']:.1f} syncs,"
                f" {per['flops'] / 1e9:.2f} GF per {ph.unit} ({bound}-bound)"
            )
        if per["syncs"] > 0:
            top = [k for k, _ in d.by_op.most_common() if k.startswith(("sync", "copy"))][:2]
            notes.append(f"{ph.param} syncs via {', '.join(top)}")
        if errs[0] or errs[1]:
            notes.append(f"run stopped: {errs[1] or errs[0]}")
            if errs[0] != errs[1]:
                notes.append("(the two runs stopped differently: counts unreliable)")
    if w1_cpu > 0:
        row.w1_pool_s = pool_wall_seconds(w1_cpu, w1_longest)
        row.predicted_h100_s += row.w1_pool_s
        notes.append(
            f"W1 pool: {w1_cpu:.0f} CPU-s (timed here) / {POOL_WORKERS} workers ="
            f" {row.w1_pool_s:.1f} s"
        )
    if missing and base.get("dataset") in FASHION_NAMES:
        notes.append("Fashion-MNIST absent: counted on a stand-in of its shapes")
    row.note = "; ".join(notes)
    return row


def markdown(csv: Path) -> str:
    """The budget table as Markdown (for bench/README.md): one row per claim and variant."""
    t = pd.read_csv(csv, dtype={"variant": str, "note": str}).fillna({"variant": "", "note": ""})
    cols = ["kernels_per_step", "host_ops_per_step", "syncs_per_step", "gflop_per_step"]
    lines = [
        "| claim | variant | kernels / step | host ops / step | syncs / step | GFLOP / step"
        " | full steps | predicted H100 s | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for _, r in t.iterrows():
        if r["claim"] == "total":
            lines.append(f"| **total** | | | | | | | **{r['predicted_h100_s']:.0f}** | |")
            continue
        nums = " | ".join("" if pd.isna(r.get(c)) else f"{r[c]:.4g}" for c in cols)
        steps = "" if pd.isna(r.get("full_steps")) else f"{int(r['full_steps'])}"
        lines.append(
            f"| {r['claim']} | {r['variant']} | {nums} | {steps} | {r['predicted_h100_s']:.1f}"
            f" | {str(r['note']).replace('|', '/')} |"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def graphs_env(on: bool):
    """$REPRO_GRAPHS = "1" (``on``) or "0" while counting, restored after. On CUDA
    ``repro.engine.use_graphs`` is True, so the experiments run their updates as static steps
    (captured graphs); meta is not CUDA, so the count asks for that path explicitly."""
    old = os.environ.get(GRAPHS_ENV)
    os.environ[GRAPHS_ENV] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(GRAPHS_ENV, None)
        else:
            os.environ[GRAPHS_ENV] = old


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--claims", nargs="*", help="claim ids (default: all)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--host-op-us", type=float, default=None, help="skip the calibration")
    ap.add_argument("--no-variants", action="store_true", help="main params only")
    ap.add_argument("--markdown", type=Path, help="print this budget CSV as Markdown and stop")
    ap.add_argument(
        "--eager",
        action="store_true",
        help="count the eager path (REPRO_GRAPHS=0); default: what CUDA runs (REPRO_GRAPHS=1)",
    )
    args = ap.parse_args(argv)
    if args.markdown is not None:
        print(markdown(args.markdown))
        return 0
    torch.set_num_threads(1)
    host_op_us = args.host_op_us if args.host_op_us is not None else calibrate_host_op_us()
    bare_us, meta_us = bare_host_op_us(), measure_meta_op_us()
    print(
        f"host op {host_op_us:.2f} us (sampler ops, calibrated here unless given); bare CPU op"
        f" {bare_us:.2f} us; meta op {meta_us:.2f} us (Python meta kernels: counting is slow)"
    )
    specs = load_all()
    rows = []
    with graphs_env(on=not args.eager):
        for cid in args.claims or sorted(specs):
            spec = specs[cid]
            variants = [None] + ([] if args.no_variants else spec.variants_at("full"))
            for v in variants:
                t0 = time.perf_counter()
                row = budget_claim(spec, v, host_op_us)
                rows.append(row)
                print(
                    f"{cid:32s} {row.variant:12s} kernels {row.kernels_per_step:7.0f}"
                    f"  host {row.host_ops_per_step:7.0f}  syncs {row.syncs_per_step:5.1f}"
                    f"  {row.predicted_h100_s:8.1f} s  ({time.perf_counter() - t0:.0f} s)"
                    f"  {row.note}",
                    flush=True,
                )
    table = pd.DataFrame([r.__dict__ for r in rows])
    total = table["predicted_h100_s"].sum()
    constants = (
        f"model: max(host, gpu); host = {KERNEL_US} us/eager kernel + {REPLAY_US} us/graph"
        f" replay + {host_op_us:.2f} us/host op (calibrated) + {COPY_US} us/copy + {SYNC_US}"
        f" us/sync; gpu = FLOPs / {GPU_FLOPS:.0e} + {KERNEL_GPU_US} us/kernel;"
        f" + w1_pool solves / {POOL_WORKERS} workers"
    )
    table.loc[len(table)] = {"claim": "total", "variant": "", "predicted_h100_s": total,
                             "note": constants}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.round(3).to_csv(args.out, index=False)
    print(f"wrote {args.out}; total {total:.0f} s (limit {LIMIT_S:.0f} s)")
    syncing = table[table["syncs_per_step"].fillna(0) > 0]["claim"].tolist()
    problems = []
    if syncing:
        problems.append(f"steps that sync: {', '.join(syncing)}")
    if total > LIMIT_S or not math.isfinite(total):
        problems.append(f"predicted record {total:.0f} s > {LIMIT_S:.0f} s")
    for p in problems:
        print("FAIL:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
