"""Pure pieces of the Arjovsky-Bottou gradient claims: tail statistics across Ds, Thm 2.6's own
model, the log-log slope, the evaluation schedule, the Frechet distance, per-D gradients."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from repro.engine.streams import Stream
from repro.experiments import minus_log_d_instability as mld
from repro.experiments import vanishing_gradients as vg
from repro.experiments.family import arjovsky_bottou as ab
from repro.losses import non_saturating_g_loss
from repro.metrics import feature_gaussian, frechet_distance
from repro.nets import ConvDiscriminator, ConvGenerator


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- pooled tail ratio (Thm 2.6)


@pytest.mark.parametrize("n_ds, upper", [(8, 6.0), (16, 5.0)])
def test_pooled_tail_ratio_gaussian_columns_with_few_draws_stay_far_below_threshold(n_ds, upper):
    """n_ds draws per coordinate (Ds), 1,024 coordinates with different locations / scales."""
    g = _gen(0)
    loc = 10 * torch.randn(1, 1024, generator=g, dtype=torch.float64)
    scale = torch.exp(torch.randn(1, 1024, generator=g, dtype=torch.float64))
    values = loc + scale * torch.randn(n_ds, 1024, generator=g, dtype=torch.float64)
    ratio = mld.pooled_tail_ratio(values)
    assert 3.3 < ratio < upper  # Gaussian 3.45, more from per-column median / IQR noise
    assert ratio < mld.HEAVY_TAIL_THRESHOLD / 2


@pytest.mark.parametrize("n_ds", [8, 16])
def test_pooled_tail_ratio_cauchy_columns_are_heavy(n_ds):
    g = _gen(1)
    u = torch.rand(n_ds, 1024, generator=g, dtype=torch.float64)
    values = 3.0 + 0.01 * torch.tan(math.pi * (u - 0.5))
    ratio = mld.pooled_tail_ratio(values)
    assert ratio > 2 * mld.HEAVY_TAIL_THRESHOLD
    assert ratio == pytest.approx(mld.CAUCHY_TAIL_RATIO, rel=0.35)


def test_pooled_tail_ratio_drops_constant_columns_and_needs_enough_points():
    g = _gen(2)
    values = torch.cat([torch.zeros(16, 10), torch.randn(16, 100, generator=g)], dim=1)
    assert math.isfinite(mld.pooled_tail_ratio(values))
    assert math.isnan(mld.pooled_tail_ratio(torch.randn(4, 5, generator=g)))


# ---------------------------------------------------------------- Thm 2.6 in its own model


def test_theorem_model_noise_free_limit_is_the_quadrature_of_the_exact_gradient():
    """noise 0: E_z[-D*'/D*] = E_z[gap (1 - D*(gap + z))]; with gap = 4 by scipy quadrature."""
    from scipy import integrate, special

    gap = 4.0
    out = mld.theorem_model_gradients(Stream([0], "theorem"), 3, gap, 0.0, 64)
    expected, _ = integrate.quad(
        lambda z: (
            gap
            * (1 - special.expit(gap**2 / 2 - gap * (gap + z)))
            * math.exp(-z * z / 2)
            / math.sqrt(2 * math.pi)
        ),
        -12,
        12,
        epsabs=1e-12,
    )
    torch.testing.assert_close(
        out, torch.full((1, 3), expected, dtype=torch.float64), rtol=1e-6, atol=0
    )


def test_theorem_model_limits_gaussian_for_tiny_noise_cauchy_for_large():
    """Small noise: a smooth function of Gaussian errors (delta method) -> Gaussian tails (3.45).
    Noise far above D*: ratios of independent Gaussians, averaged -> Cauchy (31.8)."""
    small = mld.theorem_model_gradients(Stream([3], "theorem"), 20_000, 1.0, 1e-9, 32)
    large = mld.theorem_model_gradients(Stream([4], "theorem"), 20_000, 4.0, 1e3, 32)
    assert float(mld.tail_ratio(small, dim=1)) == pytest.approx(3.449, rel=0.08)
    assert float(mld.tail_ratio(large, dim=1)) == pytest.approx(31.82, rel=0.2)


def test_theorem_model_is_per_copy():
    a = mld.theorem_model_gradients(Stream([5, 6], "theorem"), 50, 4.0, 1e-2, 16)
    b = mld.theorem_model_gradients(Stream([6], "theorem"), 50, 4.0, 1e-2, 16)
    torch.testing.assert_close(a[1:], b, rtol=0, atol=0)


# ---------------------------------------------------------------- slope, schedule


def test_loglog_slope_recovers_power_law_and_needs_three_points():
    x = np.geomspace(1e-4, 1e-1, 20)
    assert vg.loglog_slope(x, 3.0 * x**0.8) == pytest.approx(0.8, abs=1e-12)
    assert math.isnan(vg.loglog_slope(x[:2], x[:2]))
    assert math.isnan(vg.loglog_slope(np.ones(5), np.arange(1.0, 6.0)))
    assert vg.loglog_slope(np.r_[x, np.nan], np.r_[x**2, 1.0]) == pytest.approx(2.0)


def test_eval_schedule():
    assert ab.eval_schedule(100, 50, 10, 30) == [0, 10, 20, 30, 50, 100]
    assert ab.eval_schedule(7, 5, 5, 0) == [0, 5, 7]


# ---------------------------------------------------------------- Frechet distance


def test_frechet_distance_closed_forms():
    m1, m2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    c1, c2 = torch.diag(torch.tensor([1.0, 4.0, 9.0])), torch.diag(torch.tensor([4.0, 4.0, 1.0]))
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-12)
    a = torch.randn(5, 5, generator=_gen(0), dtype=torch.float64)
    c = a @ a.T + torch.eye(5, dtype=torch.float64)
    assert frechet_distance(m1.new_zeros(5), c, m1.new_zeros(5), c) == pytest.approx(0, abs=1e-9)
    # scalar case: (m1 - m2)^2 + (s1 - s2)^2
    one = frechet_distance(
        torch.tensor([0.0]), torch.tensor([[4.0]]), torch.tensor([3.0]), torch.tensor([[1.0]])
    )
    assert one == pytest.approx(9 + 1, rel=1e-12)


def test_feature_gaussian_matches_numpy():
    f = torch.randn(200, 4, generator=_gen(1), dtype=torch.float64)
    m, c = feature_gaussian(f)
    np.testing.assert_allclose(m.numpy(), f.numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(c.numpy(), np.cov(f.numpy().T), rtol=1e-10)


# ---------------------------------------------------------------- batching of Ds


def test_label_copies_and_repeat_copies():
    seeds, epochs = [7, 9], [1, 10, 25]
    df = ab.label_copies(pd.DataFrame({"copy": range(12)}), seeds, epochs)
    assert list(df["seed"][:6]) == [7, 9] * 3
    assert list(df["epochs"][:6]) == [1, 1, 10, 10, 25, 25]
    assert list(df["d_index"]) == [0] * 6 + [1] * 6
    x = torch.arange(6.0).reshape(3, 2)
    torch.testing.assert_close(ab.repeat_copies(x, 2)[3:], x)


def test_per_d_gradients_equal_each_d_alone():
    """The VJP per D equals autograd of -E log D_j(G(z)) with that D alone (float64)."""
    torch.manual_seed(0)
    G = ConvGenerator([0, 1], z_dim=4, channels=2, image_size=8).double()
    D = ConvDiscriminator([0, 1, 2, 3, 4, 5], channels=2, image_size=8).double()
    z = torch.randn(2, 16, 4, generator=_gen(0), dtype=torch.float64)
    n_params = sum(p[0].numel() for p in G.parameters())
    coords = torch.stack([torch.arange(0, n_params, 7)[:20]] * 2)
    got = mld.per_d_gradients(G, D, z, 3, coords)  # (3, 2, 20)
    for j in range(3):
        Dj = ConvDiscriminator([0, 1], channels=2, image_size=8).double()
        Dj.load_state_dict({k: v[2 * j : 2 * j + 2] for k, v in D.state_dict().items()})
        loss = non_saturating_g_loss(Dj(G(z)))
        grads = torch.autograd.grad(loss.sum(), list(G.parameters()))
        flat = torch.cat([g.reshape(2, -1) for g in grads], dim=1)
        torch.testing.assert_close(got[j], flat.gather(1, coords), rtol=1e-9, atol=1e-12)


def test_snapshot_checkpoint_is_opt_in_and_keyed_by_gan_settings(tmp_path, monkeypatch):
    params = {k: 1 for k in ab.GAN_PARAMS} | {"d_lr": 1e-3, "d_norm": "none"}
    monkeypatch.delenv(ab.CHECKPOINT_DIR_ENV, raising=False)
    assert ab.snapshot_checkpoint(params, [0], "cpu") is None
    monkeypatch.setenv(ab.CHECKPOINT_DIR_ENV, str(tmp_path))
    path = ab.snapshot_checkpoint(params, [0], "cpu")
    assert path.startswith(str(tmp_path))
    # fresh-D settings share the GAN run; GAN settings and seeds do not
    assert ab.snapshot_checkpoint(params | {"d_lr": 2e-4}, [0], "cpu") == path
    assert ab.snapshot_checkpoint(params | {"lr": 2}, [0], "cpu") != path
    assert ab.snapshot_checkpoint(params, [0, 1], "cpu") != path


@pytest.mark.parametrize("claim", ["d-perfect", "vanishing-gradients", "minus-log-d-instability"])
def test_full_scale_without_data_stops_before_training_naming_make_data(
    claim, tmp_path, monkeypatch
):
    import yaml

    from repro import data, experiments

    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    spec = yaml.safe_load((Path(__file__).parent.parent / "claims" / f"{claim}.yaml").read_text())
    params = spec["scales"]["full"]["params"]
    assert params["dataset"] == "fashion-mnist"
    with pytest.raises(data.DataMissingError, match="make data"):
        experiments.get(spec["experiment"]).run(params, [0], torch.device("cpu"))


def test_theorem_model_invariant_raises_on_gaussian_tails():
    from repro.invariants import InvariantError

    ok = pd.DataFrame({"seed": [0, 0], "noise_std": [1e-3, 1e-2], "tail_ratio": [30.0, 25.0]})
    mld.require_theorem_model_heavy(ok, 2000)
    bad = ok.assign(tail_ratio=[30.0, 3.5])
    with pytest.raises(InvariantError, match="not heavy-tailed"):
        mld.require_theorem_model_heavy(bad, 2000)
    mld.require_theorem_model_heavy(bad, 200)  # too few draws to judge


# ------------------------------------------------------ the shared GAN run (rules/shared.smk)


def _smoke(claim: str, variant: str | None = None):
    from repro.claims import load_all

    spec = load_all()[claim]
    return spec.params("smoke", variant), spec.seeds("smoke", 2)


def test_shared_gan_file_equals_the_in_process_run_bitwise(tmp_path, monkeypatch):
    from repro.experiments.family import arjovsky_bottou_gan as abg
    from repro.experiments.family.shared_runs import SHARED_GAN_ENV, shared_gan_name

    params, seeds = _smoke("vanishing-gradients")
    path = tmp_path / shared_gan_name(params, seeds, "cpu")
    abg.save_shared(path, params, seeds, "cpu")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    monkeypatch.delenv(SHARED_GAN_ENV, raising=False)
    here = ab.train_snapshots(params, seeds, "cpu")  # no file named: trained in-process
    monkeypatch.setenv(SHARED_GAN_ENV, str(path))
    loaded = ab.train_snapshots(params, seeds, "cpu")  # what a claim job under Snakemake gets
    assert len(loaded) == len(here) == len(params["g_epochs"])
    for a, b in zip(here, loaded, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
    # a run with other GAN params refuses the file instead of using another run's snapshots
    with pytest.raises(ValueError, match="other params"):
        ab.train_snapshots(params | {"lr": params["lr"] * 2}, seeds, "cpu")
    with pytest.raises(ValueError, match="other seeds"):
        ab.train_snapshots(params, [*seeds, 99], "cpu")


def test_shared_gan_name_changes_with_gan_params_seeds_and_device_only():
    from repro.experiments.family.shared_runs import shared_gan_name

    params, seeds = _smoke("d-perfect")
    name = shared_gan_name(params, seeds, "auto")
    assert name.startswith("arjovsky-bottou-") and name.endswith(".pt")
    # the three claims share it at smoke (same GAN), fresh-D settings do not matter
    assert shared_gan_name(_smoke("minus-log-d-instability")[0], seeds, "auto") == name
    assert shared_gan_name(params | {"d_lr": 1.0, "d_norm": "none"}, seeds, "auto") == name
    assert shared_gan_name(params | {"lr": params["lr"] * 2}, seeds, "auto") != name
    assert shared_gan_name(params | {"g_epochs": [0, 1]}, seeds, "auto") != name
    assert shared_gan_name(params, [*seeds, 99], "auto") != name
    assert shared_gan_name(params, seeds, "cpu") != name


def test_the_gan_run_enters_the_claims_code_hash():
    from repro.provenance import code_state

    for exp in ("d_perfect", "vanishing_gradients", "minus_log_d_instability"):
        files = code_state(exp)["code_files"]
        assert "repro/experiments/family/arjovsky_bottou_gan.py" in files
        assert "repro/train.py" in files  # train_gan, the loop the shared run uses
