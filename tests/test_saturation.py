"""Saturation (Goodfellow 2014, Sec. 3): minimax vs non-saturating GAN from the same start.

Pure pieces against hand-computed values (the per-seed reduction, W1 to the data, the digits
split), the invariant, and the experiment at smoke size: both runs start equal, batched seeds
equal separate runs."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
import torch

from repro import divergences
from repro.experiments import saturation
from repro.invariants import InvariantError

SMOKE = {
    "z_dim": 4,
    "g_channels": 4,
    "d_channels": 4,
    "g_norm": "batch",
    "lr_g": 0.05,
    "lr_d": 0.05,
    "momentum": 0.5,
    "batch_size": 16,
    "steps": 4,
    "early_steps": 2,
    "eval_every": 2,
}
CPU = torch.device("cpu")


@cache
def _run(seeds: tuple[int, ...]) -> dict[str, pd.DataFrame]:
    torch.set_num_threads(1)
    return saturation.run_saturation(SMOKE, list(seeds), CPU)


def _curves() -> pd.DataFrame:
    """Hand-made curves: 2 seeds, steps 0, 10, 20 (early window = steps 10, 20), end 30."""
    rows = []
    for seed in (0, 1):
        for step, d_mm, w_mm, w_ns in (
            (0, 0.5, 8.0, 8.0),
            (10, 0.003, 7.0, 5.0),
            (20, 0.02, 6.0, 6.0),
            (30, 0.4, 4.0, 4.0),
        ):
            rows.append(
                {
                    "step": step,
                    "seed": seed,
                    "objective": "minimax",
                    "d_fake_median": d_mm + seed,
                    "grad_minimax": 0.01,
                    "grad_non_saturating": 10.0 ** (2 + seed),
                    "w1": w_mm,
                }
            )
            rows.append(
                {
                    "step": step,
                    "seed": seed,
                    "objective": "non-saturating",
                    "d_fake_median": 0.4,
                    "grad_minimax": 0.5,
                    "grad_non_saturating": 1.0,
                    "w1": w_ns,
                }
            )
    return pd.DataFrame(rows)


def test_seed_table_reads_the_early_window_and_the_end():
    table = saturation.saturation_seed_table(_curves(), {"early_steps": 20}, 4.0).set_index("seed")
    # most confident in (0, 20]: step 10 (0.003 < 0.02; seed 1 is shifted by +1, still step 10)
    assert table.loc[0, "d_fake_median_early"] == pytest.approx(0.003)
    assert table.loc[1, "step_most_confident"] == 10
    # same state at step 10: 10^(2 + seed) / 0.01 -> log10 = 4 + seed
    assert table.loc[0, "log10_grad_ratio_same_state"] == pytest.approx(4.0)
    assert table.loc[1, "log10_grad_ratio_same_state"] == pytest.approx(5.0)
    # each run's own gradient over the window: 1.0 / 0.01 -> log10 = 2 at both steps
    assert table.loc[0, "log10_grad_ratio_runs"] == pytest.approx(2.0)
    # W1 at the end of the window (step 20): 6 / 6; at the end (30): 4 / 4; start 8
    assert table.loc[0, "w1_log10_ratio_early"] == pytest.approx(0.0, abs=1e-15)
    assert table.loc[0, "w1_log10_ratio_end"] == pytest.approx(0.0, abs=1e-15)
    assert table.loc[0, "w1_start"] == pytest.approx(8.0)


def test_w1_to_data_limits_and_linear_program():
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(40, 64, generator=gen, dtype=torch.float64)
    shift = torch.zeros(64, dtype=torch.float64)
    shift[:4] = 0.5  # ||shift|| = 1: a rigid translation moves every point by exactly 1
    fake = torch.stack([real, real + shift]).reshape(2, 40, 1, 8, 8)
    w1 = saturation.w1_to_data(fake, real.numpy())
    np.testing.assert_allclose(w1, [0.0, 1.0], atol=1e-6)  # POT: sqrt of squared distances
    other = torch.rand(1, 40, 1, 8, 8, generator=gen, dtype=torch.float64)
    direct = divergences.w1_samples(other.reshape(40, 64).numpy(), real.numpy())
    assert saturation.w1_to_data(other, real.numpy())[0] == pytest.approx(direct, rel=1e-12)


def test_digits_split_is_fixed_and_disjoint():
    train, held = saturation.digits_split()
    assert train.shape == (1497, 1, 8, 8) and held.shape == (300, 1, 8, 8)
    again_train, again_held = saturation.digits_split()
    assert torch.equal(held, again_held) and torch.equal(train, again_train)
    flat_train = {tuple(r) for r in train.reshape(len(train), -1).tolist()}
    # no held-out image is a training row (the digits hold a handful of exact duplicates)
    overlap = sum(tuple(r) in flat_train for r in held.reshape(300, -1).tolist())
    assert overlap <= 3


def test_smoke_tables_and_identical_start():
    tables = _run((0,))
    seeds = tables["seeds"]
    assert list(seeds["seed"]) == [0]
    assert np.all(np.isfinite(seeds[list(saturation.EXPERIMENT.metrics)].to_numpy(float)))
    c = tables["curves"]
    start = c[c.step == 0].set_index("objective").drop(columns=["step", "seed"])
    # both runs of a seed start from the same G, D and see the same evaluation draws
    pd.testing.assert_series_equal(
        start.loc["minimax"], start.loc["non-saturating"], check_names=False
    )
    later = c[c.step == SMOKE["steps"]].set_index("objective")["w1"]
    assert later["minimax"] != later["non-saturating"]  # then the two costs part ways


def test_smoke_is_deterministic():
    again = saturation.run_saturation(SMOKE, [0], CPU)
    pd.testing.assert_frame_equal(again["curves"], _run((0,))["curves"], check_exact=True)


def test_closed_form_invariant_raises_when_violated(monkeypatch):
    monkeypatch.setattr(saturation, "saturating_logit_grad", lambda logits: -0.5 * logits.sigmoid())
    with pytest.raises(InvariantError, match="closed forms"):
        saturation.run_saturation(
            {**SMOKE, "steps": 1, "early_steps": 1, "eval_every": 1}, [0], CPU
        )


def test_early_steps_must_be_an_evaluation_step():
    with pytest.raises(ValueError, match="multiple of eval_every"):
        saturation.run_saturation({**SMOKE, "early_steps": 3}, [0], CPU)


def test_run_ratio_is_the_mean_log_ratio_over_every_evaluation_after_the_start():
    """w1_log10_ratio_run averages log10(W1 minimax / W1 ns) over steps > 0 (not one snapshot)."""
    curves = _curves()
    mm = curves.objective == "minimax"
    curves.loc[mm & (curves.step == 0), "w1"] *= 1e3  # the start does not count
    table = saturation.saturation_seed_table(curves, {"early_steps": 20}, 4.0).set_index("seed")
    # steps 10, 20, 30: W1 7 / 5, 6 / 6, 4 / 4
    assert table.loc[0, "w1_log10_ratio_run"] == pytest.approx(np.log10(7 / 5) / 3)
    assert table.loc[0, "w1_log10_ratio_early"] == pytest.approx(0.0, abs=1e-15)


def test_mean_image_w1_closed_form_equals_the_linear_program():
    """W1 to a point mass is the mean distance to it: the closed form equals POT's exact LP on
    300 copies of the mean training digit against the held-out digits."""
    train, held = saturation.digits_split()
    closed = saturation.w1_mean_image(train, held)
    mean = train.reshape(len(train), -1).double().mean(0).expand(len(held), -1)
    lp = divergences.w1_samples(mean.numpy(), held.reshape(len(held), -1).double().numpy())
    assert closed == pytest.approx(lp, rel=1e-9)
    assert 4.0 < closed < 4.6  # the value the spec's notes quote (4.31)


def test_seed_table_divides_the_non_saturating_end_by_the_mean_image():
    table = saturation.saturation_seed_table(_curves(), {"early_steps": 20}, 8.0).set_index("seed")
    np.testing.assert_allclose(table["w1_ns_end_vs_mean_image"], table["w1_ns_end"] / 8.0)
