"""Freeze every claim's smoke-scale tables, or compare against a freeze (a dev tool, NOT a test).

The gate for moving code between modules (issue 15): a structural change keeps the same random
streams, so on the same machine every number must stay bit-identical. Frozen numbers do not
transfer across CPU types or torch builds, which is why this is not part of ``make test``.

Each claim's experiment runs in this process at the spec's smoke params and seeds (plus every
variant that runs at smoke), on the CPU with one torch thread. Every table it returns is written
as ``<out>/<claim>[@<variant>]/<table>.csv`` (float repr round-trips exactly: ``%.17g``).

    python bench/smoke_freeze.py freeze bench/out/smoke-freeze-$(git rev-parse --short HEAD)
    python bench/smoke_freeze.py compare bench/out/smoke-freeze-77cd570
    python bench/smoke_freeze.py compare bench/out/smoke-freeze-77cd570 --claims supports-x ...

``compare`` reruns the claims into a temporary folder and prints per claim ``identical`` or the
largest absolute difference over all numeric cells (and any table / column / shape mismatch;
wall-clock columns, ``TIME_COLUMNS``, are skipped);
its exit status is 1 unless every compared claim is identical.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from repro import experiments  # noqa: E402
from repro.claims import load_all  # noqa: E402

SCALE = "smoke"
# wall-clock columns (e.g. mixtures' timing table) differ run to run: not compared
TIME_COLUMNS = frozenset({"seconds", "wall_s", "wall_time_s"})


def runs(claims: list[str] | None) -> list[tuple[str, str | None]]:
    """(claim id, variant or None) for every run at smoke scale, in claim order."""
    specs = load_all()
    ids = sorted(specs) if not claims else claims
    out = []
    for cid in ids:
        spec = specs[cid]
        out.append((cid, None))
        out += [(cid, v) for v in spec.variants_at(SCALE)]
    return out


def run_one(cid: str, variant: str | None, n_seeds: int | None) -> dict[str, pd.DataFrame]:
    spec = load_all()[cid]
    params, seeds = spec.params(SCALE, variant), spec.seeds(SCALE, n_seeds)
    return experiments.get(spec["experiment"]).run(params, seeds, torch.device("cpu"))


def _name(cid: str, variant: str | None) -> str:
    return cid if variant is None else f"{cid}@{variant}"


def freeze(folder: Path, claims: list[str] | None, n_seeds: int | None) -> dict[str, float]:
    """Run every claim and write its tables under ``folder``; returns wall seconds per run."""
    walls = {}
    for cid, variant in runs(claims):
        t0 = time.perf_counter()
        tables = run_one(cid, variant, n_seeds)
        walls[_name(cid, variant)] = time.perf_counter() - t0
        d = folder / _name(cid, variant)
        d.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            table.to_csv(d / f"{name}.csv", index=False, float_format="%.17g")
        print(f"{_name(cid, variant):45s} {len(tables)} tables  {walls[_name(cid, variant)]:.1f} s")
    return walls


def diff_tables(a: pd.DataFrame, b: pd.DataFrame) -> float | str:
    """0.0 when equal cell for cell (NaN == NaN), else the max abs numeric difference, or a
    string that says why the tables cannot be compared cell for cell."""
    if list(a.columns) != list(b.columns):
        return f"columns differ: {list(a.columns)} vs {list(b.columns)}"
    if a.shape != b.shape:
        return f"shape differs: {a.shape} vs {b.shape}"
    worst = 0.0
    for col in a.columns:
        if col in TIME_COLUMNS:
            continue
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            same = (xv == yv) | (np.isnan(xv) & np.isnan(yv))
            if not same.all():
                d = np.abs(xv - yv)[~same]
                worst = max(worst, float(np.nanmax(d)) if np.isfinite(d).any() else np.inf)
        elif not x.astype(str).equals(y.astype(str)):
            return f"column {col!r} differs (non-numeric)"
    return worst


def compare(folder: Path, claims: list[str] | None, n_seeds: int | None) -> bool:
    """Rerun into a temporary folder and compare with ``folder``; True when all identical."""
    wanted = claims or sorted({p.name.split("@")[0] for p in folder.iterdir() if p.is_dir()})
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        walls = freeze(Path(tmp), wanted, n_seeds)
        print()
        for name in walls:
            old, new = folder / name, Path(tmp) / name
            if not old.is_dir():
                print(f"{name:45s} NOT FROZEN")
                ok = False
                continue
            tables = sorted(
                {p.stem for p in old.glob("*.csv")} | {p.stem for p in new.glob("*.csv")}
            )
            verdicts = []
            for t in tables:
                if not (old / f"{t}.csv").exists() or not (new / f"{t}.csv").exists():
                    verdicts.append(f"{t}: table only on one side")
                    continue
                d = diff_tables(pd.read_csv(old / f"{t}.csv"), pd.read_csv(new / f"{t}.csv"))
                if d != 0.0:
                    verdicts.append(f"{t}: {d if isinstance(d, str) else f'max abs diff {d:.3g}'}")
            ok &= not verdicts
            print(f"{name:45s} {'identical' if not verdicts else '; '.join(verdicts)}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("action", choices=["freeze", "compare"])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--claims", nargs="*", help="claim ids (default: all)")
    ap.add_argument("--seeds", type=int, default=None, help="override the smoke seed count")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.action == "freeze":
        freeze(args.folder, args.claims, args.seeds)
        return 0
    return 0 if compare(args.folder, args.claims, args.seeds) else 1


if __name__ == "__main__":
    sys.exit(main())
