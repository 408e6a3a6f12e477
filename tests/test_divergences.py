"""Closed forms and limiting cases of repro.divergences (quadrature vs closed form, f-GAN table)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from repro import divergences as dv

X = np.linspace(-25.0, 25.0, 10_001)  # wide, fine grid: trapezoid error << 1e-9 for these pairs
GAUSS_PAIRS = [((0.0, 1.0), (1.0, 1.0)), ((0.0, 1.0), (0.5, 1.3)), ((-1.0, 0.7), (2.0, 1.5))]
NAMES = list(dv.F_DIVERGENCES)


def densities(pair):
    (m1, s1), (m2, s2) = pair
    return dv.gaussian_pdf(X, m1, s1), dv.gaussian_pdf(X, m2, s2)


def interior_grid(name: str, n: int = 41) -> np.ndarray:
    lo, hi = dv.get_f(name).f_star_domain
    a = -5.0 if lo == -math.inf else lo + 0.01
    b = 5.0 if hi == math.inf else hi - 0.01
    return np.linspace(a, b, n)


# ------------------------------------------------------------------------------ densities


def test_gaussian_and_mixture_integrate_to_one():
    assert np.trapezoid(dv.gaussian_pdf(X, 0.3, 0.8), X) == pytest.approx(1.0, abs=1e-12)
    mix = dv.mixture_pdf(X, [0.2, 0.8], [-2.0, 3.0], [0.5, 1.5])
    assert np.trapezoid(mix, X) == pytest.approx(1.0, abs=1e-12)
    assert np.trapezoid(X * mix, X) == pytest.approx(0.2 * -2.0 + 0.8 * 3.0, abs=1e-10)


def test_mixture_weights_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        dv.mixture_pdf(X, [0.5, 0.4], [0.0, 1.0], [1.0, 1.0])


# ------------------------------------------------------------------------------ divergences


@pytest.mark.parametrize("pair", GAUSS_PAIRS)
def test_kl_quadrature_matches_gaussian_closed_form(pair):
    p, q = densities(pair)
    (m1, s1), (m2, s2) = pair
    assert dv.kl(p, q, X) == pytest.approx(dv.kl_gaussians(m1, s1, m2, s2), rel=1e-9)
    assert dv.kl(q, p, X) == pytest.approx(dv.kl_gaussians(m2, s2, m1, s1), rel=1e-9)


def test_kl_gaussians_known_value():
    # equal variances: KL = (mean1 - mean2)^2 / (2 std^2)
    assert dv.kl_gaussians(0.0, 2.0, 3.0, 2.0) == pytest.approx(9.0 / 8.0, rel=1e-14)


def test_js_of_identical_is_zero_and_bounded_by_log2():
    p, q = densities(GAUSS_PAIRS[1])
    assert dv.js(p, p, X) == pytest.approx(0.0, abs=1e-15)
    assert 0.0 < dv.js(p, q, X) < dv.LOG2


def test_disjoint_supports_js_log2_tv_one_kl_inf():
    p, q = dv.gaussian_pdf(X, -15.0, 0.5), dv.gaussian_pdf(X, 15.0, 0.5)  # overlap < 1e-200
    assert dv.js(p, q, X) == pytest.approx(dv.LOG2, abs=1e-12)
    assert dv.tv(p, q, X) == pytest.approx(1.0, abs=1e-12)
    box_p = np.where((X >= 0) & (X <= 1), 1.0, 0.0)
    box_q = np.where((X >= 2) & (X <= 3), 1.0, 0.0)
    assert dv.kl(box_p, box_q, X) == math.inf
    assert dv.kl(box_q, box_p, X) == math.inf
    assert dv.js(box_p, box_q, X) == pytest.approx(dv.LOG2 * np.trapezoid(box_p, X), rel=1e-12)


def test_w1_of_shifted_copies_is_the_shift():
    p = dv.mixture_pdf(X, [0.3, 0.7], [-1.0, 2.0], [0.4, 1.0])
    q = dv.mixture_pdf(X, [0.3, 0.7], [0.75, 3.75], [0.4, 1.0])  # p shifted by 1.75
    assert dv.w1_1d(p, q, X) == pytest.approx(1.75, rel=1e-6)
    assert dv.w1_1d(p, p, X) == pytest.approx(0.0, abs=1e-15)


def test_w1_samples_matches_sorted_1d_and_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200) * 2.0 + 1.0
    sorted_w1 = np.mean(np.abs(np.sort(a) - np.sort(b)))  # exact for equal-size 1-D samples
    assert dv.w1_samples(a, b) == pytest.approx(sorted_w1, rel=1e-9)
    pts = rng.normal(size=(150, 2))
    assert dv.w1_samples(pts, pts + np.array([0.6, -0.8])) == pytest.approx(1.0, rel=1e-9)


def test_parallel_lines_closed_forms():
    out = dv.parallel_lines(np.array([-0.5, 0.0, 2.0]))
    np.testing.assert_allclose(out["w"], [0.5, 0.0, 2.0])
    np.testing.assert_allclose(out["js"], [dv.LOG2, 0.0, dv.LOG2])
    np.testing.assert_allclose(out["tv"], [1.0, 0.0, 1.0])
    assert list(out["kl"]) == [math.inf, 0.0, math.inf]
    assert list(out["reverse_kl"]) == [math.inf, 0.0, math.inf]


# ------------------------------------------------------------------------------ GAN value


@pytest.mark.parametrize("pair", GAUSS_PAIRS)
def test_value_at_optimal_discriminator_is_2js_minus_log4(pair):
    p, q = densities(pair)
    d_star = dv.optimal_discriminator(p, q)
    expected = -dv.LOG4 + 2.0 * dv.js(p, q, X)
    assert dv.gan_value(d_star, p, q, X) == pytest.approx(expected, abs=1e-12)
    logits = np.log(p) - np.log(q)  # D* = sigmoid(log p - log q)
    assert dv.gan_value_logits(logits, p, q, X) == pytest.approx(expected, abs=1e-12)


def test_value_at_equal_densities_is_minus_log4():
    p = dv.gaussian_pdf(X, 0.0, 1.0)
    assert dv.gan_value(dv.optimal_discriminator(p, p), p, p, X) == pytest.approx(
        -dv.LOG4, abs=1e-12
    )


@pytest.mark.parametrize("bump", [0.05, -0.05, 0.2])
def test_optimal_discriminator_maximises_value(bump):
    p, q = densities(GAUSS_PAIRS[2])
    d_star = dv.optimal_discriminator(p, q)
    best = dv.gan_value(d_star, p, q, X)
    wiggle = bump * np.sin(X) * d_star * (1 - d_star)  # stays inside (0, 1)
    assert dv.gan_value(d_star + wiggle, p, q, X) < best - 1e-6
    assert dv.gan_value(np.full_like(X, 0.5), p, q, X) == pytest.approx(-dv.LOG4, abs=1e-12)
    assert dv.gan_value(np.full_like(X, 0.5), p, q, X) < best


def test_optimal_discriminator_is_half_where_both_vanish():
    d = dv.optimal_discriminator(np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(d, [0.5, 0.5, 0.0])


# ------------------------------------------------------------------------------ f-GAN table


def test_unknown_f_lists_valid_names():
    with pytest.raises(ValueError, match="valid: kl, reverse_kl, pearson, neyman"):
        dv.get_f("wasserstein")
    with pytest.raises(ValueError, match="squared_hellinger, js, gan"):
        dv.f_divergence("chi", X, X, X)


def test_table_has_the_seven_rows_of_fgan_table2():
    # plus Jeffrey (also a row of f-GAN Table 2), added for the fgan-gaussian-fit claim
    assert NAMES == [
        "kl",
        "reverse_kl",
        "pearson",
        "neyman",
        "squared_hellinger",
        "js",
        "gan",
        "jeffrey",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_conjugate_closed_form_matches_numeric_sup(name):
    t = interior_grid(name)
    closed = dv.get_f(name).f_star(t)
    np.testing.assert_allclose(dv.conjugate_numeric(name, t), closed, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_fenchel_young_inequality(name):
    row = dv.get_f(name)
    u = np.geomspace(1e-3, 1e3, 61)[:, None]
    t = interior_grid(name)[None, :]
    assert np.all(row.f(u) + row.f_star(t) >= u * t - 1e-9)
    # equality at t = f'(u): the sup defining f* is attained at u
    tu = row.f_prime(u)
    np.testing.assert_allclose(row.f(u) + row.f_star(tu), u * tu, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_output_activation_maps_reals_into_dom_fstar(name):
    row = dv.get_f(name)
    lo, hi = row.f_star_domain
    v = np.linspace(-30.0, 30.0, 601)
    g = row.g_f(v)
    assert np.all((g > lo) & (g < hi))
    # f*(g_f(v)) in its stable form equals the composition where the latter is accurate
    vm = np.linspace(-8.0, 8.0, 81)
    np.testing.assert_allclose(row.f_star_g(vm), row.f_star(row.g_f(vm)), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_table_works_on_torch_tensors(name):
    row = dv.get_f(name)
    v = torch.linspace(-5.0, 5.0, 21, dtype=torch.float64)
    torch.testing.assert_close(
        row.f_star_g(v), torch.from_numpy(row.f_star_g(v.numpy())), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(
        row.g_f(v), torch.from_numpy(row.g_f(v.numpy())), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("pair", GAUSS_PAIRS)
def test_each_row_equals_the_named_divergence(pair):
    p, q = densities(pair)
    (m1, s1), (m2, s2) = pair
    jsd = dv.js(p, q, X)
    expected = {
        "kl": dv.kl_gaussians(m1, s1, m2, s2),
        "reverse_kl": dv.kl_gaussians(m2, s2, m1, s1),
        "pearson": dv.pearson_gaussians(m1, s1, m2, s2),
        "neyman": dv.pearson_gaussians(m2, s2, m1, s1),
        "squared_hellinger": dv.squared_hellinger_gaussians(m1, s1, m2, s2),
        "js": 2.0 * jsd,  # f-GAN's Jensen-Shannon f gives TWICE the JSD
        "gan": 2.0 * jsd - dv.LOG4,  # f-GAN Table 1: D_GAN = 2 JSD - log 4
    }
    for name, value in expected.items():
        got = dv.f_divergence(name, p, q, X)
        if math.isinf(value):  # the integral diverges: on a finite grid it is just huge
            assert got > 1e6, name
        else:
            assert got == pytest.approx(value, rel=1e-8), name
    assert math.isinf(expected["neyman"]) == (s2**2 >= 2 * s1**2)


def test_f_divergence_of_identical_is_f_of_one():
    p = dv.gaussian_pdf(X, 0.0, 1.0)
    for name in NAMES:
        assert dv.f_divergence(name, p, p, X) == pytest.approx(dv.get_f(name).f_one, abs=1e-12)
    assert dv.get_f("gan").f_one == pytest.approx(-dv.LOG4, abs=1e-15)


def test_f_divergence_on_disjoint_supports_uses_limits():
    p, q = dv.gaussian_pdf(X, -15.0, 0.5), dv.gaussian_pdf(X, 15.0, 0.5)
    p[X > 0], q[X < 0] = 0.0, 0.0  # exactly disjoint
    assert dv.f_divergence("kl", p, q, X) == math.inf
    assert dv.f_divergence("reverse_kl", p, q, X) == math.inf
    assert dv.f_divergence("pearson", p, q, X) == math.inf
    assert dv.f_divergence("js", p, q, X) == pytest.approx(2 * dv.LOG2, rel=1e-9)
    assert dv.f_divergence("gan", p, q, X) == pytest.approx(0.0, abs=1e-9)
    assert dv.f_divergence("squared_hellinger", p, q, X) == pytest.approx(2.0, rel=1e-9)


def test_pearson_gaussians_infinite_when_q_too_narrow():
    assert dv.pearson_gaussians(0.0, 1.0, 0.0, 0.7) == math.inf  # 2 * 0.49 < 1
