"""The five gradient claims: Thm 2.5 math, the saturation closed forms, and every experiment at
its smoke params (tables, determinism) and spec (schema, metrics, params)."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy import integrate

from repro import experiments, losses
from repro.experiments import d_perfect as dp
from repro.experiments import minus_log_d_instability as mld
from repro.experiments import minus_log_d_is_kl_minus_2js as thm25
from repro.experiments import saturation
from repro.experiments import vanishing_gradients as vg
from repro.experiments.family import arjovsky_bottou as ab

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = {
    "d-perfect": "d_perfect",
    "vanishing-gradients": "vanishing_gradients",
    "minus-log-d-instability": "minus_log_d_instability",
    "saturation": "saturation",
    "minus-log-d-is-kl-minus-2js": "minus_log_d_is_kl_minus_2js",
}


def _spec(claim_id: str) -> dict:
    return yaml.safe_load((ROOT / "claims" / f"{claim_id}.yaml").read_text())


@cache
def _smoke(claim_id: str, seeds: tuple[int, ...]) -> dict[str, pd.DataFrame]:
    """The experiment's tables at its smoke params (cached: several tests read them)."""
    torch.set_num_threads(1)
    spec = _spec(claim_id)
    exp = experiments.get(spec["experiment"])
    return exp.run(spec["scales"]["smoke"]["params"], list(seeds), torch.device("cpu"))


# ---------------------------------------------------------------- Thm 2.5 (Arjovsky & Bottou)


@pytest.mark.parametrize("mean0, std0", [(-1.0, 0.5), (2.0, 2.0), (0.7, 1.3)])
def test_thm_2_5_identity_quadrature_vs_finite_differences(mean0, std0):
    real = (0.3, 1.1)
    x = np.linspace(-20.0, 20.0, 20001)
    z = torch.linspace(-12.0, 12.0, 4001, dtype=torch.float64)
    theta0 = np.array([mean0, math.log(std0)])
    real_theta = torch.tensor([real[0], math.log(real[1])], dtype=torch.float64)
    lhs = thm25.minus_log_d_grad_quadrature(torch.from_numpy(theta0), real_theta, z)
    terms = thm25.divergence_grad_fd(theta0, real, x, 1e-4)  # (KL, 2 JSD) x (mean, log_std)
    torch.testing.assert_close(lhs, torch.from_numpy(terms[0] - terms[1]), rtol=1e-6, atol=1e-8)
    # the JSD term matters: dropping it would miss by far more than the tolerance
    assert np.linalg.norm(terms[1]) > 1e-2


def test_thm_2_5_left_side_matches_independent_quadrature():
    """d/dmean E_z[-log D*(mean + std z)] = -int p_g0(x) (1 - D*(x)) (s_r(x) - s_g(x)) dx,
    with Gaussian scores s(x) = -(x - m) / std^2, integrated by scipy (no autograd)."""
    (mr, sr), (mg, sg) = (0.0, 1.0), (1.5, 0.7)

    def integrand(x: float) -> float:
        log_r = -0.5 * ((x - mr) / sr) ** 2 - math.log(sr)
        log_g = -0.5 * ((x - mg) / sg) ** 2 - math.log(sg)
        one_minus_d = 1.0 / (1.0 + math.exp(log_r - log_g))
        p_g = math.exp(log_g) / math.sqrt(2 * math.pi)
        return -p_g * one_minus_d * (-(x - mr) / sr**2 + (x - mg) / sg**2)

    expected, _ = integrate.quad(integrand, -15, 15, epsabs=1e-13, epsrel=1e-12, limit=200)
    theta0 = torch.tensor([mg, math.log(sg)], dtype=torch.float64)
    real = torch.tensor([mr, math.log(sr)], dtype=torch.float64)
    z = torch.linspace(-12.0, 12.0, 4001, dtype=torch.float64)
    lhs = thm25.minus_log_d_grad_quadrature(theta0, real, z)
    assert float(lhs[0]) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_thm_2_5_monte_carlo_per_sample_gradients_average_to_quadrature():
    theta0 = torch.tensor([-1.0, math.log(0.6)], dtype=torch.float64)
    real = torch.tensor([0.0, 0.0], dtype=torch.float64)
    z_grid = torch.linspace(-12.0, 12.0, 4001, dtype=torch.float64)
    z = torch.randn(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    per_sample = thm25.minus_log_d_grad_samples(theta0, real, z)  # (N, 2)
    se = per_sample.std(0) / math.sqrt(z.numel())
    exact = thm25.minus_log_d_grad_quadrature(theta0, real, z_grid)
    assert torch.all((per_sample.mean(0) - exact).abs() < 5 * se)


def test_thm_2_5_far_generator_log_d_star_stays_finite():
    """D* underflows in probability space 30 std away; the logit form must not."""
    x = torch.tensor([30.0], dtype=torch.float64)
    real = torch.tensor([0.0, 0.0], dtype=torch.float64)
    gen0 = torch.tensor([30.0, 0.0], dtype=torch.float64)
    value = thm25.log_d_star(x, real, gen0)
    assert float(value) == pytest.approx(-450.0, rel=1e-12)  # log p_r - log p_g0 = -30^2 / 2


# ---------------------------------------------------------------- saturation closed forms


def test_saturating_cost_logit_gradient_is_minus_sigmoid():
    """d/dl log(1 - sigmoid(l)) = -sigmoid(l) (Goodfellow 2014, Sec. 3), autograd in float64."""
    logits = torch.linspace(-30, 30, 121, dtype=torch.float64).reshape(1, -1).requires_grad_(True)
    (grad,) = torch.autograd.grad(losses.minimax_g_loss(logits).sum(), logits)
    per_sample = grad * logits.shape[1]  # the loss is a mean over the batch
    torch.testing.assert_close(per_sample, -torch.sigmoid(logits.detach()), rtol=1e-12, atol=0)
    torch.testing.assert_close(
        per_sample, saturation.saturating_logit_grad(logits.detach()), rtol=1e-12, atol=0
    )


def test_non_saturating_cost_logit_gradient_is_minus_one_minus_sigmoid():
    """d/dl [-log sigmoid(l)] = -(1 - sigmoid(l)), autograd in float64."""
    logits = torch.linspace(-30, 30, 121, dtype=torch.float64).reshape(1, -1).requires_grad_(True)
    (grad,) = torch.autograd.grad(losses.non_saturating_g_loss(logits).sum(), logits)
    per_sample = grad * logits.shape[1]
    # 1 - sigmoid(l) as written cancels for large l: absolute float64 error ~1e-16 there
    naive = -(1 - torch.sigmoid(logits.detach()))
    torch.testing.assert_close(per_sample, naive, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(
        per_sample, saturation.non_saturating_logit_grad(logits.detach()), rtol=1e-12, atol=0
    )


def test_saturation_ratio_limits():
    """|sat| / |ns| = sigmoid(l) / sigmoid(-l) = exp(l): 1 at D = 1/2, e^-10 at l = -10."""
    logits = torch.tensor([0.0, -10.0], dtype=torch.float64)
    ratio = saturation.saturating_logit_grad(logits) / saturation.non_saturating_logit_grad(logits)
    torch.testing.assert_close(ratio, torch.exp(logits), rtol=1e-12, atol=0)


# ---------------------------------------------------------------- tail statistics (Thm 2.6)


def test_tail_ratio_constants_and_large_samples():
    """(q99 - q01) / (q75 - q25): 2 * 2.3263 / (2 * 0.6745) = 3.449 (Gaussian), tan(0.49 pi) =
    31.82 (Cauchy); large samples land on them, whatever the location and scale."""
    assert mld.GAUSSIAN_TAIL_RATIO == pytest.approx(3.4490, abs=1e-4)
    assert mld.CAUCHY_TAIL_RATIO == pytest.approx(31.821, abs=1e-3)
    gen = torch.Generator().manual_seed(0)
    normal = 3.0 + 5.0 * torch.randn(400_000, generator=gen, dtype=torch.float64)
    cauchy = torch.tan(math.pi * (torch.rand(400_000, generator=gen, dtype=torch.float64) - 0.5))
    assert float(mld.tail_ratio(normal)) == pytest.approx(3.449, rel=0.02)
    assert float(mld.tail_ratio(cauchy)) == pytest.approx(31.82, rel=0.05)


def test_tail_ratio_is_nan_without_spread_and_standardise_recovers_normal():
    values = torch.stack(
        [torch.zeros(100), torch.randn(100, generator=torch.Generator().manual_seed(1))], 1
    )
    ratios = mld.tail_ratio(values, dim=0)
    assert math.isnan(float(ratios[0])) and math.isfinite(float(ratios[1]))
    x = 7.0 - 0.5 * torch.randn(
        200_001, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    z = mld.robust_standardise(x)
    assert float(z.median()) == pytest.approx(0.0, abs=1e-12)
    assert float(z.std()) == pytest.approx(1.0, abs=0.01)


def test_first_iteration_and_censoring():
    curve = pd.DataFrame({"iteration": [0, 10, 20, 30], "acc": [0.5, 0.98, 0.995, 1.0]})
    assert dp.first_iteration(curve, "acc", 0.99, censored=41) == 20
    assert dp.first_iteration(curve, "acc", 1.0, censored=41) == 30
    assert dp.first_iteration(curve.iloc[:2], "acc", 0.99, censored=41) == 41


# ---------------------------------------------------------------- batched snapshots = separate runs


def test_batched_snapshots_equal_separate_fresh_d_runs():
    """K snapshots x S seeds in one batched G / fresh D give the curves of K separate runs.

    The layout axis here is the snapshots (conditions), which the claim-level equivalence test
    (tests/test_equivalence.py) does not vary; like it, it runs in float64 over a few steps, where
    batched equals separate up to rounding on any CPU (issue 13)."""
    torch.set_num_threads(1)
    old_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _snapshot_equivalence()
    finally:
        torch.set_default_dtype(old_dtype)


def _snapshot_equivalence():
    params = _spec("d-perfect")["scales"]["smoke"]["params"] | {
        "d_iterations": 6,
        "eval_every": 3,
        "eval_early_until": 0,
    }
    seeds = [0, 1]
    snaps = [
        ab.make_generator(params | {"z_dim": params["z_dim"]}, seeds, 8).state_dict()
        for _ in (0, 1)
    ]
    snaps[1] = {k: v * 1.1 if v.is_floating_point() else v for k, v in snaps[1].items()}

    def curves(snapshots, epochs):
        G = ab.stack_snapshots(params, seeds, snapshots, "cpu")
        D = ab.fresh_discriminators(params, G, 1, "cpu")
        out = ab.run_fresh_d(params, G, D, 1, ("minimax",), "cpu")
        return ab.label_copies(out, seeds, epochs).drop(columns="copy")

    keys = ["epochs", "seed", "iteration"]
    both = curves(snaps, [1, 2]).sort_values(keys).reset_index(drop=True)
    alone = pd.concat([curves([snaps[0]], [1]), curves([snaps[1]], [2])])
    alone = alone.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(both, alone, check_exact=False, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- every experiment, smoke scale


@pytest.mark.parametrize("claim_id", sorted(CLAIMS))
def test_quick_scale_has_at_least_three_seeds(claim_id):
    assert _spec(claim_id)["scales"]["quick"]["seeds"] >= 3


@pytest.mark.parametrize("claim_id", sorted(CLAIMS))
def test_smoke_seeds_table_is_complete_and_finite(claim_id):
    exp = experiments.get(CLAIMS[claim_id])
    table = _smoke(claim_id, (0,))["seeds"]
    assert list(table["seed"]) == [0]
    # at smoke scale D trains 20 steps: the norm is still rising, so no points after its peak
    # and it stops before the paper's 4,000 D iterations, where the decay is measured
    may_be_nan = {"loss_slope", "log10_decay_4000_largest"}
    for metric in exp.metrics:
        assert metric in table.columns, metric
        if metric not in may_be_nan:
            assert np.all(np.isfinite(table[metric].to_numpy(dtype=float))), metric


@pytest.mark.parametrize("claim_id", sorted(CLAIMS))
def test_smoke_is_deterministic(claim_id):
    first = _smoke(claim_id, (0,))
    _smoke.cache_clear()
    again = _smoke(claim_id, (0,))
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name], check_exact=True)


@pytest.mark.parametrize("claim_id", sorted(CLAIMS))
def test_smoke_figures_draw(claim_id):
    spec = _spec(claim_id)
    exp = experiments.get(spec["experiment"])
    tables = _smoke(claim_id, (0,))
    for name, fig_fn in exp.figures.items():
        fig = fig_fn(tables, spec["scales"]["smoke"]["params"], spec["reported"])
        assert fig.axes, name


def test_best_case_is_the_generator_whose_gradient_decays_most():
    """Fig. 2's "in the best case" is the largest decay over the generators, not the earliest
    one; the decay at 4,000 D iterations is read at the last evaluation at or before 4,000."""
    snaps = pd.DataFrame(
        {
            "seed": [0, 0, 0, 1, 1, 1],
            "epochs": [1, 10, 25, 1, 10, 25],
            "log10_decay": [1.0, 4.0, 2.0, 3.0, 0.5, 0.2],
            "fake_loss_final": [0.1, 0.001, 0.01, 0.002, 0.3, 0.4],
        }
    )
    table = ab.seed_table(
        [0, 1],
        snaps,
        {
            "largest": ("log10_decay", vg._at_largest(snaps, "log10_decay")),
            "loss_at_largest": ("fake_loss_final", vg._at_largest(snaps, "log10_decay")),
            "earliest": ("log10_decay", vg._earliest(snaps)),
        },
    )
    assert table["largest"].tolist() == [4.0, 3.0]
    assert table["loss_at_largest"].tolist() == [0.001, 0.002]  # the premise of that same G
    assert table["earliest"].tolist() == [1.0, 3.0]
