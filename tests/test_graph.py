"""repro.engine.graph.StaticStep: the static-buffer contract a CUDA graph needs, tested on the CPU.

(a) a small batched GAN run through the static path equals plain eager training bit for bit;
(b) the step keeps every parameter, optimiser-state, lr, step-counter and input buffer in its
storage (inputs are copied in, never rebound); (c) the step reads no device value on the host:
no ``_local_scalar_dense`` and no device->host copy (counted on the CPU and on ``meta``).
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench.counting import Counting
from repro.engine import draw, optim, update
from repro.engine.graph import StaticStep
from repro.losses import get_objective
from repro.nets import STREAM_D, BatchedMLP

SEEDS, B, Z, STEPS = [0, 1, 2], 16, 2, 10
OBJ = get_objective("non-saturating")


def _models(device="cpu"):
    g = BatchedMLP((Z, 16, 2), SEEDS).to(device)
    d = BatchedMLP((2, 16, 1), SEEDS, stream=STREAM_D).to(device)
    return g, d


def _real_batches(n: int) -> list[torch.Tensor]:
    """Host-side real batches (a ring's stand-in), copied into the static buffer each step."""
    gen = torch.Generator().manual_seed(7)
    return [torch.randn(len(SEEDS), B, 2, generator=gen) * 0.1 + 1.0 for _ in range(n)]


def _gan_step(G, D, opt_d, opt_g, seeds, x, step, out):
    """One D update and one G update; z drawn on the device from the step counter."""
    z_d = draw(seeds, "data", 2 * step, (B, Z), "normal")
    with torch.no_grad():
        fake = G(z_d)
    d = update(opt_d, OBJ.d_loss(D(x), D(fake)))
    D.requires_grad_(False)
    g = update(opt_g, OBJ.g_loss(D(G(draw(seeds, "data", 2 * step + 1, (B, Z), "normal")))))
    D.requires_grad_(True)
    return d, g


def _eager(batches):
    G, D = _models()
    opt_d = optim.make("adam", D.parameters(), 2e-3, betas=(0.5, 0.999))
    opt_g = optim.make("adam", G.parameters(), 1e-3, betas=(0.5, 0.999))
    seeds, losses = torch.tensor(SEEDS), []
    for t, x in enumerate(batches):
        losses.append(torch.stack(_gan_step(G, D, opt_d, opt_g, seeds, x, t, None)))
    return G, D, torch.stack(losses)


def _static(device="cpu"):
    """The same GAN on static buffers: x copied in, step counter and lr tensors on the device."""
    G, D = _models(device)
    opt_d = optim.make("adam", D.parameters(), 2e-3, betas=(0.5, 0.999), capturable=True)
    opt_g = optim.make("adam", G.parameters(), 1e-3, betas=(0.5, 0.999), capturable=True)
    seeds = torch.tensor(SEEDS, device=device)
    x = torch.zeros(len(SEEDS), B, 2, device=device)
    step = torch.zeros((), dtype=torch.int64, device=device)
    out = torch.zeros(2, len(SEEDS), device=device)

    def fn():
        d, g = _gan_step(G, D, opt_d, opt_g, seeds, x, step, out)
        out[0].copy_(d)
        out[1].copy_(g)
        step.add_(1)

    return G, D, opt_d, opt_g, StaticStep(fn, {"x": x, "step": step}), out


def _storage(G, D, opt_d, opt_g, runner, out) -> dict[str, int]:
    ptrs = {f"param{i}": p.data_ptr() for i, p in enumerate([*G.parameters(), *D.parameters()])}
    for name, opt in (("d", opt_d), ("g", opt_g)):
        ptrs[f"{name}.lr"], ptrs[f"{name}.step_t"] = opt.lr.data_ptr(), opt.step_t.data_ptr()
        for i, st in enumerate(opt.state):
            ptrs.update({f"{name}.state{i}.{k}": v.data_ptr() for k, v in st.items()})
    ptrs.update({f"input.{k}": v.data_ptr() for k, v in runner.inputs.items()})
    ptrs["out"] = out.data_ptr()
    return ptrs


def test_static_path_equals_plain_eager_bitwise():
    batches = _real_batches(STEPS)
    G1, D1, losses = _eager(batches)
    G2, D2, opt_d, opt_g, runner, out = _static()
    static_losses = []
    for x in batches:
        runner(x=x)
        static_losses.append(out.clone())
    assert runner.graph is None and runner.calls == STEPS  # the CPU runs eagerly
    assert int(runner.inputs["step"]) == STEPS and int(opt_d.step_t) == STEPS
    assert torch.equal(torch.stack(static_losses), losses)
    ours = [*G2.parameters(), *D2.parameters()]
    for p1, p2 in zip([*G1.parameters(), *D1.parameters()], ours, strict=True):
        assert torch.equal(p1, p2)


def test_step_reads_and_writes_only_static_buffers():
    G, D, opt_d, opt_g, runner, out = _static()
    batches = _real_batches(STEPS)
    runner(x=batches[0])  # the first step allocates Adam's moments (CUDA: in the warm-up)
    before = _storage(G, D, opt_d, opt_g, runner, out)
    x_buffer = runner.inputs["x"]
    for t, x in enumerate(batches[1:], start=1):
        opt_d.set_lr(2e-3 * (1 - t / STEPS))  # a schedule writes into the lr buffer
        runner(x=x)
        assert torch.equal(runner.inputs["x"], x)  # copied in ...
        assert runner.inputs["x"] is x_buffer  # ... not rebound
    assert _storage(G, D, opt_d, opt_g, runner, out) == before
    assert float(opt_d.lr) == pytest.approx(2e-3 * (1 - (STEPS - 1) / STEPS))


def test_set_inputs_refuses_unknown_names_and_new_shapes():
    *_, runner, _ = _static()
    with pytest.raises(KeyError, match="no static input 'y'; have step, x"):
        runner(y=torch.zeros(1))
    with pytest.raises(ValueError, match=r"input 'x' has shape \(1, 2\), its buffer \(3, 16, 2\)"):
        runner(x=torch.zeros(1, 2))


class _HostReads(TorchDispatchMode):
    """Counts host reads of tensor values: _local_scalar_dense / item / is_nonzero, and copies
    whose source is not on the CPU while the destination is."""

    READS = {
        torch.ops.aten._local_scalar_dense.default,
        torch.ops.aten.item.default,
        torch.ops.aten.is_nonzero.default,
    }

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.READS:
            self.reads.append(str(func))
        if func is torch.ops.aten._to_copy.default:
            dst = kwargs.get("device")
            if dst is not None and torch.device(dst).type == "cpu" and args[0].device.type != "cpu":
                self.reads.append(f"device->host {func}")
        return func(*args, **kwargs)


def test_step_performs_no_sync_on_the_cpu_or_on_meta():
    # CPU: count the scalar reads themselves (a .item() on a CPU tensor is one too)
    G, D, opt_d, opt_g, runner, out = _static()
    batches = _real_batches(4)
    runner(x=batches[0])
    with _HostReads() as mode:
        for x in batches[1:]:
            runner(x=x)
    assert mode.reads == []
    # meta (the budget's stand-in for a GPU): no sync, and the only copy is the batch copied in
    G, D, opt_d, opt_g, runner, out = _static("meta")
    runner(x=batches[0])
    with Counting() as counting:
        for x in batches[1:]:
            runner(x=x)
    assert counting.counts.syncs == 0, counting.counts.by_op
    assert counting.counts.copies == 3  # one host->device batch per step
    assert counting.counts.kernels > 0


# ---------------------------------------------------------------------------------------------
# the engine's loops on static steps: graphs=True equals eager, bit for bit, on the CPU


def _loop_gan(graphs: bool, device="cpu", steps=STEPS, evaluate=True):
    """A batched GAN through ``engine.gan``: static streams, capturable Adam and a schedule
    when ``graphs``; host streams and float-lr Adam when not. Returns (G, D, result, streams)."""
    from repro.data import sample_ring
    from repro.engine import Stream, cosine, gan

    G, D = _models(device)
    opt_d = optim.make("adam", D.parameters(), 2e-3, betas=(0.5, 0.999), capturable=graphs)
    opt_g = optim.make("adam", G.parameters(), 1e-3, betas=(0.5, 0.999), capturable=graphs)
    data = Stream(SEEDS, "data", device, static=graphs)
    latent = Stream(SEEDS, "eval", device, static=graphs)

    def d_loss(step, k):
        with torch.no_grad():
            fake = G(latent.normal(B, Z))
        return OBJ.d_loss(D(sample_ring(data, B, device=device)), D(fake))

    def clip(step, k):  # a hook captured with the D step
        with torch.no_grad():
            for p in D.parameters():
                p.clamp_(-0.5, 0.5)

    result = gan(
        opt_d,
        opt_g,
        d_loss,
        lambda step: OBJ.g_loss(D(G(latent.normal(B, Z)))),
        steps,
        d_steps=lambda step: 3 if step < 2 else 1,
        discriminator=D,
        after_d_step=clip,
        schedule_d=cosine(2e-3, steps),
        evaluate=(lambda step: {"d_mean": D(torch.ones(3, 4, 2, device=device)).mean((1, 2))})
        if evaluate
        else None,
        eval_at=[0, steps // 2, steps],
        graphs=graphs,
    )
    return G, D, result, (data, latent)


def test_engine_gan_on_static_steps_equals_eager_bitwise():
    G0, D0, eager, streams0 = _loop_gan(False)
    G1, D1, static, streams1 = _loop_gan(True)
    assert torch.equal(eager.losses, static.losses)
    params0, params1 = [*G0.parameters(), *D0.parameters()], [*G1.parameters(), *D1.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(params0, params1, strict=True))
    pd.testing.assert_frame_equal(eager.curves, static.curves)
    # the device counters moved as the host ones: 3 + 3 + 1 x 8 = 14 D steps of two data draws
    # (components, noise) and one z; 10 G steps of one z
    assert [s.counter for s in streams1] == [s.counter for s in streams0] == [28, 24]
    assert all(s.static for s in streams1) and not any(s.static for s in streams0)


def test_engine_fit_on_static_steps_equals_eager_bitwise():
    from repro.engine import Stream, fit

    def run(graphs):
        _, D = _models()
        opt = optim.make("sgd-momentum", D.parameters(), 0.05, momentum=0.5, capturable=graphs)
        data = Stream(SEEDS, "data", static=graphs)
        res = fit(opt, lambda step: D(data.normal(B, 2)).mean((1, 2)) ** 2, 6, graphs=graphs)
        return res.losses, [p.detach().clone() for p in D.parameters()]

    (la, pa), (lb, pb) = run(False), run(True)
    assert torch.equal(la, lb) and all(torch.equal(a, b) for a, b in zip(pa, pb, strict=True))


def test_graphs_refuse_an_optimiser_that_is_not_capturable():
    from repro.engine import fit

    _, D = _models()
    opt = optim.make("adam", D.parameters(), 1e-3)
    with pytest.raises(ValueError, match="graphs=True needs capturable optimisers"):
        fit(opt, lambda step: D(torch.ones(3, 2, 2)).sum((1, 2)), 1, graphs=True)


def test_engine_gan_on_meta_with_static_steps_reads_no_host_value():
    """The whole loop (static streams, capturable Adam, schedule, clipping hook) on the meta
    device (the budget's stand-in for a GPU): no sync anywhere, and no host op inside a step
    (a captured graph replays device kernels only; the ring's tables are made once, outside)."""
    with Counting() as counting:
        _loop_gan(True, device="meta", steps=3, evaluate=False)
    assert counting.counts.syncs == 0, counting.counts.by_op
    assert counting.counts.graph_host_ops == 0, counting.counts.by_op
    assert counting.counts.graph_kernels > 0
