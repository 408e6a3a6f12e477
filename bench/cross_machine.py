"""How far each training claim's metrics move when only the rounding changes (issue 13).

A reader comparing two machines' reports wants to know which differences to expect. This runs
every training claim's experiment at a scale (default smoke: seconds each) and compares its
per-seed metrics under four settings against the plain run (float32, 1 thread, as the pipeline
runs):

- ``threads2``: 2 torch threads (another blocking of the same kernels);
- ``rounding``: float32-ulp rounding injected into every matmul / conv (``repro.rounding``):
  a stand-in for another processor's kernels (Intel vs AMD), or another batch layout;
- ``rounding2``: the same with another salt (a second draw of "another processor").

(A float64 run is no such comparison here: the samplers draw in the default dtype, so float64
draws other random numbers, a different run altogether.)

For each it writes the largest relative difference over the seeds' metrics, the metric it
occurs in, and whether any check or premise of the spec changes its pass/fail state (a verdict
that moves with the rounding is a sign the run is not in a stable regime).

    python bench/cross_machine.py                      # smoke, all training claims, ~3 min
    python bench/cross_machine.py --scale quick --claims saturation dirac-gan

Writes bench/out/cross_machine_{scale}.csv. A benchmark: it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from repro import claims, experiments, provenance  # noqa: E402
from repro.rounding import LayoutNoise, ulps  # noqa: E402

NO_TRAINING = {"minus-log-d-is-kl-minus-2js", "noise-bound"}
SETTINGS = ("threads2", "rounding", "rounding2")


def _run(spec: claims.Spec, scale: str, setting: str) -> pd.DataFrame:
    exp = experiments.get(spec["experiment"])
    torch.set_num_threads(2 if setting == "threads2" else 1)
    ctx = contextlib.ExitStack()
    if setting.startswith("rounding"):
        ctx.enter_context(LayoutNoise(ulps(4, torch.float32), salt=int(setting == "rounding2")))
    with ctx:
        return exp.run(spec.params(scale), spec.seeds(scale), torch.device("cpu"))["seeds"]


def _states(spec: claims.Spec, seeds: pd.DataFrame) -> list:
    """Each premise's per-seed flags and each check's pass state on these seeds (None:
    unmeasurable), as the pipeline evaluates them."""
    premises = [tuple(p["met"]) for p in claims.evaluate_premises(spec, seeds)]
    return premises + [c["passed"] for c in claims.evaluate_checks(spec, seeds)]


def compare(spec: claims.Spec, scale: str) -> list[dict]:
    t0 = time.perf_counter()
    base = _run(spec, scale, "plain")
    metrics = list(experiments.get(spec["experiment"]).metrics)
    rows = []
    for setting in SETTINGS:
        other = _run(spec, scale, setting)
        x, y = other[metrics].to_numpy(float), base[metrics].to_numpy(float)
        rel = np.abs(x - y) / np.maximum(np.abs(y), 1e-12)
        rel[~(np.isfinite(x) & np.isfinite(y))] = 0.0
        j = int(np.argmax(rel.max(axis=0)))
        rows.append(
            {
                "claim": spec.id,
                "scale": scale,
                "setting": setting,
                "max_rel_diff": float(rel.max()),
                "metric": metrics[j],
                "checks_changed": sum(
                    a != b for a, b in zip(_states(spec, base), _states(spec, other), strict=True)
                ),
                "n_rules": len(spec.checks) + len(spec.premises),
            }
        )
    for r in rows:
        r["wall_s"] = round(time.perf_counter() - t0, 1)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="smoke", choices=claims.SCALES)
    ap.add_argument("--claims", nargs="*", help="claim ids (default: every training claim)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = ap.parse_args(argv)
    specs = claims.load_all()
    ids = args.claims or sorted(set(specs) - NO_TRAINING)
    rows = []
    for cid in ids:
        rows += compare(specs[cid], args.scale)
        worst = max(rows[-len(SETTINGS) :], key=lambda r: r["max_rel_diff"])
        print(f"{cid}: worst {worst['setting']} {worst['max_rel_diff']:.2g} ({worst['metric']})")
    table = pd.DataFrame(rows)
    table["cpu"] = provenance.cpu_info()["cpu_model"]
    table["cpu_isa"] = provenance.cpu_info()["cpu_isa"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"cross_machine_{args.scale}.csv"
    table.to_csv(path, index=False)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
