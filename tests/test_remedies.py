"""The remedies for mode collapse, each against a hand-computed case (repro.remedies)."""

from __future__ import annotations

import math

import pytest
import torch

from repro import remedies


def test_pack_concatenates_consecutive_samples_per_seed():
    x = torch.arange(24.0).reshape(2, 6, 2)  # (S, B, d)
    out = remedies.pack(x, 3)
    assert out.shape == (2, 2, 6)
    torch.testing.assert_close(out[0, 1], torch.tensor([6.0, 7.0, 8.0, 9.0, 10.0, 11.0]))
    torch.testing.assert_close(out[1, 0], torch.tensor([12.0, 13.0, 14.0, 15.0, 16.0, 17.0]))
    torch.testing.assert_close(remedies.pack(x, 1), x)
    with pytest.raises(ValueError, match="multiple"):
        remedies.pack(x, 4)


def test_minibatch_features_on_three_points():
    # one kernel of dimension 2 with T = I: M_i = h_i; L1 distances d01 = 1, d02 = 2, d12 = 3
    h = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]])
    o = remedies.minibatch_features(h, torch.eye(2).unsqueeze(0), n_kernels=1)
    e = math.exp
    expected = torch.tensor([[[1 + e(-1) + e(-2)], [1 + e(-1) + e(-3)], [1 + e(-2) + e(-3)]]])
    torch.testing.assert_close(o, expected)
    # two kernels of dimension 1 (columns of T): kernel 0 sees x only, kernel 1 sees 2y only
    t = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    o2 = remedies.minibatch_features(h, t, n_kernels=2)
    k0 = torch.tensor([1 + e(-1) + 1, 1 + e(-1) + e(-1), 1 + 1 + e(-1)])
    k1 = torch.tensor([1 + 1 + e(-4), 1 + 1 + e(-4), 1 + e(-4) + e(-4)])
    torch.testing.assert_close(o2[0], torch.stack([k0, k1], dim=1))


def test_minibatch_features_keep_seeds_apart():
    h = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0))
    t = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(1))
    both = remedies.minibatch_features(h, t, n_kernels=4)
    for s in range(2):
        one = remedies.minibatch_features(h[s : s + 1], t[s : s + 1], n_kernels=4)
        torch.testing.assert_close(both[s : s + 1], one)


def test_feature_matching_loss():
    f_real = torch.tensor(
        [[[1.0, 2.0], [1.0, 2.0]], [[0.0, 0.0], [2.0, 2.0]]]
    )  # means (1,2), (1,1)
    f_fake = torch.tensor([[[0.0, 0.0]], [[1.0, 1.0]]])
    torch.testing.assert_close(
        remedies.feature_matching_loss(f_real, f_fake), torch.tensor([5.0, 0.0])
    )


def test_adam_step_matches_torch_adam():
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    target = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    p = p0.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=0.1, betas=(0.5, 0.9))
    mine = {"w": p0.clone()}
    state = {"w": {"exp_avg": torch.zeros_like(p0), "exp_avg_sq": torch.zeros_like(p0)}}
    for t in range(1, 4):
        opt.zero_grad()
        ((p - target) ** 3).sum().backward()
        opt.step()
        grads = {"w": 3 * (mine["w"] - target) ** 2}
        mine, state = remedies.adam_step(mine, grads, state, t, 0.1, (0.5, 0.9))
        torch.testing.assert_close(mine["w"], p.detach(), rtol=1e-12, atol=1e-14)
    ref_state, step = remedies.adam_state_of(opt, {"w": p})
    assert step == 3
    torch.testing.assert_close(ref_state["w"]["exp_avg_sq"], state["w"]["exp_avg_sq"])


def test_unrolled_two_steps_equal_a_hand_unrolled_update():
    """K = 2 Adam steps on d_loss = sum (w - theta)^2 / 2 + w^3 / 3, written out by hand, then the
    surrogate G loss L = sum theta * w_2: values and dL/dtheta (through both updates) agree."""
    lr, (b1, b2), eps = 0.05, (0.5, 0.9), 1e-8
    theta = torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)
    w0 = torch.tensor([1.0, 0.2], dtype=torch.float64)

    def d_loss(params, i):
        w = params["w"]
        return ((w - theta) ** 2 / 2 + w**3 / 3).reshape(2, 1).sum(1)

    out = remedies.unrolled_params(
        d_loss,
        {"w": w0.clone().requires_grad_(True)},
        {
            "w": {
                "exp_avg": torch.zeros(2, dtype=torch.float64),
                "exp_avg_sq": torch.zeros(2, dtype=torch.float64),
            }
        },
        0,
        2,
        lr,
        (b1, b2),
        eps,
    )["w"]
    (grad,) = torch.autograd.grad((theta * out).sum(), theta)

    # by hand: dL/dw = w - theta + w^2, Adam with bias corrections at t = 1, 2
    def hand(th):
        w, m, v = w0, 0.0, 0.0
        for t in (1, 2):
            g = w - th + w**2
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            w = w - lr * (m / (1 - b1**t)) / (torch.sqrt(v) / math.sqrt(1 - b2**t) + eps)
        return w

    th = theta.detach().clone().requires_grad_(True)
    w2 = hand(th)
    (grad_hand,) = torch.autograd.grad((th * w2).sum(), th)
    torch.testing.assert_close(out.detach(), w2.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, grad_hand, rtol=1e-10, atol=1e-12)
    # and by central finite differences of the hand-written update (float64)
    h = 1e-6
    fd = torch.stack(
        [
            ((theta + h * e) * hand(theta + h * e) - (theta - h * e) * hand(theta - h * e)).sum()
            for e in torch.eye(2, dtype=torch.float64)
        ]
    ).detach() / (2 * h)
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-8)
    # the unrolled path matters: a detached w_2 would give dL/dtheta = w_2 alone (Adam is
    # nearly scale-free, so dw_2/dtheta is small here but far above float64 error)
    assert (grad - w2.detach()).abs().max() > 1e-5


def test_maxout_takes_the_max_over_pieces():
    layer = remedies.Maxout(1, 2, pieces=3, n_seeds=1)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[[1.0, -1.0, 0.5, 2.0, 0.0, -3.0]]]))
        layer.linear.bias.zero_()
    x = torch.tensor([[[2.0], [-1.0]]])  # pieces of unit 0: (w 1, -1, 0.5), unit 1: (2, 0, -3)
    torch.testing.assert_close(layer(x), torch.tensor([[[2.0, 4.0], [1.0, 3.0]]]))


def test_batch_norm_per_seed_and_unit():
    bn = remedies.BatchNorm1d(2, n_seeds=2)
    x = torch.tensor([[[1.0, 10.0], [3.0, 10.0]], [[0.0, -2.0], [4.0, 2.0]]])
    y = bn(x)
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 2), atol=1e-6, rtol=0)
    torch.testing.assert_close(y[0, :, 0], torch.tensor([-1.0, 1.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(y[0, :, 1], torch.zeros(2))  # a constant unit maps to 0


# ---------------------------------------------------------------------------------------------
# the unrolled GAN's inner Adam on one flat buffer


def _unrolled_g_step(
    flat: bool, dtype, device="cpu", k=3, outer=2, s=2, h=8, b=16, tensor_step=False
):
    """Unrolled-GAN G steps as the mixtures experiment takes them (K unrolled D updates on
    fresh batches, then the surrogate loss through theta_D^K); returns theta_D^K, the surrogate
    loss and G's gradients of every outer step."""
    from torch.func import functional_call

    from repro.losses import get_objective
    from repro.nets import STREAM_D, BatchedMLP

    seeds = list(range(s))
    G = BatchedMLP((2, h, h, 2), seeds).to(device, dtype)
    D = BatchedMLP((2, h, h, 1), seeds, stream=STREAM_D).to(device, dtype)
    obj, gen = get_objective("non-saturating"), torch.Generator().manual_seed(0)
    named = dict(D.named_parameters())

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=dtype) * scale).to(device)

    state = {
        n: {"exp_avg": rand(*p.shape, scale=1e-2), "exp_avg_sq": rand(*p.shape).abs() * 1e-3}
        for n, p in named.items()
    }
    thetas, losses, grads = [], [], []
    for o in range(outer):
        batches = [(rand(s, b, 2), rand(s, b, 2)) for _ in range(k)]

        def d_loss(theta, i, batches=batches):
            x, z = batches[i]
            return obj.d_loss(functional_call(D, theta, (x,)), functional_call(D, theta, (G(z),)))

        step = torch.tensor(3.0 + o, dtype=torch.float64, device=device) if tensor_step else 3 + o
        lr = torch.tensor(5e-3, dtype=torch.float64, device=device) if tensor_step else 5e-3
        theta = remedies.unrolled_params(d_loss, named, state, step, k, lr, (0.5, 0.999), flat=flat)
        loss = obj.g_loss(functional_call(D, theta, (G(rand(s, b, 2)),)))
        thetas += [t.detach() for t in theta.values()]
        losses.append(loss.detach())
        grads += torch.autograd.grad(loss.sum(), list(G.parameters()))
    return thetas, losses, grads


def test_flat_unrolled_adam_matches_the_per_parameter_one():
    """theta_D^K and the surrogate loss are bit-identical (the same elementwise ops, op for op);
    G's gradients differ only by the order autograd sums contributions: float64 rounding."""
    ref, flat = _unrolled_g_step(False, torch.float64), _unrolled_g_step(True, torch.float64)
    for a, b in zip(ref[0] + ref[1], flat[0] + flat[1], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(ref[2], flat[2], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-15 * float(a.abs().max()))
    # float32: measured on the dev box (K = 10, 4 copies of width 32) max |difference| of G's
    # gradients 3.7e-9 at a max |gradient| of 0.05, i.e. ~2^-24 of the scale; bound 2^-18
    ref, flat = _unrolled_g_step(False, torch.float32), _unrolled_g_step(True, torch.float32)
    for a, b in zip(ref[0] + ref[1], flat[0] + flat[1], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(ref[2], flat[2], strict=True):
        assert float((a - b).abs().max()) <= 2**-18 * float(a.abs().max())


def test_flat_unrolled_adam_launches_fewer_kernels():
    """Counted on meta: the per-parameter Adam is 15 kernels per parameter per unrolled step,
    the flat one 15 for all of D (+ one cat of the gradients)."""
    from bench.counting import Counting

    counts = {}
    for flat in (False, True):
        with Counting() as mode:
            _unrolled_g_step(flat, torch.float32, device="meta", k=4, outer=1)
        counts[flat] = mode.counts
        assert mode.counts.syncs == 0
    # 6 parameters: 6 x 15 = 90 Adam kernels -> 15 (+1 cat) per unrolled step, 4 steps
    assert counts[False].kernels - counts[True].kernels >= 4 * (90 - 16)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_flat_unrolled_adam_takes_the_step_and_lr_from_device_tensors(dtype):
    """A capturable D optimiser's step_t and lr (0-d float64 tensors) give the host-int
    results bit for bit, so a captured G step stays right as the count grows."""
    host = _unrolled_g_step(True, dtype)
    device = _unrolled_g_step(True, dtype, tensor_step=True)
    for a, b in zip(sum(host, []), sum(device, []), strict=True):
        assert torch.equal(a, b)
    from bench.counting import Counting

    with Counting() as mode:
        _unrolled_g_step(True, torch.float32, device="meta", k=2, outer=1, tensor_step=True)
    assert mode.counts.syncs == 0
