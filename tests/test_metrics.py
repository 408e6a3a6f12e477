"""Metrics: accuracy extremes, per-seed gradient norms, the VEEGAN/PacGAN mode protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from repro.data import ring_means
from repro.metrics import (
    d_accuracy,
    mode_metrics,
    nearest_mode,
    per_seed_grad_norm,
    reverse_kl_uniform,
)
from repro.nets import BatchedMLP


def test_d_accuracy_extremes_and_balance():
    real = torch.tensor([[2.0, 1.0], [-2.0, -1.0], [0.0, 0.0]])
    fake = torch.tensor([[-1.0, -3.0, -2.0], [1.0, 3.0, 2.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(d_accuracy(real, fake), torch.tensor([1.0, 0.0, 0.5]))
    # one of 2 real right, all 3 fake right: (1/2 + 1) / 2, not the pooled 4/5
    out = d_accuracy(torch.tensor([[1.0, -1.0]]), torch.tensor([[-1.0, -1.0, -1.0]]))
    torch.testing.assert_close(out, torch.tensor([0.75]))


def test_grad_norm_of_a_linear_loss():
    w = torch.zeros(3, 4, 5, requires_grad=True)  # (S, ...)
    c = torch.tensor([1.0, 2.0, 0.0])
    loss = (w * c[:, None, None]).sum(dim=(1, 2))  # d loss_s / d w[s] = c_s everywhere
    torch.testing.assert_close(per_seed_grad_norm(loss, [w]), c * math.sqrt(20))


def test_grad_norm_batched_equals_separate_models():
    seeds = [0, 3]
    net = BatchedMLP((2, 6, 1), seeds).double()
    x = torch.randn(2, 10, 2, dtype=torch.float64)
    norms = per_seed_grad_norm(torch.tanh(net(x)).mean(dim=(1, 2)), list(net.parameters()))
    for i, s in enumerate(seeds):
        single = BatchedMLP((2, 6, 1), [s]).double()
        loss = torch.tanh(single(x[i : i + 1])).mean()
        grads = torch.autograd.grad(loss, list(single.parameters()))
        ref = torch.sqrt(sum((g**2).sum() for g in grads))
        torch.testing.assert_close(norms[i], ref, rtol=1e-12, atol=1e-14)


def test_grad_norm_rejects_parameters_without_seed_dim():
    w = torch.zeros(4, requires_grad=True)
    with pytest.raises(ValueError, match="no seed dim"):
        per_seed_grad_norm((w * 1.0).reshape(2, 2).sum(1), [w])


def _ring_samples(assign: torch.Tensor, offset: float = 0.0) -> torch.Tensor:
    means = ring_means(8, 1.0)
    return (means[assign] + offset).unsqueeze(0)  # (1, N, 2)


def test_mode_metrics_on_the_closed_form_extremes():
    std = 0.01
    all_modes = _ring_samples(torch.arange(2500) % 8)
    one_mode = _ring_samples(torch.zeros(2500, dtype=torch.long))
    far = _ring_samples(torch.arange(2500) % 8, offset=10.0)
    out = mode_metrics(torch.cat([all_modes, one_mode, far]), ring_means(8, 1.0), std)
    torch.testing.assert_close(
        out["modes_captured"], torch.tensor([8.0, 1.0, 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        out["high_quality_frac"], torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    )
    # 2500 = 8 * 312 + 4: four modes hold 313 samples, four hold 312
    p = np.array([313] * 4 + [312] * 4) / 2500
    assert out["reverse_kl"][0].item() == pytest.approx(float(np.sum(p * np.log(8 * p))), abs=1e-12)
    assert out["reverse_kl"][1].item() == pytest.approx(math.log(8), abs=1e-12)
    assert math.isnan(out["reverse_kl"][2].item())  # no high-quality sample: undefined


def test_high_quality_threshold_is_three_std():
    std = 0.02
    means = ring_means(8, 1.0)
    inside = means[0] + torch.tensor([2.9 * std, 0.0], dtype=torch.float64)
    outward = means[1] / means[1].norm()  # radially outward: mode 1 stays the nearest
    outside = means[1] + 3.1 * std * outward
    out = mode_metrics(torch.stack([inside, outside]).unsqueeze(0), means, std)
    assert out["high_quality_frac"].item() == pytest.approx(0.5)
    assert out["modes_captured"].item() == 1.0  # the far sample does not capture mode 1


def test_nearest_mode_index_and_distance():
    means = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    idx, dist = nearest_mode(torch.tensor([[[1.0, 0.0], [7.0, 0.0]]]), means)
    assert idx.tolist() == [[0, 1]]
    torch.testing.assert_close(dist, torch.tensor([[1.0, 3.0]]))


def test_reverse_kl_matches_numpy():
    counts = torch.tensor([[10.0, 0.0, 5.0, 5.0]], dtype=torch.float64)
    p = counts[0].numpy() / 20
    nz = p > 0
    expected = float(np.sum(p[nz] * np.log(p[nz] * 4)))
    assert reverse_kl_uniform(counts).item() == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# exact W1 in a process pool


def _point_pairs(n_pairs: int = 5, n: int = 40):
    rng = np.random.default_rng(3)
    return [
        (rng.normal(size=(n, 2)), rng.normal(1.0, 1.0, size=(n + i, 2))) for i in range(n_pairs)
    ]


def test_w1_pool_returns_exactly_the_serial_loop():
    from repro.divergences import w1_samples
    from repro.metrics import w1_pool

    pairs = _point_pairs()
    serial = [w1_samples(x, y) for x, y in pairs]
    assert w1_pool(pairs, workers=2) == serial  # exact equality, in order
    assert w1_pool(pairs, workers=1) == serial
    assert w1_pool([(torch.from_numpy(x), y) for x, y in pairs[:2]], workers=1) == serial[:2]
    assert w1_pool([]) == []
    # a closed form: W1 between two equal-size point sets shifted by c is |c|
    x = pairs[0][0]
    assert w1_pool([(x, x + [3.0, 4.0])], workers=1)[0] == pytest.approx(5.0, rel=1e-12)


@pytest.mark.parametrize("workers", [1, 2])
def test_w1_pool_names_the_pair_that_failed(workers):
    from repro.metrics import w1_pool

    pairs = _point_pairs(3)
    pairs[1] = (np.zeros((4, 2)), np.zeros((4, 3)))  # dimensions differ: the solver's cost fails
    with pytest.raises(RuntimeError, match="exact W1 of pair 1 failed") as info:
        w1_pool(pairs, workers=workers)
    assert info.value.__cause__ is not None
