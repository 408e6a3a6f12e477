"""The three analytic experiments at smoke scale: contract, determinism, batched == separate."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from repro import data, experiments
from repro import divergences as dv
from repro.engine import Stream
from repro.experiments import fenchel_conjugates as fc
from repro.experiments import js_disjoint_supports as jsd
from repro.experiments import optimal_discriminator as od
from repro.invariants import InvariantError
from repro.nets import BatchedMLP

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = {
    "optimal-discriminator": "optimal_discriminator",
    "js-disjoint-supports": "js_disjoint_supports",
    "fenchel-conjugates": "fenchel_conjugates",
}
CPU = torch.device("cpu")


def spec(claim_id: str) -> dict:
    return yaml.safe_load((ROOT / "claims" / f"{claim_id}.yaml").read_text())


def smoke_params(claim_id: str) -> dict:
    return spec(claim_id)["scales"]["smoke"]["params"]


@cache
def smoke_run(claim_id: str) -> dict[str, pd.DataFrame]:
    """One smoke run per claim, shared by the tests below (seeds [0])."""
    torch.set_num_threads(1)
    exp = experiments.get(CLAIMS[claim_id])
    return exp.run(smoke_params(claim_id), [0], CPU)


# ------------------------------------------------------------------------------ specs


# ------------------------------------------------------------------------------ contract


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_smoke_run_returns_a_finite_seeds_table(claim_id):
    exp = experiments.get(CLAIMS[claim_id])
    seeds = smoke_run(claim_id)["seeds"]
    assert list(seeds["seed"]) == [0]
    assert set(exp.metrics) <= set(seeds.columns)
    values = seeds[list(exp.metrics)].to_numpy(dtype=float)
    assert np.all(np.isfinite(values))


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_figures_are_drawn_from_the_tables(claim_id):
    exp = experiments.get(CLAIMS[claim_id])
    tables = smoke_run(claim_id)
    for fig_fn in exp.figures.values():
        fig = fig_fn(tables, smoke_params(claim_id), spec(claim_id)["reported"])
        assert isinstance(fig, matplotlib.figure.Figure)
        plt.close(fig)


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_same_seeds_give_identical_numbers(claim_id):
    exp = experiments.get(CLAIMS[claim_id])
    again = exp.run(smoke_params(claim_id), [0], CPU)
    pd.testing.assert_frame_equal(again["seeds"], smoke_run(claim_id)["seeds"], check_exact=True)


# ------------------------------------------------------------------------------ pieces


def test_optimal_discriminator_scores_d_star_as_exact():
    x = np.linspace(*od.GRID, 2001)
    p, q = (od.mixture_density(x, m) for m in od.PAIRS["mixture"])
    logits = np.log(p) - np.log(q)
    out = od.evaluate_pair(logits, p, q, x, support_frac=0.05)
    assert out["d_sup_error"] == pytest.approx(0.0, abs=1e-12)
    assert out["value_gap"] == pytest.approx(0.0, abs=1e-10)


def test_mixture_sampler_matches_its_density():
    mix = od.PAIRS["mixture"][0]
    gens = Stream([0], "data")
    u, eps = gens.uniform(200_000, dtype=torch.float64), gens.normal(200_000)
    xs = od.sample_mixture(mix, u, eps).double()
    # mean 0, variance 0.5^2 + 2^2 = 4.25; standard errors ~0.005 and ~0.01
    assert float(xs.mean()) == pytest.approx(0.0, abs=0.03)
    assert float(xs.var()) == pytest.approx(4.25, abs=0.06)


def test_parallel_lines_samples_and_line_fit():
    real, fake = data.sample_line_pairs([0.0, 0.5], Stream([0, 1], "data"), 1000)
    assert real.shape == fake.shape == (4, 1000, 2)
    assert torch.all(real[..., 0] == 0)
    torch.testing.assert_close(fake[2:, :, 0], torch.full((2, 1000), 0.5))
    assert float(real[..., 1].min()) >= 0 and float(real[..., 1].max()) <= 1
    slope, intercept, r2 = jsd.line_fit(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]))
    assert (slope, intercept, r2) == pytest.approx((2.0, 1.0, 1.0), abs=1e-12)


def test_critic_penalty_is_zero_for_a_unit_slope_critic():
    crit = BatchedMLP((2, 1), seeds=[0])
    with torch.no_grad():
        crit.layers[0].weight.copy_(torch.tensor([[[-1.0], [0.0]]]))  # f(x) = -x1 (+ bias)
    real = torch.zeros(1, 8, 2)
    fake = torch.cat([torch.full((1, 8, 1), 0.7), torch.rand(1, 8, 1)], -1)
    u = torch.rand(1, 8, 1)
    loss = jsd.critic_loss(crit, real, fake, u, gp_lambda=10.0)
    torch.testing.assert_close(loss, torch.tensor([-0.7]), rtol=0, atol=1e-6)  # -(W) + 0


def test_fgan_conjugate_table_and_quadrature_bound_at_t_star():
    table = fc.conjugate_table(["kl", "gan"], 5)
    assert table["rel_error"].max() < 1e-9
    x = np.linspace(*fc.GRID, 3001)
    (mp, sp), (mq, sq) = fc.PAIRS["shift"]
    p, q = dv.gaussian_pdf(x, mp, sp), dv.gaussian_pdf(x, mq, sq)
    # KL: g_f is the identity, so V = T* = 1 + log(p/q) attains D_f exactly
    v_star = 1.0 + np.log(p) - np.log(q)
    assert fc.quadrature_bound("kl", v_star, p, q, x) == pytest.approx(0.5, rel=1e-9)
    assert fc.quadrature_bound("kl", v_star + 0.3, p, q, x) < 0.5


def test_unknown_names_list_the_valid_ones():
    params = {**smoke_params("optimal-discriminator"), "pairs": ["shift", "nope"]}
    with pytest.raises(ValueError, match="valid: shift, scale, mixture"):
        od.run(params, [0], CPU)
    params = {**smoke_params("fenchel-conjugates"), "divergences": ["kl", "no-such-divergence"]}
    with pytest.raises(ValueError, match="valid: kl, reverse_kl, pearson"):
        fc.run(params, [0], CPU)


# ------------------------------------------------------------------------------ invariants


def test_value_above_c_of_g_raises_an_invariant_error(monkeypatch):
    """V(D, G) <= C(G) holds by construction on the grid: if it did not, the run must raise."""
    monkeypatch.setattr(dv, "gan_value_logits", lambda *a: 1.0)  # V > C(G)
    params = {**smoke_params("optimal-discriminator"), "steps": 2}
    with pytest.raises(InvariantError, match="exceeds C\\(G\\)"):
        od.run(params, [0], CPU)


def test_bound_above_d_f_raises_an_invariant_error(monkeypatch):
    """Fenchel-Young makes the quadrature bound <= D_f: a bound above it must raise."""
    monkeypatch.setattr(fc, "quadrature_bound", lambda *a: 1e3)
    params = {**smoke_params("fenchel-conjugates"), "steps": 2, "conjugate_points": 3}
    with pytest.raises(InvariantError, match="exceeds D_f"):
        fc.run(params, [0], CPU)


def test_per_seed_splits_small_and_large_thetas():
    """Worst gap / accuracy over |theta| >= 0.1 and over 0 < |theta| < 0.1, kept apart."""
    thetas = [-1.0, -0.01, 0.0, 0.001, 0.5]
    js = [0.69, 0.40, 0.001, 0.05, 0.68]
    acc = [1.0, 0.97, 0.5, 0.6, 0.995]
    est = pd.DataFrame(
        {
            "seed": 0,
            "theta": thetas,
            "js_estimate": js,
            "d_accuracy": acc,
            "w_estimate": np.abs(thetas),
            "w_true": np.abs(thetas),
        }
    )
    row = jsd.per_seed(est).iloc[0]
    assert row["js_gap_max"] == pytest.approx(dv.LOG2 - 0.68)
    assert row["d_accuracy_min"] == pytest.approx(0.995)
    assert row["js_gap_max_small"] == pytest.approx(dv.LOG2 - 0.05)
    assert row["d_accuracy_min_small"] == pytest.approx(0.6)
    assert row["js_at_zero_abs"] == pytest.approx(0.001)
    assert row["w_slope"] == pytest.approx(1.0) and row["w_r2"] == pytest.approx(1.0)
