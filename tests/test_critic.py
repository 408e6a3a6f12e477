"""WGAN critic claims: slope and rank-correlation helpers against references, smoke runs."""

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
from scipy import stats

from repro import divergences as dv
from repro.engine.streams import Stream
from repro.experiments import critic_tracks_quality as ctq
from repro.experiments import wgan_critic_vs_discriminator as wcd
from repro.nets import BatchedMLP

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = {
    "wgan-critic-vs-discriminator": wcd.EXPERIMENT,
    "critic-tracks-quality": ctq.EXPERIMENT,
}


def test_input_slope_of_an_affine_net_is_its_weight():
    net = BatchedMLP((1, 1), seeds=[0, 1])
    x = torch.linspace(-2, 2, 5).reshape(1, 5, 1).expand(2, -1, -1)
    out, slope = wcd.input_slope(net, x)
    torch.testing.assert_close(slope, net.layers[0].weight[:, 0, :].expand(2, 5))
    torch.testing.assert_close(out, net(x)[..., 0])


def test_sigmoid_slope_matches_autograd_and_saturates():
    net = BatchedMLP((1, 8, 1), seeds=[3])
    x = torch.linspace(-3, 3, 7).reshape(1, 7, 1).requires_grad_(True)
    (ref,) = torch.autograd.grad(torch.sigmoid(net(x)).sum(), x)
    logits, dlogits = wcd.input_slope(net, x)
    torch.testing.assert_close(wcd.sigmoid_slope(logits, dlogits), ref[..., 0])
    # D (1 - D) l' with l = -20: e^-20 l' (no cancellation to 0 in float32)
    tiny = wcd.sigmoid_slope(torch.tensor([-20.0]), torch.tensor([2.0]))
    assert float(tiny) == pytest.approx(2.0 * np.exp(-20.0), rel=1e-5)


@pytest.mark.parametrize("n", [5, 21])
def test_spearman_matches_scipy_with_ties(n):
    rng = np.random.default_rng(n)
    a = rng.integers(0, 4, n).astype(float)  # ties
    b = a + rng.normal(size=n)
    assert ctq.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert ctq.spearman(b, 2 * b + 1) == pytest.approx(1.0)
    assert ctq.spearman(b, -(b**3)) == pytest.approx(-1.0)


def test_tracking_per_seed_on_a_hand_made_table():
    steps = np.arange(5)
    w1 = np.array([2.0, 1.5, 1.0, 0.6, 0.5])
    curves = pd.concat(
        [
            pd.DataFrame(
                {"model": "wgan", "seed": 7, "step": steps, "estimate": 0.01 * w1, "w1": w1}
            ),
            pd.DataFrame(
                {
                    "model": "gan",
                    "seed": 7,
                    "step": steps,
                    "w1": w1,
                    "estimate": [0.1, 0.69, 0.68, 0.60, 0.69],
                }
            ),
        ]
    )
    row = ctq.tracking_per_seed(curves).iloc[0]
    assert row["wgan_spearman"] == pytest.approx(1.0)
    assert row["wgan_w1_ratio"] == pytest.approx(0.25)
    assert row["gan_w1_ratio"] == pytest.approx(0.25)
    late = curves[(curves.model == "gan") & (curves.step > 0)]  # step 0: untrained net
    assert row["gan_spearman"] == pytest.approx(
        stats.spearmanr(late["estimate"], late["w1"]).statistic
    )
    # ranks (3.5, 2, 1, 3.5) vs (4, 3, 2, 1): r = 0.5 / sqrt(4.5 * 5)
    assert row["gan_spearman"] == pytest.approx(0.5 / math.sqrt(22.5))
    # log 2 - estimate over steps 1..4, median: log 2 - median(0.69, 0.68, 0.60, 0.69)
    assert row["gan_js_gap_median"] == pytest.approx(dv.LOG2 - 0.685)


@pytest.mark.parametrize("ambient_dim", [2, 5])
def test_estimates_of_a_constant_net_are_zero(ambient_dim):
    params = {
        "n_modes": 8,
        "ring_radius": 2.0,
        "mode_std": 0.05,
        "ambient_dim": ambient_dim,
        "z_dim": 2,
        "hidden": 8,
        "depth": 1,
        "n_eval": 64,
        "n_w1": 32,
    }
    g, d = ctq._gan_pair(params, [0, 1], torch.device("cpu"))
    with torch.no_grad():
        for p in d.parameters():
            p.zero_()  # logits 0: D = 1/2, V = -log 4, JS estimate 0; critic constant: 0
    real = ctq._mixture(params)
    for kind in ("wgan", "gan"):
        ev = ctq.evaluate_checkpoint(g, d, real, params, [0, 1], kind, torch.device("cpu"))
        np.testing.assert_allclose(ev["estimate"].numpy(), 0.0, atol=1e-6)
        # n_w1 samples kept for W1, in R^ambient_dim
        assert ev["real"].shape == ev["fake"].shape == (2, 32, ambient_dim)
        (w1,) = ctq.w1_after([(0, ev)], [0, 1])  # solved after training
        assert np.all(w1 > 0)


def test_ring_lies_in_the_first_plane_and_keeps_its_radius():
    """ambient_dim pads the ring with zeros: the first two coordinates are the 2-D ring (the same
    numbers as ambient_dim 2), the others are exactly 0; below 2 is refused."""
    base = {"n_modes": 8, "ring_radius": 2.0, "mode_std": 0.05}
    flat = ctq._mixture({**base, "ambient_dim": 2})(Stream([3], "data"), 256)
    high = ctq._mixture({**base, "ambient_dim": 6})(Stream([3], "data"), 256)
    assert high.shape == (1, 256, 6)
    torch.testing.assert_close(high[..., :2], flat)
    assert torch.all(high[..., 2:] == 0)
    radius = flat.norm(dim=-1)
    assert float((radius - 2.0).abs().max()) < 0.5  # std 0.05 around radius 2
    with pytest.raises(ValueError, match="ambient_dim must be >= 2"):
        ctq._mixture({**base, "ambient_dim": 1})


# ------------------------------------------------------------------------------ smoke


def _spec(claim_id: str) -> dict:
    return yaml.safe_load((ROOT / "claims" / f"{claim_id}.yaml").read_text())


@cache
def _smoke(claim_id: str, seeds: tuple[int, ...]) -> dict[str, pd.DataFrame]:
    torch.set_num_threads(1)
    exp = CLAIMS[claim_id]
    return exp.run(_spec(claim_id)["scales"]["smoke"]["params"], list(seeds), torch.device("cpu"))


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_smoke_tables_and_determinism(claim_id):
    exp = CLAIMS[claim_id]
    tables = _smoke(claim_id, (0, 1))
    seeds = tables["seeds"]
    assert list(seeds["seed"]) == [0, 1]
    assert np.all(np.isfinite(seeds[list(exp.metrics)].to_numpy(dtype=float)))
    # batched == separate: tests/test_equivalence.py (float64, first steps, all experiments)
    for name, fn in exp.figures.items():
        fig = fn(tables, _spec(claim_id)["scales"]["smoke"]["params"], {})
        assert isinstance(fig, matplotlib.figure.Figure), name
        plt.close(fig)
