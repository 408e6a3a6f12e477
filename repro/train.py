"""The generic GAN training loop for batched models; it knows nothing about any claim.

S seeds train as ONE model (``repro.nets``): every step sums the per-seed losses over seeds
(never the mean) so the batched run equals S separate runs. All randomness after initialisation
(real batches, latent noise, penalty interpolation) comes from one random stream of the copies
(``repro.engine.streams.Stream`` on ``STREAM_DATA``, drawn on the device), in a fixed order: per
generator step, k times (real batch, z), then z.

Public API:
    TrainConfig                                              steps, k = d_steps, lrs, logging...
    train_gan(G, D, real, config, z_dim=..., checkpoint=...) -> TrainResult(history, snapshots)
                                                             (runs on repro.engine.gan with the
                                                             engine's optimiser registry)
    epoch_steps(epochs, n_items, batch_size, d_steps)        G steps at which epochs end
    save_checkpoint(path, payload) / load_checkpoint(path)   atomic write (temp + os.replace)

Checkpoints hold the models, optimisers, the random stream's counter, the real sampler's
state (``EpochSampler``), the history and the snapshots, so a run interrupted after a checkpoint
and started again with the same arguments ends with exactly the result of an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from repro.data import Sampler, sample_normal
from repro.engine import gan, optim
from repro.engine.streams import Stream
from repro.losses import Objective, get_objective
from repro.nets import STREAM_DATA

log = logging.getLogger(__name__)


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
        "gens": gens.state_dict(),
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
    gens.load_state_dict(ckpt["gens"])
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
    graphs: bool = False,
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
        graphs: run the D and G updates as static steps (captured CUDA graphs on CUDA:
            ``repro.engine.loops``), with a static stream and capturable optimisers; pass
            ``repro.engine.use_graphs(device)``. ``real`` must then draw on the device without
            host state (``EpochSampler``'s reshuffles are host decisions: not graph-safe).

    Returns:
        TrainResult with the loss history and G snapshots at ``config.snapshot_steps``.
    """
    seeds = list(generator.seeds)
    device = device if device is not None else next(generator.parameters()).device
    generator.to(device)
    discriminator.to(device)
    objective = config.get_objective()
    opt_g = optim.make(
        config.optimizer,
        generator.parameters(),
        config.lr_g,
        betas=config.betas,
        capturable=graphs,
    )
    opt_d = optim.make(
        config.optimizer,
        discriminator.parameters(),
        config.lr_d,
        betas=config.betas,
        capturable=graphs,
    )
    gens = Stream(seeds, data_stream, device, static=graphs)
    run = _Run(0, torch.zeros(2, len(seeds), device=device, dtype=torch.float64))
    if checkpoint is not None and Path(checkpoint).exists():
        ckpt = load_checkpoint(checkpoint, device)
        run = _restore(ckpt, generator, discriminator, opt_g, opt_d, gens, real, seeds)
        log.info("resumed from %s at step %d", checkpoint, run.step)
    snapshot_at = set(config.snapshot_steps)
    bar = tqdm(total=config.steps, initial=run.step, disable=not sys.stderr.isatty(), leave=False)
    t0, b = time.perf_counter(), config.batch_size
    dtype = next(generator.parameters()).dtype
    # the sum of this G step's D losses without the penalty (logged), accumulated in place on
    # the device (a static step writes it; the bookkeeping between steps reads and zeroes it)
    d_sum = torch.zeros(len(seeds), device=device, dtype=dtype)

    def d_loss(step: int, k: int) -> torch.Tensor:
        x = real(gens, b, device=device).to(dtype)
        z = sample_normal(gens, b, z_dim, device=device, dtype=dtype)
        with torch.no_grad():
            fake = generator(z)  # only D learns here
        loss = objective.d_loss(discriminator(x), discriminator(fake))  # (S,)
        d_sum.add_(loss.detach())
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
        run.sums += torch.stack([d_sum / config.d_steps, losses[1]]).to(run.sums.dtype)
        d_sum.zero_()
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
        graphs=graphs,
    )
    bar.close()
    history = pd.DataFrame(run.rows, columns=["step", "seed", "d_loss", "g_loss"])
    return TrainResult(history, dict(run.snapshots))
