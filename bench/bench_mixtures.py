"""Benchmark: cost of one generator step of every mixture method (NOT a test).

Trains each method of ``repro.experiments.family.mixtures.METHODS`` for ``--steps`` generator
steps on the grid with a claim's params at a scale (default: mode-collapse-mixtures, quick) and
reports wall and process CPU milliseconds per generator step (all seeds together), so the quick
and full budgets of the mixture claims can be planned per method. On a shared machine the wall
time depends on the load: compare the CPU column across methods.

    python bench/bench_mixtures.py --steps 50 --methods gan unrolled5 pacgan2
    python bench/bench_mixtures.py --claim pacgan-table1 --steps 20

Writes bench/out/mixtures.csv.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from repro import claims
from repro.experiments.family import mixtures as mx
from repro.provenance import pick_device

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claim", default="mode-collapse-mixtures")
    ap.add_argument("--scale", default="quick")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", nargs="*", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = dict(claims.load_spec(ROOT / "claims" / f"{args.claim}.yaml").params(args.scale))
    params["steps"] = args.steps
    device = pick_device(args.device)
    mix = mx.get_mixture("grid", params)
    rows = []
    for name in args.methods or params["methods"]:
        mx.train_method(name, mix, dict(params, steps=2), list(range(args.seeds)), device)  # warm
        cpu, wall = time.process_time(), time.perf_counter()
        mx.train_method(name, mix, params, list(range(args.seeds)), device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rows.append(
            {
                "method": name,
                "device": str(device),
                "seeds": args.seeds,
                "ms_per_step_wall": 1e3 * (time.perf_counter() - wall) / args.steps,
                "ms_per_step_cpu": 1e3 * (time.process_time() - cpu) / args.steps,
            }
        )
        print(rows[-1], flush=True)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "mixtures.csv", index=False)


if __name__ == "__main__":
    main()
