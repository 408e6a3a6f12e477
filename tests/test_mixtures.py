"""Mode-collapse experiments (repro.experiments.family.mixtures, its claim modules): the
protocol on constructed samples, the tables, batched == separate seeds, and each claim's smoke
run (tables, determinism)."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from repro import claims, experiments, noise
from repro.data import grid_means
from repro.experiments import mode_rotation
from repro.experiments.family import mixture_tables as mt
from repro.experiments.family import mixtures as mx
from repro.metrics import EVAL_SAMPLES, HIGH_QUALITY_STDS, mode_metrics

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ("mode-collapse-mixtures", "pacgan-table1", "mode-rotation")


@cache
def _spec(claim_id: str) -> claims.Spec:
    return claims.load_spec(ROOT / "claims" / f"{claim_id}.yaml")


@cache
def _smoke(claim_id: str) -> dict[str, pd.DataFrame]:
    torch.set_num_threads(1)
    spec = _spec(claim_id)
    return experiments.get(spec["experiment"]).run(spec.params("smoke"), [0], torch.device("cpu"))


# ------------------------------------------------------------------ protocol on constructed data


def test_protocol_constants_and_data_sets():
    assert EVAL_SAMPLES == 2500 and HIGH_QUALITY_STDS == 3.0
    params = {"ring_radius": 1.0, "ring_std": 0.01, "grid_std": 0.05}
    ring, grid = mx.get_mixture("ring", params), mx.get_mixture("grid", params)
    angles = torch.atan2(ring.means[:, 1], ring.means[:, 0]) % (2 * math.pi)
    torch.testing.assert_close(angles, 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8)
    assert {tuple(p) for p in grid.means.tolist()} == {
        (-4.0 + 2 * i, -4.0 + 2 * j) for i in range(5) for j in range(5)
    }
    assert (ring.mode_std, grid.mode_std) == (0.01, 0.05)


def test_grid_metrics_all_modes_one_mode_none_high_quality():
    means, std = grid_means(5, 2.0), 0.05
    all_modes = means[torch.arange(2500) % 25]  # 100 exact hits per mode
    one_mode = means[torch.full((2500,), 7)] + torch.tensor([2.9 * std, 0.0], dtype=torch.float64)
    none_hq = means[torch.arange(2500) % 25] + torch.tensor([0.0, 3.1 * std], dtype=torch.float64)
    out = mode_metrics(torch.stack([all_modes, one_mode, none_hq]), means, std)
    torch.testing.assert_close(
        out["modes_captured"], torch.tensor([25.0, 1.0, 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        out["high_quality_frac"], torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    )
    assert out["reverse_kl"][0].item() == pytest.approx(0.0, abs=1e-12)
    assert out["reverse_kl"][1].item() == pytest.approx(math.log(25), abs=1e-12)
    assert math.isnan(out["reverse_kl"][2].item())


def test_rotation_stats_on_a_constructed_histogram():
    # seed 0: dominant modes 0, 0, 3, 3, 2 -> 2 switches, 3 distinct; median share 0.8
    h0 = torch.tensor(
        [[8, 1, 1, 0], [8, 2, 0, 0], [2, 1, 1, 6], [1, 2, 1, 6], [0, 0, 10, 0]], dtype=torch.float64
    )
    h1 = torch.tensor([[2.0, 3.0, 2.0, 2.0]] * 5, dtype=torch.float64)  # always mode 1, share 3/9
    out = mode_rotation.rotation_stats(torch.stack([h0, h1]))
    torch.testing.assert_close(out["switches"], torch.tensor([2.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(out["distinct"], torch.tensor([3.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(out["top_share"], torch.tensor([0.8, 1 / 3], dtype=torch.float64))


def test_seed_table_gains_and_paper_comparison():
    results = pd.DataFrame(
        {
            "method": ["gan", "gan", "pacgan2", "pacgan2"],
            "dataset": ["grid"] * 4,
            "seed": [0, 1, 0, 1],
            "modes": [17.0, 19.0, 24.0, 22.0],
            "hq": [90.0, 80.0, 70.0, 60.0],
            "rkl": [0.7, 0.5, 0.1, 0.2],
            "w1": [0.3, 0.4, 0.2, 0.1],
        }
    )
    table = mt.seed_table(results, [0, 1], ("gan", "pacgan2", "pacgan3"))
    assert list(table.columns) == ["seed", *mt.metric_names(("gan", "pacgan2", "pacgan3"))]
    np.testing.assert_allclose(table["modes_gain_pacgan2_grid"], [7.0, 3.0])
    np.testing.assert_allclose(table["rkl_drop_pacgan2_grid"], [0.6, 0.3])
    assert table["modes_gain_pacgan3_grid"].isna().all() and table["modes_gan_ring"].isna().all()
    pc = mt.paper_comparison(results, {"pacgan_grid_gan_modes": 17.3, "veegan_grid_gan_hq": 0.5})
    row = pc[(pc.method == "gan") & (pc.metric == "modes")].iloc[0]
    assert row.ours_mean == 18.0 and row.ours_se == pytest.approx(1.0)  # std 1.414 / sqrt 2
    assert row.pacgan == 17.3 and math.isnan(row.veegan)
    assert pc[(pc.method == "gan") & (pc.metric == "hq")].iloc[0].veegan == 0.5


def test_instance_noise_uses_the_shared_transform():
    params = {"steps": 10, "noise_schedule": {"kind": "linear", "start_std": 0.2, "end_std": 0.0}}
    x = torch.zeros(2, 5, 2)
    got = mx._noise(mx.get_method("instance-noise"), params, 5, x, _gens([0, 1]))
    want = noise.add_instance_noise(x, 0.1, _gens([0, 1]))
    torch.testing.assert_close(got, want)
    assert mx._noise(mx.get_method("gan"), params, 5, x, _gens([0, 1])) is x


def _gens(seeds):
    from repro.engine.streams import Stream

    return Stream(seeds, 5)


# ------------------------------------------------------------------ the claims at smoke scale


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_smoke_tables_metrics_and_figures(claim_id):
    spec = _spec(claim_id)
    exp = experiments.get(spec["experiment"])
    tables = _smoke(claim_id)
    seeds = tables["seeds"]
    assert list(seeds["seed"]) == [0]
    assert set(exp.metrics) <= set(seeds.columns)
    for check in spec.checks:
        assert np.isfinite(seeds[check["metric"]]).all() or claim_id != "mode-rotation"
    for fig in spec.figures:
        exp.figures[fig["name"]](tables, spec.params("smoke"), spec["reported"])
    if claim_id != "mode-rotation":
        pc = tables["paper_comparison"]
        assert {"method", "dataset", "metric", "ours_mean", "ours_se", "veegan", "pacgan"} <= set(
            pc
        )
        gan = pc[(pc.method == "gan") & (pc.dataset == "grid") & (pc.metric == "modes")]
        assert gan.pacgan.iloc[0] == spec["reported"]["values"]["pacgan_grid_gan_modes"]


def test_smoke_determinism():
    """Same seed, same numbers: a second run of a cheap subset equals the first."""
    params = dict(
        _spec("mode-collapse-mixtures").params("smoke"),
        datasets=["grid"],
        methods=["gan", "unrolled5", "instance-noise", "feature-matching"],
    )
    exp = experiments.get("mode_collapse_mixtures")
    a = exp.run(params, [3], torch.device("cpu"))
    b = exp.run(params, [3], torch.device("cpu"))
    pd.testing.assert_frame_equal(a["seeds"], b["seeds"])
    pd.testing.assert_frame_equal(a["samples"], b["samples"])
