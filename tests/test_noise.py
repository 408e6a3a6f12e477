"""Instance noise (Arjovsky & Bottou 2017 Sec. 3): noisy-lines JS, D*'s gradient and accuracy,
the truncated-noise bound pieces, and the three noise experiments at smoke scale."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy import integrate, special, stats

from repro import data, divergences, experiments
from repro.engine.streams import Stream
from repro.experiments import annealed_noise_training as ant
from repro.experiments import noise_bound as nb
from repro.experiments import noise_restores_overlap as nro
from repro.experiments.family import noise as fnoise
from repro.nets import BatchedMLP

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = {
    "noise-restores-overlap": "noise_restores_overlap",
    "noise-bound": "noise_bound",
    "annealed-noise-training": "annealed_noise_training",
}


def _js_gaussians_1d(theta: float, std: float) -> float:
    """JS of N(0, s^2) and N(theta, s^2) by 1-D quadrature (repro.divergences), independent path."""
    x = np.linspace(min(0, theta) - 12 * std, max(0, theta) + 12 * std, 40001)
    p, q = divergences.gaussian_pdf(x, 0, std), divergences.gaussian_pdf(x, theta, std)
    return divergences.js(p, q, x)


# ---------------------------------------------------------------- noisy lines: JS, D*, gradient


@pytest.mark.parametrize("theta, std", [(0.5, 0.1), (0.1, 0.3), (1.0, 1.0), (-0.25, 0.05)])
def test_noisy_lines_js_2d_quadrature_equals_gaussian_js(theta, std):
    # the x2 factor h_s is common to both densities, so the 2-D JS is the 1-D Gaussian one
    assert fnoise.js_noisy_lines(theta, std, 201) == pytest.approx(
        _js_gaussians_1d(theta, std), rel=1e-7
    )


@pytest.mark.parametrize("theta, std", [(0.5, 0.3), (0.1, 0.05), (1.0, 1.0)])
def test_noisy_lines_js_matches_monte_carlo(theta, std):
    mc, se = fnoise.js_noisy_lines_mc(theta, std, 100_000, torch.Generator().manual_seed(3))
    assert abs(fnoise.js_noisy_lines(theta, std, 201) - mc) <= 4 * se


def test_noisy_lines_js_limits():
    assert fnoise.js_noisy_lines(0.3, 0.0) == divergences.LOG2
    assert fnoise.js_noisy_lines(0.0, 0.0) == 0.0
    assert fnoise.js_noisy_lines(0.0, 0.2, 201) == pytest.approx(0.0, abs=1e-12)
    # sigma -> 0 at fixed theta != 0: JS -> log 2 (Example 1 recovered), decreasing in sigma
    vals = [fnoise.js_noisy_lines(0.5, s, 201) for s in (0.02, 0.05, 0.1, 0.3, 1.0)]
    assert vals[0] == pytest.approx(divergences.LOG2, abs=1e-9)
    assert all(a > b for a, b in zip(vals, vals[1:], strict=False))
    assert vals[-1] < 0.05


def test_blurred_uniform_is_a_density_and_tends_to_the_indicator():
    x = np.linspace(-2, 3, 20001)
    assert np.trapezoid(fnoise.blurred_uniform_pdf(x, 0.1), x) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(
        fnoise.blurred_uniform_pdf(np.array([-0.5, 0.5, 1.5]), 1e-3), [0, 1, 0]
    )


@pytest.mark.parametrize("theta, std", [(0.5, 0.1), (0.5, 0.3), (0.25, 1.0), (-0.4, 0.2)])
def test_generator_gradient_limit_is_twice_the_js_slope(theta, std):
    h = 1e-4
    fd = (
        fnoise.js_noisy_lines(theta + h, std, 301) - fnoise.js_noisy_lines(theta - h, std, 301)
    ) / (2 * h)
    assert fnoise.gen_grad_limit(theta, std) == pytest.approx(2 * fd, rel=1e-5)
    assert fnoise.gen_grad_limit(theta, 0.0) == 0.0


def test_generator_gradient_limit_against_monte_carlo_with_d_star():
    # E_{x ~ N(theta, s^2)} d/dx log(1 - D*(x)), D* = p/(p+q): the Cor 3.2 gradient, sampled
    theta, std = 0.5, 0.3
    x = theta + std * np.random.default_rng(0).standard_normal(400_000)
    logit = -0.5 * (x / std) ** 2 + 0.5 * ((x - theta) / std) ** 2  # log p - log q
    dlogit = -x / std**2 + (x - theta) / std**2
    per = -special.expit(logit) * dlogit  # d/dx logsigmoid(-l)
    assert per.mean() == pytest.approx(fnoise.gen_grad_limit(theta, std), abs=4 * per.std() / 632)


def test_bayes_accuracy_closed_form_and_limits():
    assert fnoise.bayes_accuracy(0.0, 0.3) == 0.5
    assert fnoise.bayes_accuracy(0.5, 0.0) == 1.0
    theta, std = 0.5, 0.3
    x = std * np.random.default_rng(1).standard_normal(200_000)
    empirical = 0.5 * ((x < theta / 2).mean() + ((x + theta) > theta / 2).mean())
    assert fnoise.bayes_accuracy(theta, std) == pytest.approx(empirical, abs=3e-3)
    assert fnoise.bayes_accuracy(theta, std) == pytest.approx(stats.norm.cdf(theta / (2 * std)))


def test_gen_cost_grad_of_a_linear_discriminator():
    # one linear layer l = w . x + b: d/dtheta mean log(1 - sigmoid(l)) = mean(-sigmoid(l)) w1
    d = BatchedMLP((2, 1), seeds=[0, 1])
    x = torch.randn(2, 50, 2, generator=torch.Generator().manual_seed(0))
    w, b = d.layers[0].weight.detach(), d.layers[0].bias.detach()  # (2, 2, 1), (2, 1)
    logits = torch.baddbmm(b.unsqueeze(1), x, w)  # (2, 50, 1)
    expected = (-torch.sigmoid(logits[..., 0]) * w[:, 0, :]).mean(1)
    torch.testing.assert_close(nro.gen_cost_grad(d, x), expected, rtol=1e-5, atol=1e-7)


def test_noisy_lines_batch_offsets_noise_and_seed_independence():
    stds, thetas = [0.0, 0.5], [0.0, 1.0]
    real, fake = data.sample_noisy_line_pairs(stds, thetas, Stream([3, 4], "data"), 4000)
    assert real.shape == fake.shape == (2 * 2 * 2, 4000, 2)
    copy = lambda i_std, i_th, s: (i_std * 2 + i_th) * 2 + s  # noqa: E731
    torch.testing.assert_close(fake[copy(0, 1, 0), :, 0], torch.ones(4000))  # clean line at 1
    assert fake[copy(1, 1, 1), :, 0].mean().item() == pytest.approx(1.0, abs=0.05)
    assert fake[copy(1, 1, 1), :, 0].std().item() == pytest.approx(0.5, rel=0.05)
    # seed 4's copies are the same whether it is batched with seed 3 or alone
    real4, fake4 = data.sample_noisy_line_pairs(stds, thetas, Stream([4], "data"), 4000)
    torch.testing.assert_close(fake[1::2], fake4)
    torch.testing.assert_close(real[1::2], real4)


def test_end_and_peak_of_gradient_curves():
    it = np.arange(0, 101, 10)
    curves = pd.DataFrame(
        {
            "noise_std": 0.0,
            "theta": 0.5,
            "seed": 0,
            "iteration": it,
            "grad_norm": np.where(it >= 90, [1e-3] * len(it), 1.0 / (1 + it)),
        }
    )
    curves.loc[curves["iteration"] == 100, "grad_norm"] = 3e-3
    end = nro._end(curves)  # last 10% of 100 iterations: iterations 90 and 100
    assert end["grad_end"].item() == pytest.approx(2e-3)
    assert end["grad_max"].item() == pytest.approx(1.0)


def test_instance_noise_only_on_the_noise_copies():
    x = torch.zeros(4, 1000, 2)
    out = ant._two_conditions(x, 0.5, Stream([0, 1], "data"))
    assert torch.equal(out[2:], x[2:])
    assert out[:2].std().item() == pytest.approx(0.5, rel=0.05)


# ---------------------------------------------------------------- truncated noise, Thm 3.3 pieces


def test_truncated_kernel_is_a_density_on_its_box():
    t = np.linspace(-1, 1, 400_001)
    k = nb.truncated_kernel(t, 0.2, 2.0)
    assert np.trapezoid(k, t) == pytest.approx(1.0, abs=1e-4)
    assert k[np.abs(t) > 0.4].max() == 0.0


def test_truncated_noise_variance_and_range():
    std, k = 0.3, 2.0
    (eps,) = nb.truncated_noise((200_000, 2), std, k, Stream([0], "eval"))
    assert np.abs(eps).max() <= k * std
    v = nb.truncated_noise_var(std, k)
    assert (eps**2).sum(1).mean() == pytest.approx(v, rel=1e-2)
    assert v == pytest.approx(2 * stats.truncnorm(-k, k, scale=std).var())
    assert nb.truncated_noise_var(std, 40.0) == pytest.approx(2 * std**2)


def test_noisy_pair_js_lines_matches_1d_truncated_gaussians():
    theta, std, k = 0.5, 0.3, 3.0
    p, q, x1, x2 = nb.noisy_pair_densities("lines", theta, std, k, 301, 1000)
    x = np.linspace(-k * std, theta + k * std, 200_001)
    tn = stats.truncnorm(-k, k, scale=std)
    a, b = tn.pdf(x), tn.pdf(x - theta)
    js_1d = integrate.trapezoid(
        0.5 * special.rel_entr(a, (a + b) / 2) + 0.5 * special.rel_entr(b, (a + b) / 2), x
    )
    assert fnoise.js_2d(p, q, x1, x2) == pytest.approx(js_1d, abs=3e-3)


def test_noisy_pair_js_is_log2_when_truncated_supports_are_disjoint():
    # lines 0.5 apart, noise confined to +-3 * 0.05 = 0.15 per side: disjoint again
    p, q, x1, x2 = nb.noisy_pair_densities("lines", 0.5, 0.05, 3.0, 301, 500)
    assert fnoise.js_2d(p, q, x1, x2) == pytest.approx(divergences.LOG2, abs=1e-9)


def test_support_diameter_of_the_lines():
    theta, std, k = 0.5, 0.1, 3.0
    expected = 2 * (math.hypot(theta / 2, 0.5) + k * std * math.sqrt(2))
    assert nb.support_diameter("lines", theta, std, k) == pytest.approx(expected)


# ---------------------------------------------------------------- experiments at smoke scale


def _spec(claim_id: str) -> dict:
    return yaml.safe_load((ROOT / "claims" / f"{claim_id}.yaml").read_text())


@cache
def _smoke(claim_id: str, seeds: tuple[int, ...]) -> dict[str, pd.DataFrame]:
    torch.set_num_threads(1)
    spec = _spec(claim_id)
    exp = experiments.get(spec["experiment"])
    return exp.run(spec["scales"]["smoke"]["params"], list(seeds), torch.device("cpu"))


@pytest.mark.parametrize("claim_id", list(CLAIMS))
def test_smoke_tables_metrics_and_determinism(claim_id):
    exp = experiments.get(CLAIMS[claim_id])
    a = _smoke(claim_id, (0,))
    seeds = a["seeds"]
    assert list(seeds["seed"]) == [0]
    for metric in exp.metrics:
        assert metric in seeds.columns, metric
    checked = [c["metric"] for c in _spec(claim_id)["checks"] + _spec(claim_id).get("premises", [])]
    assert seeds[checked].notna().all().all()
    b = experiments.get(CLAIMS[claim_id]).run(
        _spec(claim_id)["scales"]["smoke"]["params"], [0], torch.device("cpu")
    )
    pd.testing.assert_frame_equal(a["seeds"], b["seeds"])
    for name, fig_fn in exp.figures.items():
        fig = fig_fn(a, _spec(claim_id)["scales"]["smoke"]["params"], {})
        assert fig.axes, name


def test_thm33_is_an_invariant_that_raises_when_violated():
    from repro.invariants import InvariantError

    per = pd.DataFrame(
        {
            "pair": ["lines", "arc"],
            "noise_std": [0.1, 0.3],
            "seed": [0, 0],
            "bound_ratio": [0.2, 0.9],
        }
    )
    nb.require_thm33(per)  # holds
    per.loc[1, "bound_ratio"] = 1.05
    with pytest.raises(InvariantError, match="Thm 3.3 violated: W1 / bound = 1.05 \\(arc"):
        nb.require_thm33(per)


def test_late_slope_is_the_loglog_slope_over_the_last_half():
    it = np.arange(0, 101, 10, dtype=float)
    curve = pd.DataFrame({"iteration": it, "grad_norm": 5.0 * np.maximum(it, 1.0) ** -1.5})
    assert nro.late_slope(curve) == pytest.approx(-1.5)
    flat = curve.assign(grad_norm=2.0)
    assert nro.late_slope(flat) == pytest.approx(0.0, abs=1e-12)
    dead = curve.assign(grad_norm=0.0)  # 0 throughout: not measurable
    assert np.isnan(nro.late_slope(dead))
    fell = curve.assign(grad_norm=np.where(it < 90, 1e-3, 0.0))  # fell to exactly 0: falling
    assert nro.late_slope(fell) < -100
