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
    """
    rec, losses = _Recorder(evaluate, eval_at), []
    rec(0)
    for step in range(steps):
        if schedule is not None:
            opt.set_lr(schedule(step))
        losses.append(update(opt, loss(step), before_step))
        if after_step is not None:
            after_step(step)
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

    Returns:
        Result with losses (steps, 2, C): mean D loss over the k D steps, and G loss.
    """
    rec, losses = _Recorder(evaluate, eval_at), []
    rec(start)
    for step in range(start, steps):
        if schedule_d is not None:
            opt_d.set_lr(schedule_d(step))
        if schedule_g is not None:
            opt_g.set_lr(schedule_g(step))
        d_sum, n_d = None, d_steps(step) if callable(d_steps) else d_steps
        for k in range(n_d):
            d = update(opt_d, d_loss(step, k))
            d_sum = d if d_sum is None else d_sum + d
            if after_d_step is not None:
                after_d_step(step, k)
        if discriminator is not None:
            discriminator.requires_grad_(False)
        try:
            g = update(opt_g, g_loss(step))
        finally:
            if discriminator is not None:
                discriminator.requires_grad_(True)
        losses.append(torch.stack([d_sum / n_d, g]))
        if after_step is not None:
            after_step(step, losses[-1])
        rec(step + 1)
    return _result(losses, rec, copies)
