"""Stacked digits: packing and minibatch discrimination on hand-computed cases, mode ids and the
histogram metrics at their extremes, per-seed independence of the batched nets, and the
experiment at smoke scale (tables, determinism, figures)."""

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

from repro import experiments, fashion_mnist
from repro.engine.streams import Stream
from repro.experiments import stacked_digits_modes as stacked
from repro.experiments.family import stacked_digits as sdata
from repro.nets import BatchedMLP

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")
CLAIM = "stacked-digits-modes"


def spec() -> dict:
    return yaml.safe_load((ROOT / "claims" / f"{CLAIM}.yaml").read_text())


def smoke_params() -> dict:
    return spec()["scales"]["smoke"]["params"]


@cache
def smoke_run() -> dict[str, pd.DataFrame]:
    torch.set_num_threads(1)
    return stacked.run(smoke_params(), [0], CPU)


# ------------------------------------------------------------------------------ remedies


def test_pack_concatenates_consecutive_images_along_channels():
    from repro.remedies import pack

    x = torch.arange(1 * 4 * 3 * 2 * 2, dtype=torch.float32).reshape(1, 4, 3, 2, 2)
    packed = pack(x, 2)
    assert packed.shape == (1, 2, 6, 2, 2)
    torch.testing.assert_close(packed[0, 0, :3], x[0, 0])
    torch.testing.assert_close(packed[0, 0, 3:], x[0, 1])
    torch.testing.assert_close(packed[0, 1, 3:], x[0, 3])
    with pytest.raises(ValueError, match="multiple"):
        pack(x[:, :3], 2)


def test_minibatch_features_leave_out_the_j_equals_i_term():
    """On 3 points with T = 1 (M_i = h_i): o_i = sum over j != i of exp(-|h_i - h_j|)."""
    h = torch.tensor([[[0.0], [1.0], [3.0]]], dtype=torch.float64)  # (S=1, B=3, F=1)
    o = stacked.minibatch_features_without_self(h, torch.ones(1, 1, 1, dtype=torch.float64), 1)
    e = math.exp
    expected = torch.tensor([e(-1) + e(-3), e(-1) + e(-2), e(-3) + e(-2)], dtype=torch.float64)
    torch.testing.assert_close(o.squeeze(), expected, rtol=1e-12, atol=1e-12)
    one = stacked.minibatch_features_without_self(h[:, :1], torch.ones(1, 1, 1).double(), 1)
    assert one.item() == 0.0  # a minibatch of one has no other sample


@pytest.mark.parametrize("method", stacked.METHODS)
def test_discriminators_keep_seeds_apart(method):
    params = {**smoke_params(), "mbd_kernels": 4}
    d = stacked.build_discriminator(method, [0, 1], params, side=8)
    x = torch.randn(2, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = d(x)
    assert out.shape == ((2, 2, 1) if method == "pacgan2" else (2, 4, 1))
    x2 = x.clone()
    x2[1] += 1.0  # change only seed 1's batch
    torch.testing.assert_close(d(x2)[0], out[0])
    assert not torch.allclose(d(x2)[1], out[1])


def test_generator_shapes_for_both_image_sizes():
    for side in (8, 28):
        g = stacked.StackedGenerator([0, 1], z_dim=4, channels=4, side=side)
        assert g(torch.zeros(2, 3, 4)).shape == (2, 3, 3, side, side)
        d = stacked.StackedDiscriminator([0, 1], channels=4, side=side, pack_m=2, mbd_kernels=3)
        assert d(torch.zeros(2, 4, 3, side, side)).shape == (2, 2, 1)


# ------------------------------------------------------------------------------ modes


def test_mode_ids_and_histogram_extremes():
    labels = torch.tensor([[[1, 2, 3], [0, 0, 9], [9, 9, 9]]])
    assert sdata.mode_ids(labels).tolist() == [[123, 9, 999]]
    one = sdata.histogram_metrics(sdata.mode_histogram(torch.full((1, 50), 7)))
    assert one["modes"].item() == 1
    assert one["kl"].item() == pytest.approx(math.log(1000))
    every = sdata.histogram_metrics(sdata.mode_histogram(torch.arange(1000).reshape(1, -1)))
    assert every["modes"].item() == 1000
    assert every["kl"].item() == pytest.approx(0.0, abs=1e-12)


def test_stacked_sampler_is_per_seed_and_uses_its_images():
    images = torch.arange(5, dtype=torch.float32).reshape(5, 1, 1, 1).expand(5, 1, 2, 2)
    sampler = sdata.StackedSampler(images)
    both = sampler(Stream([3, 4], "g_init"), 6)
    alone = sampler(Stream([4], "g_init"), 6)
    assert both.shape == (2, 6, 3, 2, 2)
    torch.testing.assert_close(both[1], alone[0])
    # every channel is one whole image (constant here), drawn from the five
    assert torch.all(both.amax((3, 4)) == both.amin((3, 4)))
    assert set(both[..., 0, 0].unique().tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_digit_split_is_fixed_and_disjoint():
    train, _ = sdata.load_labelled("digits", "train")
    test, test_y = sdata.load_labelled("digits", "test")
    assert len(train) + len(test) == 1797 and len(test) == 450
    again, again_y = sdata.load_labelled("digits", "test")
    torch.testing.assert_close(again, test)
    assert torch.equal(again_y, test_y)
    # no held-out image appears in the training split
    flat_train = {tuple(r) for r in train.reshape(len(train), -1).tolist()}
    assert sum(tuple(r) in flat_train for r in test.reshape(len(test), -1).tolist()) < 10
    with pytest.raises(ValueError, match="valid"):
        sdata.load_labelled("mnist", "train")


# ------------------------------------------------------------------------------ experiment


def test_spec_validates_and_matches_its_experiment():
    data = spec()
    schema = yaml.safe_load((ROOT / "claims" / "schema" / "claim.schema.yaml").read_text())
    jsonschema.validate(data, schema)
    exp = experiments.get(data["experiment"])
    for check in data["checks"] + data.get("premises", []):
        assert check["metric"] in exp.metrics
    for scale in ("smoke", "quick", "full"):
        assert set(data["scales"][scale]["params"]) == set(exp.params), scale
    assert {f["name"] for f in data["figures"]} <= set(exp.figures)


def test_smoke_run_tables_and_metrics():
    tables = smoke_run()
    seeds = tables["seeds"]
    exp = experiments.get("stacked_digits_modes")
    assert list(seeds["seed"]) == [0]
    quality = [m for m in exp.metrics if m.startswith("quality_")]
    others = [m for m in exp.metrics if m not in quality]
    assert np.all(np.isfinite(seeds[others].to_numpy(dtype=float)))
    row = seeds.iloc[0]
    # quality = confident share / the real stacks' confident share: undefined (NaN, so a premise
    # on it fails) when the smoke classifier (50 steps) labels no real stack confidently
    for m in quality:
        if row["confident_real"] > 0:
            assert row[m] == row[m.replace("quality_", "confident_")] / row["confident_real"]
        else:
            assert math.isnan(row[m])
    assert 0 < row["modes_gan"] <= 1000 and 0 <= row["kl_gan"] <= math.log(1000) + 1e-9
    assert row["modes_gain_pacgan2"] == row["modes_pacgan2"] - row["modes_gan"]
    assert set(tables["methods"]["method"]) == set(stacked.METHODS)


def test_smoke_run_is_deterministic():
    again = stacked.run(smoke_params(), [0], CPU)
    pd.testing.assert_frame_equal(again["seeds"], smoke_run()["seeds"], check_exact=True)


def test_figures_are_drawn_from_the_tables():
    exp = experiments.get("stacked_digits_modes")
    for fig_fn in exp.figures.values():
        fig = fig_fn(smoke_run(), smoke_params(), spec()["reported"])
        assert isinstance(fig, matplotlib.figure.Figure)
        plt.close(fig)


def test_auto_dataset_takes_fashion_mnist_only_when_its_files_are_intact(monkeypatch, tmp_path):
    monkeypatch.setenv("GAN_CLAIMS_DATA_DIR", str(tmp_path))  # an empty data directory
    assert stacked.resolve_dataset("auto") == "digits"
    assert stacked.resolve_dataset("digits") == "digits"
    with pytest.raises(ValueError, match="valid: digits, fashion-mnist, auto"):
        stacked.resolve_dataset("mnist")
    monkeypatch.setattr(fashion_mnist, "require_dataset", lambda name: None)
    assert stacked.resolve_dataset("auto") == "fashion-mnist"


def test_smoke_run_says_which_data_it_used():
    setup = dict(zip(*smoke_run()["setup"].to_dict("list").values(), strict=True))
    assert setup["data"].startswith("scikit-learn's 8x8 digits: GANs and classifier on 1347")
    assert "classifier MLP 2 x" in setup["model"]


def test_fashion_mnist_path_runs_on_28x28_images(monkeypatch):
    """The 28x28 branch end to end on stand-in images (the real files: `make data`)."""
    gen = torch.Generator().manual_seed(0)
    fake_data = {
        split: (torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1, torch.arange(n) % 10)
        for split, n in (("train", 60), ("test", 30))
    }
    monkeypatch.setattr(fashion_mnist, "require_dataset", lambda name: None)
    monkeypatch.setattr(
        stacked.rdata, "load_fashion_mnist", lambda split: fake_data[split], raising=False
    )
    params = {
        **smoke_params(),
        "dataset": "fashion-mnist",
        "steps": 2,
        "batch_size": 8,
        "g_channels": 4,
        "d_channels": 4,
        "mbd_kernels": 3,
        "classifier_steps": 3,
        "eval_samples": 50,
    }
    tables = stacked.run({**params, "dataset": "auto"}, [0], CPU)
    assert tables["samples"]["row"].max() == 27
    assert "Fashion-MNIST 28x28" in tables["setup"]["value"].iloc[0]
    assert np.isfinite(tables["seeds"]["kl_gan"]).all()


def test_confident_share_counts_stacks_whose_every_channel_is_confident():
    """A stack counts when its least confident channel reaches CONFIDENCE: a one-layer 'classifier'
    whose logits are the pixels themselves gives each channel a known softmax."""
    seeds = [0]
    net = BatchedMLP((4, 10), seeds)
    with torch.no_grad():
        net.layers[0].weight.zero_()
        net.layers[0].bias.zero_()
        net.layers[0].weight[0, :4, :4] = torch.eye(4)  # logit k = pixel k for k < 4
    sure, unsure = torch.zeros(4), torch.zeros(4)
    sure[0] = 10.0  # softmax(10, 0 x 9) = 0.9996
    unsure[0] = 2.0  # softmax(2, 0 x 9) = 0.45
    stacks = torch.stack(
        [torch.stack([sure, sure, sure]), torch.stack([sure, unsure, sure])]
    ).reshape(1, 2, 3, 2, 2)
    assert sdata.confident_share(net, stacks).tolist() == [0.5]
