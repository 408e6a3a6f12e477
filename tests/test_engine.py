"""The engine core (repro.engine): copies, streams, optimisers, the two loops."""

from __future__ import annotations

import math

import pytest
import torch

from repro.engine import STREAMS, Copies, Stream, cosine, draw, fit, gan, optim, stream_id
from repro.nets import STREAM_D, STREAM_DATA, STREAM_EVAL, STREAM_FRESH_D, STREAM_G, BatchedMLP

# ---------------------------------------------------------------------------------------------
# Copies


def test_grid_is_condition_major_seed_fastest():
    c = Copies.grid([3, 5], f=["kl", "js"], pair=["shift", "scale", "mix"])
    assert c.n == 12
    assert c.seeds == [3, 5] * 6
    # copy = (f * K + pair) * S + seed, the order fgan.py used
    row = c.table.iloc[(1 * 3 + 2) * 2 + 1]
    assert (row["f"], row["pair"], row["seed"]) == ("js", "mix", 5)
    assert c.unique_seeds == [3, 5]
    assert c.view(torch.arange(12)).shape == (2, 3, 2)
    assert c.view(torch.arange(12))[1, 2, 1] == 11


def test_column_and_frame():
    c = Copies.grid([0, 1], lr=[1e-3, 1e-2])
    lr = c.column("lr", dtype=torch.float64)
    torch.testing.assert_close(lr, torch.tensor([1e-3, 1e-3, 1e-2, 1e-2], dtype=torch.float64))
    f = c.frame(loss=torch.arange(4.0))
    assert list(f.columns) == ["lr", "seed", "loss"]
    assert f["loss"].tolist() == [0.0, 1.0, 2.0, 3.0]


# ---------------------------------------------------------------------------------------------
# streams


def test_stream_table_keeps_the_engine_ids():
    assert (STREAMS["g_init"], STREAMS["d_init"], STREAMS["data"]) == (
        STREAM_G,
        STREAM_D,
        STREAM_DATA,
    )
    assert (STREAMS["fresh_d"], STREAMS["eval"]) == (STREAM_FRESH_D, STREAM_EVAL)
    assert stream_id(7) == 7
    with pytest.raises(KeyError, match="valid: .*data"):
        stream_id("nope")


@pytest.mark.parametrize("dist", ["uniform", "normal"])
@pytest.mark.parametrize("shape", [(1,), (7,), (33, 2), (5, 3, 17)])
def test_draw_batched_equals_separate_bitwise(dist, shape):
    seeds = torch.tensor([0, 1, 2, 12345, 2**40 + 3])
    batched = draw(seeds, "data", 11, shape, dist)
    assert batched.shape == (5, *shape)
    for c in range(len(seeds)):
        alone = draw(seeds[c : c + 1], "data", 11, shape, dist)
        assert torch.equal(batched[c], alone[0])
    # and a copy's numbers do not depend on its neighbours
    swapped = draw(seeds.flip(0), "data", 11, shape, dist)
    assert torch.equal(swapped.flip(0), batched)


def test_draw_depends_on_seed_stream_and_step():
    s = torch.tensor([4])
    base = draw(s, "data", 0, (64,))
    assert torch.equal(base, draw(s, "data", 0, (64,)))  # deterministic
    for other in (draw(torch.tensor([5]), "data", 0, (64,)), draw(s, "eval", 0, (64,))):
        assert not torch.equal(base, other)
    assert not torch.equal(base, draw(s, "data", 1, (64,)))
    assert torch.equal(base, draw(s, "data", torch.tensor(0), (64,)))  # tensor step: same


def test_draw_moments():
    u = draw(torch.arange(4), "data", 3, (50_000,)).double()
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    torch.testing.assert_close(
        u.mean(1), torch.full((4,), 0.5, dtype=torch.float64), atol=0.01, rtol=0
    )
    torch.testing.assert_close(
        u.var(1), torch.full((4,), 1 / 12, dtype=torch.float64), atol=0.005, rtol=0
    )
    z = draw(torch.arange(4), "data", 3, (50_000,), "normal").double()
    torch.testing.assert_close(z.mean(1), torch.zeros(4, dtype=torch.float64), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(1), torch.ones(4, dtype=torch.float64), atol=0.02, rtol=0)
    # successive words of one copy are uncorrelated
    corr = torch.corrcoef(torch.stack([z[0, :-1], z[0, 1:]]))[0, 1]
    assert abs(float(corr)) < 0.02


def _lowbias32(x: int) -> int:
    """Reference lowbias32 on Python ints (unsigned 32-bit), independent of the int32 kernel."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def _reference_words(seed: int, stream: int, step: int, n: int) -> list[int]:
    """The documented hash on Python ints: two 32-bit key chains over (seed) and (stream, step),
    XORed, then word i = mix(mix(i ^ k1) ^ k2)."""
    m = _lowbias32
    seed_chains = [m(m(a ^ (seed & 0xFFFFFFFF)) ^ (seed >> 32)) for a in (0x9E3779B9, 0x85EBCA6B)]
    step_chains = [
        m(m(m(a ^ stream) ^ (step & 0xFFFFFFFF)) ^ (step >> 32)) for a in (0xC2B2AE35, 0x27D4EB2F)
    ]
    k1, k2 = (a ^ b for a, b in zip(seed_chains, step_chains, strict=True))
    return [m(m(i ^ k1) ^ k2) for i in range(n)]


@pytest.mark.parametrize("seed, step", [(0, 0), (2**40 + 3, 5), (123456789, 2**33 + 7)])
def test_draw_equals_the_unsigned_reference_hash(seed, step):
    """The int32 kernel (wrapping products, masked shifts) computes the documented hash exactly,
    on any CPU: uniforms are the words' top 24 bits, float64 uniforms all 32, randint the
    high word of word * high."""
    words = _reference_words(seed, STREAMS["data"], step, 9)
    u = draw(torch.tensor([seed]), "data", step, (9,))[0]
    assert u.tolist() == [(w >> 8) * 2.0**-24 for w in words]
    u64 = draw(torch.tensor([seed]), "data", step, (9,), dtype=torch.float64)[0]
    assert u64.tolist() == [w * 2.0**-32 for w in words]
    z = draw(torch.tensor([seed]), "data", step, (4,), "normal", torch.float64)[0]
    want = []
    for w1, w2 in zip(words[0:4:2], words[1:4:2], strict=True):
        r = math.sqrt(-2.0 * math.log((w1 + 1.0) * 2.0**-32))
        want += [
            r * math.cos(2.0 * math.pi * 2.0**-32 * w2),
            r * math.sin(2 * math.pi * 2.0**-32 * w2),
        ]
    torch.testing.assert_close(z, torch.tensor(want, dtype=torch.float64), rtol=1e-14, atol=0)


STREAM_METHODS = {
    "normal": lambda s: s.normal(5, 3),
    "uniform": lambda s: s.uniform(17),
    "uniform64": lambda s: s.uniform(4, dtype=torch.float64),
    "randint": lambda s: s.randint(7, 33),
    "categorical": lambda s: s.categorical(torch.tensor([0.2, 0.0, 0.8]), 40),
    "permutation": lambda s: s.permutation(12),
}


@pytest.mark.parametrize("method", sorted(STREAM_METHODS))
def test_stream_batched_equals_separate_bitwise(method):
    seeds = [4, 0, 4, 99]  # a repeated seed: equal copies get equal numbers
    both = Stream(seeds, "data")
    batched = [STREAM_METHODS[method](both) for _ in range(3)]  # the counter moves per call
    for c, seed in enumerate(seeds):
        one = Stream([seed], "data")
        for b in batched:
            assert torch.equal(b[c], STREAM_METHODS[method](one)[0])
    assert torch.equal(batched[0][0], batched[0][2])
    assert not torch.equal(batched[0][0], batched[1][0])


@pytest.mark.parametrize("method", sorted(STREAM_METHODS))
def test_static_stream_draws_the_numbers_of_the_host_counter(method):
    """static=True (the counter a device tensor, as a captured graph needs) and the host counter
    (words computed in numpy on the CPU) give the same numbers, call by call, and resume alike."""
    seeds = [4, 0, 2**40 + 9]
    host = Stream(seeds, "data", substream=2)
    static = Stream(seeds, "data", substream=2, static=True)
    for _ in range(3):
        assert torch.equal(STREAM_METHODS[method](host), STREAM_METHODS[method](static))
    assert host.counter == static.counter == 3 and static.static and not host.static
    again = Stream(seeds, "data", substream=2, static=True)
    again.load_state_dict(host.state_dict())
    assert torch.equal(STREAM_METHODS[method](again), STREAM_METHODS[method](host))


@pytest.mark.parametrize("dist", ["uniform", "normal"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_host_words_equal_the_torch_kernel(dist, dtype):
    """A CPU Stream hashes in numpy (``_words_host``), ``draw`` in torch int32 ops: the same
    integers, so the same numbers, for 64-bit seeds and an odd number of normals."""
    seeds = torch.tensor([0, 7, 2**40 + 3, 2**63 - 1])
    s = Stream(seeds, "eval")
    for step in range(3):
        got = s.uniform(5, 3, dtype=dtype) if dist == "uniform" else s.normal(5, 3, dtype=dtype)
        assert torch.equal(got, draw(seeds, "eval", step, (5, 3), dist, dtype))


def test_stream_distributions():
    s = Stream(range(4), "eval")
    k = s.randint(5, 20_000)
    assert int(k.min()) == 0 and int(k.max()) == 4
    freq = torch.stack([(k == i).double().mean(1) for i in range(5)])
    torch.testing.assert_close(freq, torch.full_like(freq, 0.2), atol=0.015, rtol=0)
    c = s.categorical(torch.tensor([1.0, 0.0, 3.0]), 20_000)
    assert not bool((c == 1).any())
    torch.testing.assert_close(
        (c == 2).double().mean(1), torch.full((4,), 0.75, dtype=torch.float64), atol=0.015, rtol=0
    )
    p = s.permutation(50)
    assert torch.equal(p.sort(1).values, torch.arange(50).expand(4, 50))
    assert len({tuple(r) for r in p.tolist()}) == 4


def test_stream_substream_state_and_device():
    a, b = Stream([3], "eval"), Stream([3], "eval", substream=1)
    assert not torch.equal(a.uniform(8), b.uniform(8))
    # call k of substream t is draw's step t 2^32 + k, whether the step is an int or a tensor
    want = draw(torch.tensor([3]), "eval", 2**32 + 1, (8,))
    assert torch.equal(b.uniform(8), want)
    assert torch.equal(draw(torch.tensor([3]), "eval", torch.tensor(2**32 + 1), (8,)), want)
    # the counter is the whole state: restoring it continues the sequence exactly
    c = Stream([3], "eval")
    c.uniform(8)
    d = Stream([3], "eval")
    d.load_state_dict(c.state_dict())
    assert torch.equal(c.normal(6), d.normal(6))
    with pytest.raises(ValueError, match="substream"):
        Stream([3], "eval", substream=-1)
    m = Stream([0, 1, 2], "data", device="meta")
    for method in ("normal", "randint", "permutation"):
        out = STREAM_METHODS[method](m)
        assert out.device.type == "meta" and out.shape[0] == 3


def test_draw_on_meta_device_has_no_host_work():
    out = draw(torch.arange(3, device="meta"), "data", 1, (4,), "normal")
    assert out.device.type == "meta" and out.shape == (3, 4)


# ---------------------------------------------------------------------------------------------
# optimisers: bit-identical to torch.optim at equal lr, per-copy lr equals separate runs


TORCH = {
    "sgd": (lambda p, lr: torch.optim.SGD(p, lr=lr), {}),
    "sgd-momentum": (lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.5), {"momentum": 0.5}),
    "adam": (lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.5, 0.999)), {"betas": (0.5, 0.999)}),
    "rmsprop": (lambda p, lr: torch.optim.RMSprop(p, lr=lr), {}),
}


def _grads(steps: int, shape) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(*shape, generator=g) for _ in range(steps)]


@pytest.mark.parametrize("name", sorted(TORCH))
def test_optimizer_matches_torch_optim_bitwise(name):
    make_torch, hyper = TORCH[name]
    start = torch.randn(4, 7, 3, generator=torch.Generator().manual_seed(0))
    a, b = start.clone().requires_grad_(), start.clone().requires_grad_()
    ref, ours = make_torch([a], 1e-2), optim.make(name, [b], 1e-2, **hyper)
    sched = cosine(1e-2, 20)
    for t, g in enumerate(_grads(20, start.shape)):
        for group in ref.param_groups:
            group["lr"] = sched(t)
        ours.set_lr(sched(t))
        a.grad, b.grad = g.clone(), g.clone()
        ref.step()
        ours.step()
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(TORCH))
def test_per_copy_lr_equals_separate_runs(name):
    _, hyper = TORCH[name]
    lrs = torch.tensor([1e-3, 3e-2, 1e-1], dtype=torch.float64)
    start = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(0))
    grads = _grads(10, start.shape)
    batched = start.clone().requires_grad_()
    opt = optim.make(name, [batched], lrs, **hyper)
    for g in grads:
        batched.grad = g.clone()
        opt.step()
    for c in range(3):
        alone = start[c : c + 1].clone().requires_grad_()
        one = optim.make(name, [alone], float(lrs[c]), **hyper)
        for g in grads:
            alone.grad = g[c : c + 1].clone()
            one.step()
        assert torch.equal(alone[0], batched[c])


def test_unknown_optimizer_lists_the_valid_ones():
    with pytest.raises(ValueError, match="adam, rmsprop, sgd, sgd-momentum"):
        optim.make("adagrad", [], 1e-3)


# ---------------------------------------------------------------------------------------------
# loops


def test_fit_converges_and_records_curves():
    # per-copy quadratic (w - target_c)^2: one target per copy, the optimum is known
    copies = Copies.grid([0, 1], target=[-1.0, 2.0])
    target = copies.column("target")
    w = torch.zeros(copies.n, requires_grad=True)
    opt = optim.make("adam", [w], 0.1)
    res = fit(
        opt,
        lambda step: (w - target) ** 2,
        300,
        schedule=cosine(0.1, 300),
        evaluate=lambda step: {"w": w},
        eval_at=(0, 150, 300),
        copies=copies,
    )
    torch.testing.assert_close(w.detach(), target, atol=1e-3, rtol=0)
    assert res.losses.shape == (300, 4)
    curves = res.curves
    assert list(curves.columns) == ["target", "seed", "step", "copy", "w"]
    assert sorted(set(curves["step"])) == [0, 150, 300]
    assert curves[curves["step"] == 0]["w"].tolist() == [0.0] * 4


def test_gan_loop_equals_repro_train_bitwise():
    """The GAN loop with D/G steps written against it reproduces repro.train.train_gan (which
    now runs on engine.gan itself; the test pins the closures' order of draws and the clipping)."""
    from repro.data import get_sampler, sample_normal
    from repro.engine.streams import Stream
    from repro.losses import get_objective
    from repro.train import TrainConfig, train_gan

    ring = get_sampler("ring", radius=1.0, mode_std=0.05)
    seeds, z_dim, b, steps = [0, 1], 2, 16, 5

    def models():
        return (
            BatchedMLP((z_dim, 8, 2), seeds),
            BatchedMLP((2, 8, 1), seeds, stream=STREAM_D),
        )

    G1, D1 = models()
    cfg = TrainConfig(steps=steps, batch_size=b, d_steps=2, objective="wgan", optimizer="rmsprop")
    cfg = TrainConfig(**{**cfg.__dict__, "lr_d": 5e-3, "lr_g": 5e-3, "log_every": 100})
    train_gan(G1, D1, ring, cfg, z_dim=z_dim)

    G2, D2 = models()
    obj, gens = get_objective("wgan"), Stream(seeds, STREAM_DATA)
    opt_d = optim.make("rmsprop", D2.parameters(), 5e-3)
    opt_g = optim.make("rmsprop", G2.parameters(), 5e-3)

    def d_loss(step, k):
        x, z = ring(gens, b), sample_normal(gens, b, z_dim)
        with torch.no_grad():
            fake = G2(z)
        return obj.d_loss(D2(x), D2(fake))

    def clip(step, k):
        with torch.no_grad():
            for p in D2.parameters():
                p.clamp_(-obj.clip, obj.clip)

    def g_loss(step):
        return obj.g_loss(D2(G2(sample_normal(gens, b, z_dim))))

    res = gan(opt_d, opt_g, d_loss, g_loss, steps, d_steps=2, discriminator=D2, after_d_step=clip)
    assert res.losses.shape == (steps, 2, 2)
    ours = [*G2.parameters(), *D2.parameters()]
    for p1, p2 in zip([*G1.parameters(), *D1.parameters()], ours, strict=True):
        assert torch.equal(p1, p2)


def test_cosine_schedule():
    s = cosine(2.0, 10)
    assert s(0) == 2.0
    assert s(5) == pytest.approx(1.0)
    assert s(10) == pytest.approx(0.0, abs=1e-12)
    assert math.isclose(s(3), 0.5 * 2.0 * (1 + math.cos(math.pi * 0.3)))


def test_chain_steps_every_optimizer_on_one_backward():
    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    chain = optim.Chain(optim.make("sgd", [a], 0.1), optim.make("sgd", [b], 0.5))
    fit(chain, lambda step: a * 1.0 + b * 2.0, 1)
    torch.testing.assert_close(a.detach(), torch.full((2,), 0.9))
    torch.testing.assert_close(b.detach(), torch.full((2,), 0.0))
    chain.set_lr([0.0, 0.0])
    assert float(chain.opts[0].lr) == 0.0


def test_gan_d_steps_may_follow_a_schedule():
    """d_steps as a function of the G step (WGAN's critic warm-up): that many D updates before
    each G update, and the recorded D loss is their mean."""
    w = torch.nn.Parameter(torch.zeros(1, 1))
    opt_d = optim.make("sgd", [w], 0.0)
    opt_g = optim.make("sgd", [torch.nn.Parameter(torch.zeros(1, 1))], 0.0)
    calls: list[tuple[int, int]] = []

    def d_loss(step, k):
        calls.append((step, k))
        return (w * 0 + float(k)).sum(1)  # loss k at the k-th D update

    res = gan(
        opt_d, opt_g, d_loss, lambda step: (w * 0).sum(1), 4, d_steps=lambda s: 3 if s < 2 else 1
    )
    assert [s for s, _ in calls] == [0, 0, 0, 1, 1, 1, 2, 3]
    assert res.losses[:, 0, 0].tolist() == [1.0, 1.0, 0.0, 0.0]  # mean of 0, 1, 2 then of 0


def test_adam_state_of_reads_the_engine_adam_like_torch_adam():
    from repro.remedies import adam_state_of

    start = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    a, b = start.clone().requires_grad_(), start.clone().requires_grad_()
    ref = torch.optim.Adam([a], lr=1e-2, betas=(0.5, 0.999))
    ours = optim.make("adam", [b], 1e-2, betas=(0.5, 0.999))
    assert adam_state_of(ours, {"w": b})[1] == 0  # never stepped: zeros, t = 0
    for g in _grads(3, start.shape):
        a.grad, b.grad = g.clone(), g.clone()
        ref.step()
        ours.step()
    (s_ref, t_ref), (s_ours, t_ours) = adam_state_of(ref, {"w": a}), adam_state_of(ours, {"w": b})
    assert t_ref == t_ours == 3
    for k in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(s_ref["w"][k], s_ours["w"][k])


# ---------------------------------------------------------------------------------------------
# capturable optimisers: lr and step count on the device, bit-identical to the float-lr path


@pytest.mark.parametrize("name", sorted(TORCH))
@pytest.mark.parametrize("per_copy", [False, True])
def test_capturable_optimizer_equals_the_float_lr_one_bitwise(name, per_copy):
    """A schedule written into the device lr tensor (in place, as between graph replays) gives
    the same parameters, bit for bit, as the float lr set on the host each step."""
    _, hyper = TORCH[name]
    start = torch.randn(3, 7, 2, generator=torch.Generator().manual_seed(0))
    a, b = start.clone().requires_grad_(), start.clone().requires_grad_()
    sched = cosine(3e-2, 12)
    ref = optim.make(name, [a], sched(0), **hyper)
    lr0 = torch.full((3,), sched(0), dtype=torch.float64) if per_copy else torch.tensor(sched(0))
    ours = optim.make(name, [b], lr0, capturable=True, **hyper)
    assert ours.capturable and ours.step_t is not None
    lr_buffer, step_buffer = ours.lr, ours.step_t
    for t, g in enumerate(_grads(12, start.shape)):
        ref.set_lr(sched(t))
        ours.set_lr(torch.full((3,), sched(t), dtype=torch.float64) if per_copy else sched(t))
        a.grad, b.grad = g.clone(), g.clone()
        ref.step()
        ours.step()
        assert torch.equal(a, b), f"step {t}"
    assert ours.lr is lr_buffer and ours.step_t is step_buffer  # written in place, not rebound
    assert ours.step_t.item() == 12 and ours.step_count == 12
    for k in ref.state[0]:
        assert torch.equal(ref.state[0][k], ours.state[0][k])


def test_zero_dim_tensor_lr_makes_a_capturable_optimizer():
    w = torch.zeros(2, 3, requires_grad=True)
    opt = optim.make("adam", [w], torch.tensor(1e-3))
    assert opt.capturable and opt.lr.dtype == torch.float64 and opt.lr.dim() == 0
    assert not opt.fused  # fused is CUDA-only
    assert not optim.make("adam", [w], 1e-3).capturable


def test_capturable_step_reads_no_host_value():
    """No .item() / device->host copy in a capturable step (on meta: a read would be counted)."""
    from bench.counting import Counting

    w = torch.zeros(4, 3, device="meta", requires_grad=True)
    for name in sorted(TORCH):
        opt = optim.make(name, [w], torch.tensor(1e-3), **TORCH[name][1])
        with Counting() as mode:
            for _ in range(3):
                w.grad = torch.ones_like(w)
                opt.step()
                opt.set_lr(torch.tensor(2e-3))  # a schedule's value, written in place
        assert mode.counts.syncs == 0, (name, mode.counts.by_op)
