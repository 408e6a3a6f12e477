"""The generic GAN training loop for batched models; it knows nothing about any claim.

S seeds train as ONE model (``repro.nets``): every step sums the per-seed losses over seeds
(never the mean) so the batched run equals S separate runs. All randomness after initialisation
(real batches, latent noise, penalty interpolation) comes from one generator per seed on stream
``STREAM_DATA``, drawn in a fixed order: per generator step, k times (real batch, z), then z.

Public API:
    OPTIMIZERS, make_optimizer(name, params, lr, betas)      "adam" | "rmsprop"
    TrainConfig                                              steps, k = d_steps, lrs, logging...
    train_gan(G, D, real, config, z_dim=..., checkpoint=...) -> TrainResult(history, snapshots)
                                                             (runs on repro.engine.gan with the
                                                             engine's optimiser registry)
    d_step(...), g_step(...)                                 one update of D / of G
    epoch_steps(epochs, n_items, batch_size, d_steps)        G steps at which epochs end
    evaluate_discriminator(G, D, real, gens, ...)            D accuracy / loss and G-cost
                                                             gradient norms on fresh batches
    train_fresh_discriminator(G, D, real, ...) -> DataFrame  freeze G, train a new D, record the
                                                             above every ``eval_every`` D steps
    save_checkpoint(path, payload) / load_checkpoint(path)   atomic write (temp + os.replace)

Checkpoints hold the models, optimisers, the per-seed generator states, the real sampler's
state (``EpochSampler``), the history and the snapshots, so a run interrupted after a checkpoint
and started again with the same arguments ends with exactly the result of an uninterrupted run.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from repro.data import Sampler, sample_normal
from repro.engine import gan, optim
from repro.losses import Objective, get_objective
from repro.metrics import d_accuracy, per_seed_grad_norm
from repro.nets import STREAM_DATA, STREAM_EVAL, STREAM_FRESH_D, seed_generators

log = logging.getLogger(__name__)

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    # DCGAN's Adam(2e-4, beta1 = 0.5); WGAN's RMSProp (torch defaults alpha 0.99, eps 1e-8)
    "adam": lambda params, lr, betas: torch.optim.Adam(params, lr=lr, betas=betas),
    "rmsprop": lambda params, lr, betas: torch.optim.RMSprop(params, lr=lr),
}


def make_optimizer(
    name: str,
    params: Iterable[torch.Tensor],
    lr: float,
    betas: tuple[float, float] = (0.5, 0.999),
) -> torch.optim.Optimizer:
    """The optimiser ``name`` over ``params`` (``betas`` only used by Adam).

    Both act per element, so on a batched model they update each seed as a separate run would.
    Unknown name -> ValueError listing the valid ones.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(sorted(OPTIMIZERS))}")
    return OPTIMIZERS[name](params, lr, tuple(betas))


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one GAN training run.

    Attributes:
        steps: generator steps in total.
        batch_size: real and fake samples per seed per step.
        d_steps: k, discriminator steps per generator step (Goodfellow et al. 2014, Alg. 1).
        objective: a name for ``repro.losses.get_objective`` or an ``Objective``.
        optimizer: "adam" or "rmsprop", for both networks.
        lr_g, lr_d, betas: learning rates and Adam's betas.
        log_every: generator steps per history row / log line (losses averaged over them).
        checkpoint_every: generator steps between checkpoints (0: only at the end).
        snapshot_steps: generator steps after which G's state is kept (see ``epoch_steps``).
    """

    steps: int
    batch_size: int = 64
    d_steps: int = 1
    objective: str | Objective = "non-saturating"
    optimizer: str = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    log_every: int = 100
    checkpoint_every: int = 0
    snapshot_steps: tuple[int, ...] = ()

    def get_objective(self) -> Objective:
        obj = self.objective
        return obj if isinstance(obj, Objective) else get_objective(obj)


@dataclass
class TrainResult:
    """history: one row per (logged step, seed) with columns step, seed, d_loss, g_loss (means
    over the log interval); snapshots: generator step -> G's state_dict on the CPU."""

    history: pd.DataFrame
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)


def epoch_steps(
    epochs: Sequence[int], n_items: int, batch_size: int, d_steps: int = 1
) -> tuple[int, ...]:
    """Generator steps after which ``e`` epochs of real minibatches are consumed, for each e.

    Each D step draws one real minibatch and an epoch has floor(n_items / batch_size) of them,
    so epoch e ends in generator step ceil(e * floor(n / B) / k). For the 1,797 digits at
    batch 64 and k = 1: 28 steps per epoch, epochs (1, 10, 25) -> (28, 280, 700).
    """
    per_epoch = n_items // batch_size
    return tuple(math.ceil(e * per_epoch / d_steps) for e in epochs)


# ---------------------------------------------------------------------------------------------
# one step


def clip_parameters_(module: nn.Module, clip: float) -> None:
    """WGAN weight clipping: clamp every parameter to [-clip, clip] in place (Arjovsky et al.
    2017, Algorithm 1)."""
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-clip, clip)


def d_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_d: torch.optim.Optimizer,
    objective: Objective,
    real: torch.Tensor,
    z: torch.Tensor,
    gens: Sequence[torch.Generator],
) -> torch.Tensor:
    """One discriminator update on sum_s d_loss_s (+ lambda * penalty_s); returns d_loss (S,).

    Clipping (WGAN) is applied after the update, the penalty (WGAN-GP) draws its interpolation
    weights from ``gens``. G is evaluated without a graph: only D learns here.
    """
    with torch.no_grad():
        fake = generator(z)
    loss = objective.d_loss(discriminator(real), discriminator(fake))  # (S,)
    total = loss
    if objective.penalty is not None:
        total = loss + objective.penalty_weight * objective.penalty(discriminator, real, fake, gens)
    opt_d.zero_grad(set_to_none=True)
    total.sum().backward()
    opt_d.step()
    if objective.clip is not None:
        clip_parameters_(discriminator, objective.clip)
    return loss.detach()


def g_step(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    objective: Objective,
    z: torch.Tensor,
) -> torch.Tensor:
    """One generator update on sum_s g_loss_s; returns g_loss (S,). D's weights get no grads."""
    discriminator.requires_grad_(False)  # skip D's weight gradients: only G is updated
    try:
        loss = objective.g_loss(discriminator(generator(z)))
        opt_g.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt_g.step()
    finally:
        discriminator.requires_grad_(True)
    return loss.detach()


# ---------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """torch.save to a temporary file beside ``path``, then os.replace: never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, device: Any = None) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint`` (tensors only: weights_only=True)."""
    return torch.load(path, map_location=device, weights_only=True)


@dataclass
class _Run:
    """Everything a checkpoint must restore beyond the modules and optimisers."""

    step: int
    sums: torch.Tensor  # (2, S): d_loss and g_loss summed over the current log interval
    count: int = 0
    rows: list[dict[str, float]] = field(default_factory=list)
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)


def _payload(G, D, opt_g, opt_d, gens, real, run: _Run, seeds) -> dict[str, Any]:
    return {
        "seeds": list(seeds),
        "step": run.step,
        "generator": G.state_dict(),
        "discriminator": D.state_dict(),
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "gens": [g.get_state() for g in gens],
        "real": real.state_dict() if hasattr(real, "state_dict") else None,
        "sums": run.sums,
        "count": run.count,
        "rows": run.rows,
        "snapshots": run.snapshots,
    }


def _restore(ckpt, G, D, opt_g, opt_d, gens, real, seeds) -> _Run:
    if list(ckpt["seeds"]) != list(seeds):
        raise ValueError(f"checkpoint is for seeds {ckpt['seeds']}, this run has {list(seeds)}")
    G.load_state_dict(ckpt["generator"])
    D.load_state_dict(ckpt["discriminator"])
    opt_g.load_state_dict(ckpt["opt_g"])
    opt_d.load_state_dict(ckpt["opt_d"])
    for g, state in zip(gens, ckpt["gens"], strict=True):
        g.set_state(state)
    if ckpt["real"] is not None:
        real.load_state_dict(ckpt["real"])
    return _Run(ckpt["step"], ckpt["sums"], ckpt["count"], ckpt["rows"], ckpt["snapshots"])


# ---------------------------------------------------------------------------------------------
# the loop


def _flush(run: _Run, seeds: Sequence[int], total: int, t0: float) -> None:
    means = (run.sums / max(run.count, 1)).cpu().double()  # the only device sync per interval
    for i, seed in enumerate(seeds):
        run.rows.append(
            {
                "step": run.step,
                "seed": seed,
                "d_loss": float(means[0, i]),
                "g_loss": float(means[1, i]),
            }
        )
    d_mean, g_mean = means.mean(dim=1).tolist()
    log.info(
        "step %d/%d  d_loss %.4f  g_loss %.4f  (mean of %d seeds)  %.1f steps/s",
        run.step,
        total,
        d_mean,
        g_mean,
        len(seeds),
        run.count / max(time.perf_counter() - t0, 1e-9),
    )
    run.sums.zero_()
    run.count = 0


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    real: Sampler,
    config: TrainConfig,
    *,
    z_dim: int,
    device: Any = None,
    checkpoint: str | Path | None = None,
    data_stream: int = STREAM_DATA,
) -> TrainResult:
    """Train a batched GAN: k D steps per G step, ``config.steps`` G steps, all seeds at once.

    Args:
        generator: batched G, (S, B, z_dim) -> (S, B, ...); its ``seeds`` name the seeds.
        discriminator: batched D, (S, B, ...) -> (S, B, 1) logits (critic values for WGAN).
        real: sampler(gens, batch, device=...) -> (S, B, ...) real data.
        config: the settings.
        z_dim: latent dimension; z ~ N(0, I).
        device: where to train (models are moved there); None keeps the models' device.
        checkpoint: file to resume from if it exists and to write every
            ``config.checkpoint_every`` steps and at the end; None: no checkpoints.
        data_stream: random stream of the data / noise generators.

    Returns:
        TrainResult with the loss history and G snapshots at ``config.snapshot_steps``.
    """
    seeds = list(generator.seeds)
    device = device if device is not None else next(generator.parameters()).device
    generator.to(device)
    discriminator.to(device)
    objective = config.get_objective()
    opt_g = optim.make(config.optimizer, generator.parameters(), config.lr_g, betas=config.betas)
    opt_d = optim.make(
        config.optimizer, discriminator.parameters(), config.lr_d, betas=config.betas
    )
    gens = seed_generators(seeds, data_stream)
    run = _Run(0, torch.zeros(2, len(seeds), device=device, dtype=torch.float64))
    if checkpoint is not None and Path(checkpoint).exists():
        ckpt = load_checkpoint(checkpoint, device)
        run = _restore(ckpt, generator, discriminator, opt_g, opt_d, gens, real, seeds)
        log.info("resumed from %s at step %d", checkpoint, run.step)
    snapshot_at = set(config.snapshot_steps)
    bar = tqdm(total=config.steps, initial=run.step, disable=not sys.stderr.isatty(), leave=False)
    t0, b = time.perf_counter(), config.batch_size
    dtype = next(generator.parameters()).dtype
    d_parts: list[torch.Tensor] = []  # this G step's D losses, without the penalty (logged)

    def d_loss(step: int, k: int) -> torch.Tensor:
        x = real(gens, b, device=device).to(dtype)
        z = sample_normal(gens, b, z_dim, device=device, dtype=dtype)
        with torch.no_grad():
            fake = generator(z)  # only D learns here
        loss = objective.d_loss(discriminator(x), discriminator(fake))  # (S,)
        d_parts.append(loss.detach())
        if objective.penalty is None:
            return loss
        return loss + objective.penalty_weight * objective.penalty(discriminator, x, fake, gens)

    def clip(step: int, k: int) -> None:
        if objective.clip is not None:
            clip_parameters_(discriminator, objective.clip)

    def g_loss(step: int) -> torch.Tensor:
        z = sample_normal(gens, b, z_dim, device=device, dtype=dtype)
        return objective.g_loss(discriminator(generator(z)))

    def bookkeeping(step: int, losses: torch.Tensor) -> None:
        nonlocal t0
        d_sum = torch.zeros(len(seeds), device=device, dtype=dtype)
        for part in d_parts:
            d_sum += part
        d_parts.clear()
        run.sums += torch.stack([d_sum / config.d_steps, losses[1]]).to(run.sums.dtype)
        run.count += 1
        run.step += 1
        bar.update()
        if run.step % config.log_every == 0 or run.step == config.steps:
            _flush(run, seeds, config.steps, t0)
            t0 = time.perf_counter()
        if run.step in snapshot_at:
            run.snapshots[run.step] = {
                k: v.detach().cpu().clone() for k, v in generator.state_dict().items()
            }
        every = config.checkpoint_every
        if checkpoint is not None and (
            (every and run.step % every == 0) or run.step == config.steps
        ):
            save_checkpoint(
                checkpoint, _payload(generator, discriminator, opt_g, opt_d, gens, real, run, seeds)
            )

    gan(
        opt_d,
        opt_g,
        d_loss,
        g_loss,
        config.steps,
        d_steps=config.d_steps,
        discriminator=discriminator,
        after_d_step=clip,
        start=run.step,
        after_step=bookkeeping,
    )
    bar.close()
    history = pd.DataFrame(run.rows, columns=["step", "seed", "d_loss", "g_loss"])
    return TrainResult(history, dict(run.snapshots))


# ---------------------------------------------------------------------------------------------
# a fresh D against a frozen G (Arjovsky & Bottou 2017, Fig. 1-3)


def _fresh(real: Sampler) -> Sampler:
    return real.fresh() if hasattr(real, "fresh") else real


def _col(cost: str) -> str:
    return "grad_norm_" + cost.replace("-", "_")


def evaluate_discriminator(
    generator: nn.Module,
    discriminator: nn.Module,
    real: Sampler,
    gens: Sequence[torch.Generator],
    *,
    z_dim: int,
    batch_size: int,
    n_batches: int = 4,
    g_costs: Sequence[str] = ("minimax", "non-saturating"),
    d_objective: str | Objective = "minimax",
    device: Any = None,
) -> dict[str, torch.Tensor]:
    """D's accuracy and loss, and the norm of G's gradient under each G cost, on fresh batches.

    For each of ``n_batches`` minibatches (real x, z drawn from ``gens``): the balanced accuracy
    of D, D's loss under ``d_objective``, and per cost c in ``g_costs`` the per-seed norm
    ||grad_theta g_loss_c(D(G_theta(z)))|| over all of G's parameters (Arjovsky & Bottou 2017:
    c = "minimax" is E log(1 - D(G(z))), Fig. 2; c = "non-saturating" is -E log D(G(z)), Fig. 3).

    Returns:
        dict of (S,) tensors: d_accuracy, d_loss (means over the batches), and per cost
        grad_norm_<c> (mean) and grad_norm_<c>_std (std over the batches, ddof = 1; 0 if 1 batch).
    """
    d_obj = d_objective if isinstance(d_objective, Objective) else get_objective(d_objective)
    costs = {c: get_objective(c) for c in g_costs}
    g_params = list(generator.parameters())
    dtype = g_params[0].dtype
    acc, loss, norms = [], [], {c: [] for c in costs}
    for _ in range(n_batches):
        x = real(gens, batch_size, device=device).to(dtype)
        z = sample_normal(gens, batch_size, z_dim, device=device, dtype=dtype)
        fake_logits = discriminator(generator(z))  # graph through G for the gradient norms
        with torch.no_grad():
            real_logits = discriminator(x)
            acc.append(d_accuracy(real_logits, fake_logits))
            loss.append(d_obj.d_loss(real_logits, fake_logits))
        for i, (c, obj) in enumerate(costs.items()):
            keep = i < len(costs) - 1
            norms[c].append(per_seed_grad_norm(obj.g_loss(fake_logits), g_params, keep))
    out = {"d_accuracy": torch.stack(acc).mean(0), "d_loss": torch.stack(loss).mean(0)}
    for c, values in norms.items():
        v = torch.stack(values)  # (n_batches, S)
        out[_col(c)] = v.mean(0)
        out[_col(c) + "_std"] = v.std(0) if n_batches > 1 else torch.zeros_like(v[0])
    return out


def train_fresh_discriminator(
    generator: nn.Module,
    discriminator: nn.Module,
    real: Sampler,
    *,
    z_dim: int,
    iterations: int,
    eval_every: int,
    batch_size: int = 64,
    eval_batches: int = 4,
    g_costs: Sequence[str] = ("minimax", "non-saturating"),
    d_objective: str | Objective = "minimax",
    optimizer: str = "adam",
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    device: Any = None,
    data_stream: int = STREAM_FRESH_D,
    eval_stream: int = STREAM_EVAL,
) -> pd.DataFrame:
    """Freeze G, train a fresh D against it, and record D and G-gradient numbers as it learns.

    The protocol of Arjovsky & Bottou 2017, Fig. 1-3: G stays fixed; D takes ``iterations``
    steps on ``d_objective`` (the GAN cross-entropy by default); at iteration 0, every
    ``eval_every`` iterations and at the end, ``evaluate_discriminator`` runs on fresh batches.
    Training batches come from stream ``data_stream`` and evaluation batches from
    ``eval_stream``, so D's trajectory does not depend on how often it is evaluated. G's
    parameters and buffers are left exactly as they were.

    Args:
        generator: trained batched G (e.g. loaded from a ``TrainResult`` snapshot).
        discriminator: a freshly initialised batched D (e.g. stream ``STREAM_FRESH_D``).
        real: real-data sampler.

    Returns:
        tidy DataFrame, one row per (iteration, seed): iteration, seed, d_accuracy, d_loss and
        grad_norm_<cost>, grad_norm_<cost>_std for each cost (hyphens become underscores).
    """
    seeds = list(generator.seeds)
    device = device if device is not None else next(generator.parameters()).device
    generator.to(device)
    discriminator.to(device)
    frozen = copy.deepcopy(generator.state_dict())  # batch-norm statistics move in train mode
    dtype = next(generator.parameters()).dtype
    obj = d_objective if isinstance(d_objective, Objective) else get_objective(d_objective)
    opt = make_optimizer(optimizer, discriminator.parameters(), lr, betas)
    gens, eval_gens = seed_generators(seeds, data_stream), seed_generators(seeds, eval_stream)
    # an epoch sampler keeps its own permutations: separate passes for training and evaluation
    train_real, eval_real = _fresh(real), _fresh(real)
    kw = dict(
        z_dim=z_dim,
        batch_size=batch_size,
        n_batches=eval_batches,
        g_costs=g_costs,
        d_objective=obj,
        device=device,
    )
    records = []
    for it in range(iterations + 1):
        if it % eval_every == 0 or it == iterations:
            stats = evaluate_discriminator(generator, discriminator, eval_real, eval_gens, **kw)
            records.append((it, {k: v.detach().double().cpu() for k, v in stats.items()}))
            log.info(
                "fresh D it %d/%d  accuracy %.4f",
                it,
                iterations,
                float(records[-1][1]["d_accuracy"].mean()),
            )
        if it < iterations:
            x = train_real(gens, batch_size, device=device).to(dtype)
            z = sample_normal(gens, batch_size, z_dim, device=device, dtype=dtype)
            d_step(generator, discriminator, opt, obj, x, z, gens)
    generator.load_state_dict(frozen)
    generator.zero_grad(set_to_none=True)
    rows = [
        {"iteration": it, "seed": seed, **{k: float(v[i]) for k, v in stats.items()}}
        for it, stats in records
        for i, seed in enumerate(seeds)
    ]
    return pd.DataFrame(rows)
