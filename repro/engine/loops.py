"""The two training loops: ``fit`` (one network: D only, critic only, classifier) and ``gan``.

Both know nothing about any claim. An experiment hands them closures that draw a batch and
return the PER-COPY loss (C,); the loops minimise the SUM over copies (never the mean), so C
copies in one batched model train exactly as C separate runs would.

Schedules and evaluation:

- ``schedule(step) -> lr`` (a float or a (C,) tensor) is applied before update ``step``
  (0-based), e.g. ``cosine(lr, steps)``.
- ``evaluate(step) -> {name: (C, ...) tensor}`` runs at each step in ``eval_at``, where step t
  means "after t updates" (0: before training). Results stay on the device until the loop ends;
  the (C,) ones then come back in one transfer as a tidy curve table: one row per (step, copy),
  the copy's settings (``Copies.table``) as columns, one column per metric. Others (samples for
  an exact W1 computed after training, off the training loop) are in ``Result.evals``.

Graphs (``graphs=True``): each update (fit's step; gan's D step and G step) runs as a
``repro.engine.graph.StaticStep``, captured once as a CUDA graph and replayed on CUDA, eager on
the same static buffers elsewhere (so on the CPU it equals ``graphs=False`` bit for bit, tested).
The closures then follow the graph contract: their numbers come from static streams
(``Stream(..., static=True)``: the counter is a device tensor), they do not branch on the step
or k they are passed (a replay repeats the kernels recorded at the capture), and the optimisers
are capturable (``optim.make(..., capturable=True)``: lr and step count on the device). Hooks that
run between updates (evaluation, ``after_step``) stay eager; ``after_d_step`` is captured with
the D step.
An experiment asks ``repro.engine.use_graphs(device)`` once (CUDA, unless ``$REPRO_GRAPHS`` is
"0"; "1" forces the static path on any device) and passes the answer to its streams
(``static=``), optimisers (``capturable=``) and the loop (``graphs=``).

Example (a D-only run):
    >>> from repro.engine import Copies, fit, optim
    >>> copies = Copies.grid([0, 1], pair=["shift"])
    >>> net = torch.nn.Linear(1, 1)
    >>> opt = optim.make("adam", net.parameters(), lr=1e-2)
    >>> _ = fit(opt, lambda step: (net(torch.ones(2, 1)) ** 2).squeeze(1), steps=3)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from repro.engine.copies import Copies
from repro.engine.graph import StaticStep
from repro.engine.optim import BatchedOptimizer, Chain

LossFn = Callable[[int], torch.Tensor]  # step -> per-copy loss (C,)
EvalFn = Callable[[int], dict[str, torch.Tensor]]  # step -> {metric: (C,)}
Schedule = Callable[[int], "float | torch.Tensor"]


def cosine(lr: float, steps: int) -> Schedule:
    """Cosine decay from ``lr`` at step 0 towards 0 at ``steps``: 0.5 lr (1 + cos(pi t / T))."""
    return lambda step: 0.5 * lr * (1.0 + math.cos(math.pi * step / steps))


def update(
    opt: BatchedOptimizer | Chain,
    per_copy_loss: torch.Tensor,
    before_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """One optimiser step on sum_c loss_c (``before_step`` runs between the backward pass and
    the step, e.g. to flip the sign of an ascending network's gradients); returns the detached
    per-copy loss."""
    opt.zero_grad()
    per_copy_loss.sum().backward()
    if before_step is not None:
        before_step()
    opt.step()
    return per_copy_loss.detach()


class _Update:
    """One kind of update (a D step, a G step, fit's step): ``fn() -> (C,)`` detached losses,
    run eagerly, or (``graphs``) as a ``StaticStep`` that writes them into a static buffer, of
    which each call returns a copy."""

    def __init__(self, fn: Callable[[], torch.Tensor], graphs: bool, *opts):
        self.fn, self.out = fn, None
        self.static = None
        if graphs:
            members = [o for opt in opts for o in getattr(opt, "opts", [opt])]  # a Chain's too
            if not all(o.capturable for o in members):
                raise ValueError(
                    "graphs=True needs capturable optimisers (optim.make(..., capturable=True)):"
                    " a float lr and a host step count would be recorded into the graph"
                )
            self.static = StaticStep(self._write, device=members[0].device)

    def _write(self) -> None:
        value = self.fn()
        if self.out is None:  # the first (eager or warm-up) call sizes the buffer
            self.out = torch.empty_like(value)
        self.out.copy_(value)

    def __call__(self) -> torch.Tensor:
        if self.static is None:
            return self.fn()
        self.static()
        return self.out.clone()


def _result(losses: list[torch.Tensor], rec: _Recorder, copies: Copies | None) -> Result:
    stacked = torch.stack(losses) if losses else torch.empty(0)
    return Result(stacked, rec.table(copies), list(zip(rec.steps, rec.values, strict=True)))


class _Recorder:
    """Collects evaluation results on the device; one transfer at the end."""

    def __init__(self, evaluate: EvalFn | None, eval_at: Iterable[int]):
        self.evaluate, self.at = evaluate, set(eval_at)
        self.steps: list[int] = []
        self.values: list[dict[str, torch.Tensor]] = []

    def __call__(self, step: int) -> None:
        if self.evaluate is not None and step in self.at:
            self.steps.append(step)
            # clone: a metric may be a live parameter that later updates change in place
            self.values.append({k: v.detach().clone() for k, v in self.evaluate(step).items()})

    def table(self, copies: Copies | None) -> pd.DataFrame:
        frames = []
        for step, values in zip(self.steps, self.values, strict=True):
            cols = {k: v.double().cpu().numpy() for k, v in values.items() if v.dim() == 1}
            n = len(next(iter(cols.values()))) if cols else 0
            base = copies.table.copy() if copies is not None else pd.DataFrame(index=range(n))
            frames.append(base.assign(step=step, copy=range(n), **cols))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@dataclass
class Result:
    """losses: (steps, C) per-copy training losses (on the device); curves: the (C,) metrics of
    the evaluations as a tidy table; evals: every evaluation as (step, {name: tensor}), for
    values that are not one number per copy (e.g. samples for an exact W1 after training)."""

    losses: torch.Tensor
    curves: pd.DataFrame
    evals: list[tuple[int, dict[str, torch.Tensor]]]


def fit(
    opt: BatchedOptimizer | Chain,
    loss: LossFn,
    steps: int,
    *,
    schedule: Schedule | None = None,
    before_step: Callable[[], None] | None = None,
    after_step: Callable[[int], None] | None = None,
    evaluate: EvalFn | None = None,
    eval_at: Iterable[int] = (),
    copies: Copies | None = None,
    graphs: bool = False,
) -> Result:
    """Train one (batched) network: ``steps`` updates of ``opt`` on sum_c ``loss(step)``_c.

    Args:
        opt: optimiser over the network's parameters (``repro.engine.optim.make``), or a
            ``Chain`` of them for networks trained on one shared loss (their parameters disjoint).
        loss: step -> (C,) per-copy loss on a fresh batch.
        steps: number of updates.
        schedule: step -> lr, set before each update (a tuple of them for a ``Chain``).
        before_step: called between each backward pass and its step (gradient transforms:
            ``Chain`` of a descending and an ascending network, f-GAN Algorithm 1).
        after_step: called after each update (e.g. weight clipping).
        evaluate, eval_at: see the module docstring.
        copies: the copy table joined onto the curves.
        graphs: run each update as a static step (module docstring); ``after_step`` is then
            captured with it.
    """
    rec, losses, at = _Recorder(evaluate, eval_at), [], [0]

    def one() -> torch.Tensor:
        value = update(opt, loss(at[0]), before_step)
        if after_step is not None:
            after_step(at[0])
        return value

    run = _Update(one, graphs, opt)
    rec(0)
    for step in range(steps):
        at[0] = step
        if schedule is not None:
            opt.set_lr(schedule(step))
        losses.append(run())
        rec(step + 1)
    return _result(losses, rec, copies)


def gan(
    opt_d: BatchedOptimizer,
    opt_g: BatchedOptimizer,
    d_loss: Callable[[int, int], torch.Tensor],
    g_loss: LossFn,
    steps: int,
    *,
    d_steps: int | Callable[[int], int] = 1,
    discriminator: nn.Module | None = None,
    after_d_step: Callable[[int, int], None] | None = None,
    schedule_d: Schedule | None = None,
    schedule_g: Schedule | None = None,
    evaluate: EvalFn | None = None,
    eval_at: Iterable[int] = (),
    copies: Copies | None = None,
    start: int = 0,
    after_step: Callable[[int, torch.Tensor], None] | None = None,
    graphs: bool = False,
) -> Result:
    """Alternating GAN training (Goodfellow et al. 2014, Alg. 1): per generator step, ``d_steps``
    D updates on sum_c ``d_loss(step, k)``_c, each followed by ``after_d_step(step, k)`` (WGAN
    clipping), then one G update on sum_c ``g_loss(step)``_c.

    Args:
        d_steps: D updates per G step, or a function of the G step giving them (WGAN's critic
            schedule: 100 for the first 25 G steps and every 500th, else 5).
        discriminator: if given, its parameters get no gradients during the G update (saves
            D's weight gradients; G's gradient is unchanged).
        steps, evaluate, eval_at, copies: as in ``fit``; step t = after t generator steps.
        start: the first generator step (a resumed run continues from its checkpoint's step).
        after_step: called after every generator step with (step, its (2, C) losses), e.g. for
            logging, snapshots and checkpoints.
        graphs: run the D step (with ``after_d_step``) and the G step as static steps (module
            docstring).

    Returns:
        Result with losses (steps, 2, C): mean D loss over the k D steps, and G loss.
    """
    rec, losses, at = _Recorder(evaluate, eval_at), [], [start, 0]

    def d_update() -> torch.Tensor:
        value = update(opt_d, d_loss(*at))
        if after_d_step is not None:
            after_d_step(*at)
        return value

    def g_update() -> torch.Tensor:
        if discriminator is not None:
            discriminator.requires_grad_(False)
        try:
            return update(opt_g, g_loss(at[0]))
        finally:
            if discriminator is not None:
                discriminator.requires_grad_(True)

    run_d, run_g = _Update(d_update, graphs, opt_d), _Update(g_update, graphs, opt_g)
    rec(start)
    for step in range(start, steps):
        at[0] = step
        if schedule_d is not None:
            opt_d.set_lr(schedule_d(step))
        if schedule_g is not None:
            opt_g.set_lr(schedule_g(step))
        d_sum, n_d = None, d_steps(step) if callable(d_steps) else d_steps
        for k in range(n_d):
            at[1] = k
            d = run_d()
            d_sum = d if d_sum is None else d_sum + d
        g = run_g()
        losses.append(torch.stack([d_sum / n_d, g]))
        if after_step is not None:
            after_step(step, losses[-1])
        rec(step + 1)
    return _result(losses, rec, copies)
