"""clipping-gradients: samplers, clipping, penalty, slope fit, duality bound, smoke run."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from repro import claims
from repro.claims import OPS
from repro.engine.streams import Stream
from repro.experiments import clipping_gradients as cg
from repro.nets import BatchedMLP

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def test_swiss_roll_without_noise_lies_on_the_spiral():
    x = cg.sample_swiss_roll(Stream([0, 1], "data"), 500, noise_std=0.0).double()
    t = cg.SWISS_SCALE * x.norm(dim=-1)  # |(t cos t, t sin t)| = t
    assert float(t.min()) >= 1.5 * math.pi - 1e-4
    assert float(t.max()) <= 4.5 * math.pi + 1e-4
    torch.testing.assert_close(x[..., 0], t * torch.cos(t) / cg.SWISS_SCALE, atol=1e-5, rtol=0)
    torch.testing.assert_close(x[..., 1], t * torch.sin(t) / cg.SWISS_SCALE, atol=1e-5, rtol=0)


def test_toy_samplers_match_the_wgan_gp_toy_data():
    x = cg.toy_sampler("8gaussians")(Stream([0], "data"), 4000)
    r = x.double().norm(dim=-1)
    assert float(r.mean()) == pytest.approx(2 / 1.414, abs=0.01)
    assert float(r.std()) == pytest.approx(0.02 / 1.414, rel=0.1)
    g = cg.toy_sampler("25gaussians")(Stream([0], "data"), 4000)
    assert float(g.abs().max()) == pytest.approx(4 / 2.828, abs=0.1)
    with pytest.raises(ValueError, match="valid: swissroll"):
        cg.toy_sampler("moons")


def test_clip_per_copy_uses_each_copys_bound():
    net = cg.he_init_(BatchedMLP((2, 8, 1), seeds=[0, 0]))
    cg.clip_per_copy_(net, torch.tensor([0.1, 0.001]))
    for p in net.parameters():  # bounds as float32 numbers, like the parameters
        assert float(p[0].detach().abs().max()) <= float(np.float32(0.1))
        assert float(p[1].detach().abs().max()) <= float(np.float32(0.001))
    assert float(net.layers[0].weight[0].detach().abs().max()) == pytest.approx(0.1)


def test_penalty_of_an_affine_critic_is_norm_minus_one_squared():
    net = BatchedMLP((2, 1), seeds=[0, 1])
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[[3.0], [4.0]], [[0.6], [0.8]]]))
    real, fake = torch.randn(2, 16, 2), torch.randn(2, 16, 2)
    pen = cg.penalty_per_copy(net, real, fake, Stream([0, 1], "data"))
    torch.testing.assert_close(pen, torch.tensor([16.0, 0.0]), atol=1e-5, rtol=0)


def test_log_slope_recovers_a_geometric_trend_and_floors_zeros():
    layers = np.arange(1, 13)
    norms = np.stack([10.0 ** (2 - 0.3 * layers), 10.0 ** (0.5 + 0.0 * layers)])
    np.testing.assert_allclose(cg.log_slope(norms), [-0.3, 0.0], atol=1e-12)
    dead = norms[:1].copy()
    dead[0, :3] = 0.0  # exactly zero: floored at 1e-30, slope stays finite and positive
    assert np.isfinite(cg.log_slope(dead)).all()
    assert cg.log_slope(dead)[0] > 0


def test_efficiency_of_an_affine_critic_is_below_one():
    # E_r f - E_g f = w . (mean_r - mean_g) <= |w| W1: duality on the same samples
    params = {"n_w1": 300, "fake_noise_std": 1.0}
    net = BatchedMLP((2, 1), seeds=[0, 1])
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[[1.0], [0.0]], [[0.3], [-2.0]]]))
    shifted = lambda gens, b, device=None: cg.toy_sampler("8gaussians")(gens, b) + 3.0  # noqa: E731
    eff, est, w1 = cg.efficiency(net, shifted, Stream([0, 1], 4), params, CPU)
    assert np.all(eff <= 1.0 + 1e-6)
    assert np.all(w1 > 0)


# ------------------------------------------------------------------------------ smoke


def _spec() -> dict:
    return yaml.safe_load((ROOT / "claims" / "clipping-gradients.yaml").read_text())


@cache
def _smoke(seeds: tuple[int, ...]) -> dict[str, pd.DataFrame]:
    torch.set_num_threads(1)
    return cg.run(_spec()["scales"]["smoke"]["params"], list(seeds), CPU)


def test_spec_names_three_clips_at_every_scale():
    """The metrics name three clip values (tiny / paper / large): every scale gives three."""
    for scale in ("smoke", "quick", "full"):
        assert len(_spec()["scales"][scale]["params"]["clips"]) == 3, scale


def test_smoke_tables_determinism_and_figures():
    tables = _smoke((0, 1))
    seeds = tables["seeds"]
    assert list(seeds["seed"]) == [0, 1]
    metrics = list(cg.EXPERIMENT.metrics)
    assert np.all(np.isfinite(seeds[metrics].to_numpy(dtype=float)))
    # batched == separate: tests/test_equivalence.py (float64, first steps, all experiments)
    assert set(tables["layers"]["layer"]) == set(range(1, 13))
    for name, fn in cg.EXPERIMENT.figures.items():
        fig = fn(tables, _spec()["scales"]["smoke"]["params"], {})
        assert isinstance(fig, matplotlib.figure.Figure), name
        plt.close(fig)


@pytest.mark.parametrize("data_name", ["8gaussians", "25gaussians"])
def test_near_optimal_critic_premise_fails_for_an_untrained_critic(data_name):
    """Null model of the premises gp_critic_near_optimal_*: an untrained critic (the quick
    scale's 3 x 128 net, freshly initialised, 3 seeds) captures far less than 70% of W1."""
    from repro.engine import STREAMS
    from repro.nets import BatchedMLP

    spec = claims.load_spec(ROOT / "claims" / "clipping-gradients.yaml")
    params = spec.params("quick")
    (premise,) = [
        p for p in spec.premises if p["metric"] == "eff_gp_" + data_name.replace("gaussians", "g")
    ]
    seeds = [0, 1, 2]
    net = BatchedMLP(
        (2, *[int(params["surface_width"])] * 3, 1), seeds, stream=STREAMS["critic_init"]
    )
    eff, _, _ = cg.efficiency(net, cg.toy_sampler(data_name), Stream(seeds, "eval"), params, CPU)
    assert not any(OPS[premise["op"]](float(e), premise["value"]) for e in eff), eff
