"""Samplers: protocol details (ring without endpoint, grid), per-seed independence, digits."""

from __future__ import annotations

import math

import pytest
import torch

from repro.data import (
    EpochSampler,
    get_sampler,
    grid_means,
    load_digits_images,
    ring_means,
    sample_mixture,
    sample_mixture_1d,
    sample_normal,
    sample_parallel_lines,
    sample_ring,
)
from repro.engine.streams import Stream


def test_ring_has_eight_distinct_modes_at_2pi_k_over_8():
    means = ring_means(8, radius=2.0)
    assert means.shape == (8, 2)
    angles = torch.atan2(means[:, 1], means[:, 0]) % (2 * math.pi)
    expected = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    torch.testing.assert_close(angles, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    # no endpoint: the smallest pairwise distance is the chord 2 r sin(pi / 8), never 0
    d = torch.cdist(means, means) + torch.eye(8, dtype=torch.float64) * 99
    assert d.min().item() == pytest.approx(2 * 2.0 * math.sin(math.pi / 8), rel=1e-12)


def test_grid_means_are_the_veegan_grid():
    means = grid_means(5, spacing=2.0)
    expected = {(-4.0 + 2 * i, -4.0 + 2 * j) for i in range(5) for j in range(5)}
    assert {tuple(m) for m in means.tolist()} == expected


def test_batched_draws_equal_separate_draws():
    seeds = [3, 7, 11]
    batched = sample_ring(Stream(seeds, "data"), 16)
    z_batched = sample_normal(Stream(seeds, "data"), 16, 4)
    for i, s in enumerate(seeds):
        torch.testing.assert_close(batched[i], sample_ring(Stream([s], "data"), 16)[0])
        torch.testing.assert_close(z_batched[i], sample_normal(Stream([s], "data"), 16, 4)[0])
    assert batched.shape == (3, 16, 2) and batched.dtype == torch.float32


def test_ring_samples_lie_at_modes_with_the_given_std():
    x = sample_ring(Stream([0], "data"), 20000, radius=1.0, mode_std=0.05)[0].double()
    d2 = torch.cdist(x, ring_means(8, 1.0)).min(dim=1).values ** 2
    # E ||x - mu||^2 = d std^2 = 0.005; Monte-Carlo s.e. of the mean ~ 0.005 / sqrt(10000)
    assert d2.mean().item() == pytest.approx(2 * 0.05**2, rel=0.03)
    counts = torch.bincount(torch.cdist(x, ring_means(8, 1.0)).argmin(dim=1), minlength=8)
    # multinomial counts: 2500 each, sd sqrt(20000 * 1/8 * 7/8) ~ 47
    assert (counts - 2500).abs().max().item() < 5 * 47


def test_mixture_1d_weights_and_per_mode_std():
    x = sample_mixture_1d(Stream([1], "data"), 40000, [-10.0, 10.0], [0.5, 2.0], [0.2, 0.8])[0]
    left, right = x[x < 0], x[x > 0]
    # binomial frequency 0.2, sd sqrt(0.2 * 0.8 / 40000) = 0.002
    assert left.numel() / 40000 == pytest.approx(0.2, abs=0.01)
    assert left.std().item() == pytest.approx(0.5, rel=0.05)
    assert right.std().item() == pytest.approx(2.0, rel=0.05)
    assert x.shape == (40000, 1)


def test_mixture_rejects_bad_weights_and_unknown_sampler():
    with pytest.raises(ValueError, match="weights"):
        sample_mixture(Stream([0], "data"), 4, torch.zeros(2, 1), 1.0, [1.0])
    with pytest.raises(ValueError, match="valid: grid, mixture_1d, parallel_lines, ring"):
        get_sampler("rings")


def test_get_sampler_binds_parameters():
    sampler = get_sampler("ring", radius=3.0, mode_std=0.0)
    x = sampler(Stream([0, 1], "data"), 10)
    torch.testing.assert_close(x.norm(dim=2), torch.full((2, 10), 3.0))


def test_parallel_lines():
    x = sample_parallel_lines(Stream([0, 1], "data"), 1000, theta=0.7)
    assert x.shape == (2, 1000, 2)
    torch.testing.assert_close(x[..., 0], torch.full((2, 1000), 0.7))
    assert x[..., 1].min() >= 0 and x[..., 1].max() <= 1


def test_digits_are_scaled_to_minus_one_one():
    x = load_digits_images()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == torch.float32
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    levels = (x + 1) * 8  # the original 0..16 intensities
    torch.testing.assert_close(levels, levels.round(), atol=1e-5, rtol=0)


def test_epoch_sampler_is_without_replacement_per_seed():
    data = torch.arange(10).float().reshape(10, 1)
    sampler = EpochSampler(data)
    gens = Stream([0, 1], "data")
    batches = [sampler(gens, 3) for _ in range(3)]  # one epoch of floor(10 / 3) = 3 batches
    seen = torch.cat(batches, dim=1)[..., 0]  # (S, 9)
    for s in range(2):
        assert len(set(seen[s].tolist())) == 9
    assert not torch.equal(seen[0], seen[1])
    assert sampler.steps_per_epoch(3) == 3
    with pytest.raises(ValueError, match="exceeds"):
        sampler(gens, 11)


def test_epoch_sampler_batched_equals_separate_and_resumes():
    data = torch.arange(20).float().reshape(20, 1)
    seeds = [4, 9]
    both, gens = EpochSampler(data), Stream(seeds, "data")
    draws = [both(gens, 6) for _ in range(7)]  # crosses two epoch boundaries
    for i, s in enumerate(seeds):
        one, g1 = EpochSampler(data), Stream([s], "data")
        for d in draws:
            torch.testing.assert_close(d[i], one(g1, 6)[0])
    # the sampler's and the stream's state_dict restore the exact continuation
    a, ga = EpochSampler(data), Stream(seeds, "data")
    for _ in range(4):
        a(ga, 6)
    b, gb = EpochSampler(data), Stream(seeds, "data")
    b.load_state_dict(a.state_dict())
    gb.load_state_dict(ga.state_dict())
    for _ in range(5):
        torch.testing.assert_close(a(ga, 6), b(gb, 6))
