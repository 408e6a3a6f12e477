"""The standard 28x28 DCGAN (repro.nets.ConvGenerator / ConvDiscriminator)."""

from __future__ import annotations

import pytest
import torch

from repro.nets import (
    STREAM_FRESH_D,
    BatchedBatchNorm2d,
    BatchedConv2d,
    BatchedLinear,
    ConvDiscriminator,
    ConvGenerator,
)


def test_shapes_and_layout_of_the_standard_model():
    g = ConvGenerator([0, 1], z_dim=100, channels=64)
    x = g(torch.randn(2, 3, 100))
    assert x.shape == (2, 3, 1, 28, 28) and x.abs().max() <= 1
    assert g.fc.weight.shape == (2, 100, 128 * 7 * 7)
    assert g.up1.weight.shape == (2, 128, 64, 4, 4) and g.up2.weight.shape == (2, 64, 1, 4, 4)
    d = ConvDiscriminator([0, 1], channels=64)
    assert d(x).shape == (2, 3, 1)
    assert d.conv1.weight.shape == (2, 64, 1, 4, 4) and d.conv2.weight.shape == (2, 128, 64, 4, 4)
    assert d.fc.weight.shape == (2, 128 * 7 * 7, 1)
    assert isinstance(d.norm2, BatchedBatchNorm2d)
    assert isinstance(ConvDiscriminator([0], norm="none").norm2, torch.nn.Identity)


def test_dcgan_init_statistics():
    d = ConvDiscriminator(list(range(4)), channels=64)
    w = d.conv2.weight.detach()
    assert w.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert w.std().item() == pytest.approx(0.02, rel=0.02)
    assert torch.count_nonzero(d.conv2.bias) == 0
    gain = d.norm2.weight.detach()
    assert gain.mean().item() == pytest.approx(1.0, abs=2e-3)
    assert gain.std().item() == pytest.approx(0.02, rel=0.15)
    for m in d.modules():
        if isinstance(m, BatchedConv2d | BatchedLinear):
            assert m.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_batched_copy_equals_single_seed_model():
    torch.manual_seed(0)
    g2, g1 = ConvGenerator([3, 5], channels=8, z_dim=10), ConvGenerator([5], channels=8, z_dim=10)
    d2 = ConvDiscriminator([3, 5], channels=8, stream=STREAM_FRESH_D)
    d1 = ConvDiscriminator([5], channels=8, stream=STREAM_FRESH_D)
    for a, b in zip(g2.state_dict().values(), g1.state_dict().values(), strict=True):
        torch.testing.assert_close(a[1:], b)
    z = torch.randn(2, 6, 10)
    torch.testing.assert_close(g2(z)[1:], g1(z[1:]), rtol=1e-5, atol=1e-6)
    x = torch.randn(2, 6, 1, 28, 28)
    torch.testing.assert_close(d2(x)[1:], d1(x[1:]), rtol=1e-5, atol=1e-6)


def test_other_image_sizes_and_errors():
    g = ConvGenerator([0], z_dim=16, channels=8, image_size=8)
    assert g(torch.zeros(1, 2, 16)).shape == (1, 2, 1, 8, 8)
    assert ConvDiscriminator([0], channels=8, image_size=8)(torch.zeros(1, 2, 1, 8, 8)).shape == (
        1,
        2,
        1,
    )
    with pytest.raises(ValueError, match="multiple of 4"):
        ConvGenerator([0], image_size=30)
    with pytest.raises(ValueError, match="unknown norm"):
        ConvDiscriminator([0], norm="layer")
