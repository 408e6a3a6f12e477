"""f-GAN Gaussian fits and KL vs reverse KL: the Jeffrey row, exact fits against closed forms,
the shape metrics on hand values, and both experiments at smoke scale (tables, determinism,
batched seeds equal separate runs)."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import jsonschema
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy import special

from repro import divergences as dv
from repro import experiments
from repro.experiments import kl_covers_reverse_kl_seeks as cover_seek
from repro.experiments.family import fdiv_fit

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")
CLAIMS = {
    "fgan-gaussian-fit": "fgan_gaussian_fit",
    "kl-covers-reverse-kl-seeks": "kl_covers_reverse_kl_seeks",
}


def spec(claim_id: str) -> dict:
    return yaml.safe_load((ROOT / "claims" / f"{claim_id}.yaml").read_text())


@cache
def smoke_run(claim_id: str) -> dict[str, pd.DataFrame]:
    torch.set_num_threads(1)
    exp = experiments.get(CLAIMS[claim_id])
    return exp.run(spec(claim_id)["scales"]["smoke"]["params"], [0], CPU)


# ------------------------------------------------------------------------------ Jeffrey row


def test_log_lambertw_exp_solves_its_equation_and_matches_scipy():
    a = np.array([-60.0, -3.0, 0.0, 1.0, 2.5, 40.0, 800.0, 1e5])
    y = dv.log_lambertw_exp(a)
    np.testing.assert_allclose(np.exp(y) + y, a, rtol=1e-12, atol=1e-12)
    small = a < 50  # scipy needs exp(a) to be finite
    np.testing.assert_allclose(
        np.exp(y[small]), special.lambertw(np.exp(a[small])).real, rtol=1e-12
    )


def test_log_lambertw_exp_gradient_is_w_over_one_plus_w():
    a = torch.tensor([-4.0, 0.3, 5.0, 300.0], dtype=torch.float64, requires_grad=True)
    w = dv.log_lambertw_exp(a).exp()
    (grad,) = torch.autograd.grad(w.sum(), a)
    torch.testing.assert_close(grad, (w / (1 + w)).detach(), rtol=1e-10, atol=1e-12)


def test_jeffrey_conjugate_matches_the_numeric_sup():
    t = np.linspace(-6.0, 4.0, 41)
    closed = dv.get_f("jeffrey").f_star(t)
    np.testing.assert_allclose(dv.conjugate_numeric("jeffrey", t), closed, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("p, q", [((0.0, 1.0), (1.0, 1.0)), ((0.3, 0.8), (-0.5, 1.3))])
def test_jeffrey_divergence_is_kl_plus_reverse_kl(p, q):
    x = np.linspace(-20.0, 20.0, 8001)
    value = dv.f_divergence("jeffrey", dv.gaussian_pdf(x, *p), dv.gaussian_pdf(x, *q), x)
    assert value == pytest.approx(dv.kl_gaussians(*p, *q) + dv.kl_gaussians(*q, *p), rel=1e-8)


def test_jeffrey_bound_is_tight_at_t_star():
    x = np.linspace(-20.0, 20.0, 8001)
    p, q = dv.gaussian_pdf(x, 0.0, 1.0), dv.gaussian_pdf(x, 0.7, 1.2)
    row = dv.get_f("jeffrey")
    t_star = row.f_prime(p / q)
    bound = np.trapezoid(p * t_star - q * row.f_star(t_star), x)
    assert bound == pytest.approx(dv.f_divergence("jeffrey", p, q, x), rel=1e-8)


# ------------------------------------------------------------------------------ exact fits


def test_kl_fit_is_moment_matching():
    mix = fdiv_fit.MIXTURES["asymmetric"]
    x = np.linspace(-20.0, 20.0, 6001)
    mean, std, _ = fdiv_fit.exact_fit("kl", mix, x)
    w, m, s = (np.asarray(v) for v in mix)
    mean_cf = float(w @ m)
    std_cf = math.sqrt(float(w @ (s**2 + m**2)) - mean_cf**2)
    assert (mean, std) == pytest.approx((mean_cf, std_cf), abs=1e-5)
    assert fdiv_fit.mixture_moments(mix) == pytest.approx((mean_cf, std_cf), abs=1e-12)


@pytest.mark.parametrize("name", ["reverse_kl", "js", "jeffrey", "pearson", "squared_hellinger"])
def test_every_fit_of_a_gaussian_target_is_the_target(name):
    target = ((1.0,), (0.4,), (1.3,))
    x = np.linspace(-20.0, 20.0, 4001)
    mean, std, value = fdiv_fit.exact_fit(name, target, x)
    assert (mean, std) == pytest.approx((0.4, 1.3), abs=1e-4)
    assert value == pytest.approx(0.0, abs=1e-8)


def test_reverse_kl_fit_of_two_far_modes_sits_on_one():
    mix = fdiv_fit.MIXTURES["bimodal"]
    x = np.linspace(-20.0, 20.0, 6001)
    mean, std, value = fdiv_fit.exact_fit("reverse_kl", mix, x)
    # on one mode the reverse KL is about log 2 (Q misses half of P's mass)
    assert abs(mean) == pytest.approx(3.0, abs=1e-3)
    assert std == pytest.approx(0.5, abs=1e-3)
    assert value == pytest.approx(math.log(2.0), abs=1e-3)


def test_fgan_bound_by_hand_for_kl_and_reverse_kl():
    v_real = torch.tensor([[[0.0], [1.0]], [[0.0], [1.0]]])  # (2 copies, 2 samples, 1)
    v_fake = torch.tensor([[[0.0], [2.0]], [[0.0], [2.0]]])
    f = fdiv_fit.fgan_bound(v_real, v_fake, ["kl", "reverse_kl"])
    kl = 0.5 * (0 + 1) - 0.5 * (math.exp(-1) + math.exp(1))  # g = v, f*(t) = exp(t - 1)
    rkl = 0.5 * (-1 - math.exp(-1)) - 0.5 * (-1 + 1)  # g = -exp(-v), f*(g(v)) = v - 1
    torch.testing.assert_close(f, torch.tensor([kl, rkl]), rtol=1e-6, atol=1e-7)


def test_shape_metrics_by_hand():
    mix = fdiv_fit.MIXTURES["bimodal"]  # modes at -3 and 3, std 0.5: half gap 3
    covering = cover_seek.shape_metrics(0.0, 3.0, mix, "a")
    assert covering == pytest.approx(
        {"a_center_offset": 0.0, "a_mode_offset": 1.0, "a_std_half_gap": 1.0, "a_std_mode": 6.0}
    )
    seeking = cover_seek.shape_metrics(-2.7, 0.5, mix, "b")
    assert seeking == pytest.approx(
        {"b_center_offset": 0.9, "b_mode_offset": 0.1, "b_std_half_gap": 1 / 6, "b_std_mode": 1.0}
    )


# ------------------------------------------------------------------------------ experiments


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_spec_validates_and_matches_its_experiment(claim_id):
    data = spec(claim_id)
    schema = yaml.safe_load((ROOT / "claims" / "schema" / "claim.schema.yaml").read_text())
    jsonschema.validate(data, schema)
    exp = experiments.get(data["experiment"])
    assert data["experiment"] == CLAIMS[claim_id]
    for check in data["checks"] + data.get("premises", []):
        assert check["metric"] in exp.metrics
    for scale in ("smoke", "quick", "full"):
        assert set(data["scales"][scale]["params"]) == set(exp.params), scale
    assert {f["name"] for f in data["figures"]} <= set(exp.figures)


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_smoke_run_returns_a_finite_seeds_table(claim_id):
    exp = experiments.get(CLAIMS[claim_id])
    seeds = smoke_run(claim_id)["seeds"]
    assert list(seeds["seed"]) == [0]
    assert np.all(np.isfinite(seeds[list(exp.metrics)].to_numpy(dtype=float)))


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_figures_are_drawn_from_the_tables(claim_id):
    exp = experiments.get(CLAIMS[claim_id])
    params = spec(claim_id)["scales"]["smoke"]["params"]
    for fig_fn in exp.figures.values():
        fig = fig_fn(smoke_run(claim_id), params, spec(claim_id)["reported"])
        assert isinstance(fig, matplotlib.figure.Figure)
        plt.close(fig)


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_same_seeds_give_identical_numbers(claim_id):
    exp = experiments.get(CLAIMS[claim_id])
    again = exp.run(spec(claim_id)["scales"]["smoke"]["params"], [0], CPU)
    pd.testing.assert_frame_equal(again["seeds"], smoke_run(claim_id)["seeds"], check_exact=True)


def test_exact_cover_seek_is_an_invariant_that_raises_on_a_wrong_mixture(monkeypatch):
    """The exact fits are seed-free facts of the mixture: true for the registered one, and an
    invariant (an error, never a vote) for a mixture whose modes overlap (both fits central)."""
    from repro.invariants import InvariantError

    x = np.linspace(*fdiv_fit.GRID, 2001)
    ok = fdiv_fit.MIXTURES["bimodal"]
    star = {
        r.divergence: (r.mean, r.std)
        for r in fdiv_fit.exact_table(ok, cover_seek.COVER_SEEK, x).itertuples()
    }
    cover_seek.require_exact_cover_seek(star, ok)  # the registered mixture passes
    close = ((0.5, 0.5), (-0.3, 0.3), (1.0, 1.0))  # modes 0.6 apart, std 1: one bump
    star = {
        r.divergence: (r.mean, r.std)
        for r in fdiv_fit.exact_table(close, cover_seek.COVER_SEEK, x).itertuples()
    }
    with pytest.raises(InvariantError, match="reverse-KL fit does not seek one mode"):
        cover_seek.require_exact_cover_seek(star, close)


# ------------------------------------------------------------------------ convergence premise


@pytest.mark.parametrize("name", ["kl", "reverse_kl"])
def test_convergence_premise_fails_on_null_fits_and_passes_at_the_optimum(name):
    """Null models of the premise '<f>_grad_ratio <= 0.1': a fit that never left its start (ratio
    exactly 1) and a fixed wrong Gaussian stalled in the gap both fail; the exact optimum (a
    stationary point) passes."""
    mix, x = fdiv_fit.MIXTURES["bimodal"], np.linspace(*fdiv_fit.GRID, 6001)
    start = (0.2, 1.0)
    limit = fdiv_fit.CONVERGED_GRAD_RATIO
    assert fdiv_fit.grad_ratio(name, mix, x, start, start) == pytest.approx(1.0)
    assert fdiv_fit.grad_ratio(name, mix, x, (1.8, 0.4), start) > limit  # stalled off the mode
    mean, std, _ = fdiv_fit.exact_fit(name, mix, x)
    assert fdiv_fit.grad_ratio(name, mix, x, (mean, std), start) < 0.01 * limit


def test_exact_grad_matches_the_gaussian_kl_closed_form():
    """KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1) / 2 - log s: d/dm = m, d/dlog s = s^2 - 1."""
    one = ((1.0,), (0.0,), (1.0,))  # P = N(0, 1) as a one-component mixture
    x = np.linspace(*fdiv_fit.GRID, 8001)
    grad = fdiv_fit.exact_grad("reverse_kl", one, x, 0.7, 1.5)  # KL(Q || P), Q = N(0.7, 1.5^2)
    np.testing.assert_allclose(grad, [0.7, 1.5**2 - 1.0], rtol=1e-6)


def test_premises_are_reported_per_seed():
    for claim_id, cols in (
        ("kl-covers-reverse-kl-seeks", ["kl_grad_ratio", "rkl_grad_ratio"]),
        ("fgan-gaussian-fit", ["grad_ratio_max"]),
    ):
        table = smoke_run(claim_id)["seeds"]
        values = table[cols].to_numpy(float)
        assert np.all(values >= 0) and not np.any(np.isnan(values))  # +inf allowed: not converged


def test_a_narrow_fit_has_a_finite_reverse_kl_not_minus_inf():
    """Q = N(2.95, 0.13^2) against the bimodal P: its denormal tail once made p / q overflow and
    reverse KL read -inf (the best of all models); closed form check against P = N(0, 1)."""
    mix, x = fdiv_fit.MIXTURES["bimodal"], np.linspace(*fdiv_fit.GRID, 8001)
    p = dv.mixture_pdf(x, *mix)
    value = fdiv_fit.divergence_to_gaussian("reverse_kl", p, x, 2.95, 0.13)
    assert math.isfinite(value) and value > math.log(2)  # above the optimum's log 2
    one = ((1.0,), (0.0,), (1.0,))
    m, s = 1.0, 0.05  # KL(N(m, s^2) || N(0, 1)) = (s^2 + m^2 - 1) / 2 - log s
    got = fdiv_fit.divergence_to_gaussian("reverse_kl", dv.mixture_pdf(x, *one), x, m, s)
    assert got == pytest.approx((s**2 + m**2 - 1) / 2 - math.log(s), rel=1e-6)
