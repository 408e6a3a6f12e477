"""Batched networks: per-seed initialisation, grouped layers against per-seed references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from repro.nets import (
    STREAM_D,
    BatchedConv2d,
    BatchedConvTranspose2d,
    BatchedMLP,
    ConvDiscriminator,
    ConvGenerator,
    fold_seeds,
    seed_generators,
    stream_seed,
    unfold_seeds,
)


def test_stream_zero_is_manual_seed_and_streams_differ():
    (g,) = seed_generators([5])
    ref = torch.Generator().manual_seed(5)
    torch.testing.assert_close(torch.rand(3, generator=g), torch.rand(3, generator=ref))
    assert stream_seed(5, 0) == 5
    assert stream_seed(5, 1) == stream_seed(5, 1) != stream_seed(5, 2)
    assert len({stream_seed(s, 1) for s in range(100)}) == 100
    with pytest.raises(ValueError, match="non-negative"):
        stream_seed(-1, 1)


def test_mlp_init_semantics_unchanged():
    net = BatchedMLP((2, 3, 1), seeds=[7])
    g = torch.Generator().manual_seed(7)
    bound = 1 / 2**0.5
    w = torch.rand(2, 3, generator=g) * 2 * bound - bound
    torch.testing.assert_close(net.layers[0].weight[0], w)
    other = BatchedMLP((2, 3, 1), seeds=[7], stream=STREAM_D)
    assert not torch.equal(other.layers[0].weight, net.layers[0].weight)


def test_fold_unfold_roundtrip():
    x = torch.randn(3, 4, 2, 5, 5)
    folded = fold_seeds(x)
    assert folded.shape == (4, 6, 5, 5)
    torch.testing.assert_close(folded[:, 2:4], x[1])  # seed 1 owns channels 2..3
    torch.testing.assert_close(unfold_seeds(folded, 3), x)


@pytest.mark.parametrize("layer_cls", [BatchedConv2d, BatchedConvTranspose2d])
def test_grouped_conv_equals_per_seed_conv(layer_cls):
    layer = layer_cls(3, 4, 4, n_seeds=2, stride=2, padding=1).double()
    layer.reset_parameters(seed_generators([0, 1]))
    x = torch.randn(2, 5, 3, 6, 6, dtype=torch.float64)  # (S, B, C, H, W)
    out = unfold_seeds(layer(fold_seeds(x)), 2)
    ref_fn = F.conv2d if layer_cls is BatchedConv2d else F.conv_transpose2d
    for s in range(2):
        ref = ref_fn(x[s], layer.weight[s], layer.bias[s], stride=2, padding=1)
        torch.testing.assert_close(out[s], ref, rtol=1e-12, atol=1e-12)


def _params_equal(batched, single, s):
    for (name, pb), (_, ps) in zip(
        batched.state_dict().items(), single.state_dict().items(), strict=True
    ):
        assert torch.equal(pb[s], ps[0]), name


# saturation's small 8x8 form of the DCGAN family (PyTorch-default init, a 3x3 output conv)
def small_generator(seeds, z_dim=16, channels=32, norm="none"):
    return ConvGenerator(seeds, z_dim, channels, 8, norm, init="default", out_kernel=3)


def small_discriminator(seeds, channels=32):
    return ConvDiscriminator(seeds, channels, 8, "none", init="default")


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_dcgan_batched_equals_single_seed_models(norm):
    seeds = [2, 9, 4]
    G = small_generator(seeds, z_dim=6, channels=4, norm=norm).double()
    D = small_discriminator(seeds, channels=4).double()
    z = torch.randn(3, 5, 6, dtype=torch.float64)
    for i, s in enumerate(seeds):
        _params_equal(G, small_generator([s], z_dim=6, channels=4, norm=norm).double(), i)
        _params_equal(D, small_discriminator([s], channels=4).double(), i)
    x = G(z)
    assert x.shape == (3, 5, 1, 8, 8) and x.abs().max() <= 1
    logits = D(x)
    assert logits.shape == (3, 5, 1)
    for i, s in enumerate(seeds):
        g1 = small_generator([s], z_dim=6, channels=4, norm=norm).double()
        d1 = small_discriminator([s], channels=4).double()
        x1 = g1(z[i : i + 1])
        torch.testing.assert_close(x[i], x1[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(logits[i], d1(x1)[0], rtol=1e-12, atol=1e-12)
        if norm == "batch":  # running statistics too: per seed, from that seed's batch only
            torch.testing.assert_close(G.norm1.running_mean[i], g1.norm1.running_mean[0])


def test_batch_norm_shares_no_statistics_across_seeds():
    G = small_generator([0, 1], z_dim=6, channels=4, norm="batch")
    z = torch.randn(2, 8, 6)
    out = G(z)
    z2 = z.clone()
    z2[1] = 100 * torch.randn(8, 6)  # change only seed 1's inputs
    torch.testing.assert_close(G(z2)[0], out[0])


def test_generator_and_discriminator_use_different_streams():
    G, D = small_generator([0], channels=4), small_discriminator([0], channels=4)
    assert G.stream != D.stream
    with pytest.raises(ValueError, match="valid: none, batch"):
        small_generator([0], norm="layer")


def test_dcgan_family_options_init_and_output_layer():
    """init "dcgan" draws every conv / linear weight from N(0, 0.02) with zero biases; "default"
    keeps the layers' own (PyTorch) init; out_kernel 3 ends in a 3x3 conv on an H/2 base."""
    dc = ConvGenerator([0], 8, 16, 8, "batch", init="dcgan")
    default = ConvGenerator([0], 8, 16, 8, "batch", init="default")
    w = dc.up1.weight.flatten()
    assert abs(float(w.std()) - 0.02) < 0.003 and float(dc.up1.bias.abs().max()) == 0.0
    assert float(default.up1.bias.abs().max()) > 0  # PyTorch's default init draws biases
    small = ConvGenerator([0], 8, 16, 8, "none", init="default", out_kernel=3)
    assert small.base == 4 and tuple(small.up2.weight.shape[-2:]) == (3, 3)
    assert small(torch.zeros(1, 2, 8)).shape == (1, 2, 1, 8, 8)
    with pytest.raises(ValueError, match="unknown init 'xavier'; valid: dcgan, default"):
        ConvDiscriminator([0], 4, 8, init="xavier")
    with pytest.raises(ValueError, match="out_kernel must be 4"):
        ConvGenerator([0], 8, 4, 8, out_kernel=5)


def test_batch_norm_draws_nothing_so_norm_does_not_change_the_init():
    plain, normed = small_generator([3], channels=4), small_generator([3], channels=4, norm="batch")
    for name in ("fc.weight", "up1.weight", "up2.bias"):
        assert torch.equal(plain.state_dict()[name], normed.state_dict()[name])
