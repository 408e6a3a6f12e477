"""Batched seeds equal separate runs, for every experiment that trains (one parametrised test).

Every training experiment trains its S seeds as one model whose parameters carry a leading seed
dimension (DESIGN.md). Mathematically, seed s's numbers do not depend on which other seeds share
the batch. In floating point they may differ in the last bits: a batched matmul or grouped
convolution with S = 2 and the same product with S = 1 can be computed by different CPU kernels
(MKL's and oneDNN's code paths depend on the shapes and on the processor: an Intel AVX-512 core
takes other kernels than an AMD one), which sum in a different order. Training then amplifies a
one-ulp difference step after step, and by the end of a smoke run a float32 metric can differ
in its third digit (issue 13: clipping-gradients, 0.16722 vs 0.16848 on an Intel Xeon).

Root cause (issue 13): on an AMD EPYC, MKL takes one code path for S = 1 and S = 2 (batched
matmuls, their backward and grouped convolutions are bitwise equal there); on an Intel Xeon it
takes other kernels by shape, which round differently. clipping-gradients' metrics amplify a
one-ulp difference ~1e5-fold within 5 steps: with float32-ulp rounding injected here
(``repro.rounding.LayoutNoise``), seed 1's ``eff_clip_25g`` moves from 0.16848 to 0.16975, as
it moved to 0.16722 on the Xeon. Its deep clipped layers' gradients are ~1e-18 (c = 0.01) and
exactly 0 (c = 0.001): sums that cancel, computed at the level of rounding.

So the equivalence is tested where it is exact up to rounding, with a tolerance derived from
rounding, not fitted to one machine:

- in float64 (``repro.rounding.default_dtype``; every experiment builds its tensors in torch's
  default dtype), over the first few training steps (``FEW_STEPS`` below);
- with ``LayoutNoise``: every matmul and convolution output is perturbed by a relative amount of
  a few float64 ulps that depends on the operands' shapes, so the S = 2 and S = 1 layouts round
  differently *on every machine*, as they may on some. The test passes here only if it would
  pass on any x86 CPU;
- tolerance ``max(RTOL |x|, ATOL, FLOOR_FACTOR x floor)``: RTOL = 1e-9, where the largest
  relative difference of a well-conditioned number over all experiments is 7e-11 (d-perfect's
  ``quality``), and a cross-seed coupling bug is >= 1e-6 (``test_cross_seed_coupling_is_caught``);
  ``floor`` is the number's own rounding floor, measured as the spread of two roundings of the
  same run (``rounding_floor``). Only the numbers ILL_CONDITIONED declares may have a floor above
  RTOL (``test_rounding_floor_is_small_except_where_declared``); those are not compared (they
  move with the rounding itself), every other number of the same tables is.

Checked beyond this machine's kernels: with ``ATEN_CPU_CAPABILITY=avx2`` and ``=default`` (PyTorch's
AVX2 and non-SIMD kernels) and ``MKL_ENABLE_INSTRUCTIONS=AVX2``, this file and the engine,
training, nets, data, losses and metrics tests pass.

Bit-identical reruns on the same machine and seeds are tested separately
(``test_same_seeds_same_machine_bit_identical``).
"""

from __future__ import annotations

import contextlib
from functools import cache

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from repro import claims, experiments
from repro.rounding import LayoutNoise, default_dtype, ulps

CPU = torch.device("cpu")
RTOL = 1e-9
ATOL = 1e-12
# relative perturbation of a matmul/conv output: a few float64 ulps (2**-52 = 2.2e-16)
LAYOUT_NOISE = ulps(4, torch.float64)
# a number may differ by this many times its own rounding floor (see rounding_floor)
FLOOR_FACTOR = 100

# Each experiment that trains, cut to its first few steps (the smoke spec's params otherwise).
FEW_STEPS: dict[str, dict] = {
    "annealed-noise-training": {"steps": 4, "anneal_steps": 3, "eval_every": 2},
    "clipping-gradients": {"steps": 3, "surface_steps": 3},
    "critic-tracks-quality": {"steps": 4, "eval_every": 2},
    "d-perfect": {
        "d_iterations": 4,
        "eval_every": 2,
        "eval_every_early": 1,
        "eval_early_until": 2,
        "classifier_steps": 4,
    },
    "dirac-gan": {"n_steps": 10},
    "fenchel-conjugates": {"steps": 5},
    "fgan-gaussian-fit": {"steps": 5},
    "js-disjoint-supports": {"steps": 5},
    "kl-covers-reverse-kl-seeks": {"steps": 5},
    "minus-log-d-instability": {
        "d_iterations": 4,
        "eval_every": 2,
        "eval_every_early": 1,
        "eval_early_until": 2,
    },
    "mode-collapse-mixtures": {"steps": 3},
    "mode-rotation": {"steps": 4, "snapshot_every": 2},
    "noise-restores-overlap": {"d_iterations": 4, "eval_every": 2},
    "optimal-discriminator": {"steps": 5},
    "pacgan-table1": {"steps": 3},
    "saturation": {"steps": 4, "early_steps": 2, "eval_every": 2},
    "stacked-digits-modes": {"steps": 3, "classifier_steps": 5},
    "vanishing-gradients": {
        "d_iterations": 4,
        "eval_every": 2,
        "eval_every_early": 1,
        "eval_early_until": 2,
    },
    "wgan-critic-vs-discriminator": {"steps": 5},
}
# Claims whose experiment trains nothing (closed forms, quadrature, exact W1 on fixed draws).
NO_TRAINING = {"minus-log-d-is-kl-minus-2js", "noise-bound"}
# Numbers computed at the level of rounding error: their value depends on the kernels, so they
# are compared with a tolerance of FLOOR_FACTOR x their measured rounding floor, never RTOL.
# (Measured relative floors at LAYOUT_NOISE; a float32 run multiplies them by ~5e8.)
ILL_CONDITIONED: dict[str, dict[str, tuple[str, ...]]] = {
    # log10 slopes of weight-gradient norms through 12 layers clipped at c = 0.01, 0.001: the deep
    # layers' gradients are ~1e-18 and ~1e-29, sums that cancel (relative floor 1e-2, 1e-4); and
    # the count of those norms that underflow to exactly 0 at c = 0.001
    "clipping-gradients": {"seeds": ("abs_slope_clip_1", "abs_slope_clip_2", "dead_layers_clip_2")},
    # Frechet distance of two real samples' classifier features: a matrix square root of nearly
    # equal covariances, a difference of nearly equal numbers (relative floor 6e-8)
    "d-perfect": {"snapshots": ("fd_real",), "quality": ("fd_real",)},
    # Thm 2.6's tails: deviations of each D's -log D gradient from the mean over Ds that were
    # trained only a few steps from one start, differences of nearly equal numbers (floor 1e-3;
    # the standardised QQ values move by ~0.1)
    "minus-log-d-instability": {
        "seeds": ("tail_ratio_across_ds",),
        "snapshots": ("tail_ratio_across_ds",),
        "qq": ("value",),
    },
}
# Index columns of the batched layout itself (copy k of the S x conditions copies): they differ
# between layouts by definition and are not compared.
LAYOUT_COLUMNS = ("copy",)
# Tables that keep the first seed's rows only (samples for a figure): not per-seed evidence.
FIRST_SEED_ONLY = {"mode-collapse-mixtures": ("samples",), "pacgan-table1": ("samples",)}


@cache
def _specs() -> dict[str, claims.Spec]:
    return claims.load_all()


def _params(claim_id: str) -> dict:
    spec = _specs()[claim_id]
    return {**spec.params("smoke"), **FEW_STEPS[claim_id]}


def _run(claim_id: str, seeds: tuple[int, ...], salt: int | None) -> dict[str, pd.DataFrame]:
    """The experiment at its few-step params in float64; rounding perturbed unless salt is None."""
    spec = _specs()[claim_id]
    exp = experiments.get(spec["experiment"])
    torch.set_num_threads(1)
    noise = LayoutNoise(LAYOUT_NOISE, salt) if salt is not None else contextlib.nullcontext()
    with default_dtype(torch.float64), noise:
        return exp.run(_params(claim_id), list(seeds), CPU)


@cache
def _runs(claim_id: str) -> tuple[dict, dict, dict]:
    """(seeds 0 and 1 together, seed 1 alone, seed 1 alone rounded another way)."""
    return (
        _run(claim_id, (0, 1), salt=0),
        _run(claim_id, (1,), salt=0),
        _run(claim_id, (1,), salt=1),
    )


def _seed_rows(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    return table[table["seed"] == seed].reset_index(drop=True)


def _numeric(table: pd.DataFrame) -> pd.DataFrame:
    numbers = table.select_dtypes(include=[np.number, bool]).astype(float)
    return numbers.drop(columns=[c for c in LAYOUT_COLUMNS if c in numbers.columns])


def _per_seed_tables(tables: dict, claim_id: str) -> list[str]:
    skip = FIRST_SEED_ONLY.get(claim_id, ())
    return [name for name, t in tables.items() if "seed" in t.columns and name not in skip]


def rounding_floor(claim_id: str, name: str) -> pd.DataFrame:
    """Per number of table ``name``: how far two roundings of the same run (seed 1 alone) lie
    apart. A well-conditioned number moves by ~1e-15 relative; an ill-conditioned one (a
    quantity computed at the level of rounding error) moves by much more."""
    _, a, b = _runs(claim_id)
    return (_numeric(_seed_rows(a[name], 1)) - _numeric(_seed_rows(b[name], 1))).abs()


def test_every_claim_is_covered():
    """A new claim must be added to FEW_STEPS (it trains) or NO_TRAINING (it does not)."""
    ids = set(_specs())
    assert ids == set(FEW_STEPS) | NO_TRAINING, sorted(ids ^ (set(FEW_STEPS) | NO_TRAINING))
    assert not set(FEW_STEPS) & NO_TRAINING


def test_few_step_params_are_valid():
    for claim_id in FEW_STEPS:
        spec = _specs()[claim_id]
        unknown = set(FEW_STEPS[claim_id]) - set(experiments.get(spec["experiment"]).params)
        assert not unknown, (claim_id, unknown)


def _mismatches(claim_id: str, both: dict, alone: dict) -> list[str]:
    """Where seed 1 trained beside seed 0 differs from seed 1 alone by more than the tolerance:
    max(RTOL |x|, ATOL, FLOOR_FACTOR x the number's rounding floor)."""
    problems = []
    for name in _per_seed_tables(both, claim_id):
        a, b = _seed_rows(both[name], 1), _seed_rows(alone[name], 1)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            problems.append(f"{name}: shape {a.shape} batched vs {b.shape} alone")
            continue
        labels_a = a.select_dtypes(exclude=[np.number, bool])
        if not labels_a.equals(b.select_dtypes(exclude=[np.number, bool])):
            problems.append(f"{name}: label columns differ")
        # the declared ill-conditioned numbers differ with the rounding itself (measured: by
        # 0.3% between layouts with PyTorch's non-SIMD kernels): no tolerance they can honour
        skip = [c for c in ILL_CONDITIONED.get(claim_id, {}).get(name, ()) if c in a.columns]
        x, y = _numeric(a.drop(columns=skip)), _numeric(b.drop(columns=skip))
        tol = np.maximum(RTOL * y.abs(), ATOL)
        floor = rounding_floor(claim_id, name).drop(columns=skip).max()  # per column
        tol = np.maximum(tol, FLOOR_FACTOR * floor.fillna(0).to_numpy())
        bad = ~(((x - y).abs() <= tol) | (x.isna() & y.isna()) | (x == y))
        for col in x.columns[bad.any()]:
            i = int(np.flatnonzero(bad[col].to_numpy())[0])
            problems.append(f"{name}.{col}[{i}]: {x[col].iloc[i]!r} batched vs {y[col].iloc[i]!r}")
    return problems


@pytest.mark.parametrize("claim_id", sorted(FEW_STEPS))
def test_batched_equals_separate_first_steps(claim_id):
    """Seed 1 trained beside seed 0 equals seed 1 alone, in float64 over the first steps, with
    layout-dependent rounding injected (module docstring): every per-seed table, every number."""
    both, alone, _ = _runs(claim_id)
    assert set(both) == set(alone)
    assert list(both["seeds"]["seed"]) == [0, 1]
    assert _per_seed_tables(both, claim_id)
    assert not _mismatches(claim_id, both, alone)


@pytest.mark.parametrize("claim_id", sorted(FEW_STEPS))
def test_rounding_floor_is_small_except_where_declared(claim_id):
    """Every number of every per-seed table is well-conditioned (two roundings agree to RTOL),
    except the ones ILL_CONDITIONED declares, with the reason. A number that is not declared and
    moves with the rounding would make cross-machine results differ in more than the last digits.
    """
    _, alone, _ = _runs(claim_id)
    declared = ILL_CONDITIONED.get(claim_id, {})
    found = {}
    for name in _per_seed_tables(alone, claim_id):
        floor = rounding_floor(claim_id, name)
        y = _numeric(_seed_rows(alone[name], 1)).abs()
        over = (floor > np.maximum(RTOL * y, ATOL)).any()
        cols = sorted(c for c in floor.columns if over[c])
        if cols:
            found[name] = cols
    undeclared = {n: [c for c in cols if c not in declared.get(n, ())] for n, cols in found.items()}
    assert not {n: c for n, c in undeclared.items() if c}, undeclared


@pytest.mark.parametrize("claim_id", ["optimal-discriminator", "saturation"])
def test_layout_noise_is_felt(claim_id):
    """The injected rounding reaches the results (else the equivalence test would prove nothing)
    and, for well-conditioned numbers, stays below RTOL / 100 after the first steps."""
    _, alone, _ = _runs(claim_id)
    clean = _run(claim_id, (1,), salt=None)["seeds"]
    x, y = _numeric(alone["seeds"]).to_numpy(), _numeric(clean).to_numpy()
    ok = np.isfinite(x) & np.isfinite(y) & (y != 0)
    rel = np.abs(x[ok] - y[ok]) / np.abs(y[ok])
    assert rel.max() > 0, "layout noise changed nothing"
    assert rel.max() < RTOL / 100, f"rounding amplified to {rel.max():.3g} within a few steps"


class SeedCoupling(TorchDispatchMode):
    """A deliberate bug: every batched matmul output gets 1e-6 x its mean over the seed
    dimension, so seed 1's numbers depend on seed 0's when they share a batch."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten.bmm.default, torch.ops.aten.baddbmm.default):
            with torch.no_grad():
                out = out + 1e-6 * out.mean(0, keepdim=True)
        return out


def test_cross_seed_coupling_is_caught():
    """With seeds coupled through 1e-6 of a batch mean, the equivalence test fails."""
    claim_id = "optimal-discriminator"
    with SeedCoupling():
        both = _run(claim_id, (0, 1), salt=0)
        alone = _run(claim_id, (1,), salt=0)
    assert _mismatches(claim_id, both, alone)


def test_same_seeds_same_machine_bit_identical():
    """Same machine, same seeds, same code: the numbers are bit-identical (float32, as run)."""
    spec = _specs()["clipping-gradients"]
    exp = experiments.get(spec["experiment"])
    torch.set_num_threads(1)
    params = {**spec.params("smoke"), **FEW_STEPS["clipping-gradients"]}
    a = exp.run(params, [0, 1], CPU)["seeds"]
    b = exp.run(params, [0, 1], CPU)["seeds"]
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert np.isfinite(_numeric(a).to_numpy()).any()
