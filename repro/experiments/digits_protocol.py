"""The v1 fresh-D protocol on the 8x8 digits (small DCGAN of ``repro.nets``), kept for the
saturation claims, which were built on it.

Moved unchanged from ``repro.experiments.gradients`` when the Arjovsky & Bottou claims moved to
Fashion-MNIST, the standard 28x28 DCGAN and held-out evaluation (issue 6); see that module for
the protocol. Copy k * S + i of a stacked G holds snapshot k of seed i.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from repro.data import EpochSampler, load_digits_images
from repro.nets import STREAM_FRESH_D, DCGANDiscriminator, DCGANGenerator
from repro.train import TrainConfig, epoch_steps, train_fresh_discriminator, train_gan

# Random stream for the per-minibatch gradient samples (repro.nets uses streams 0-4).
STREAM_MINIBATCH = 7

PROTOCOL_PARAMS = (
    "g_epochs",
    "batch_size",
    "z_dim",
    "g_channels",
    "d_channels",
    "g_norm",
    "g_objective",
    "lr",
    "d_lr",
    "d_iterations",
    "eval_every",
    "eval_batches",
)


# ---------------------------------------------------------------------------------------------
# the protocol


def _digits(device: Any) -> EpochSampler:
    return EpochSampler(load_digits_images().to(device))


def train_snapshots(
    params: Mapping[str, Any], seeds: Sequence[int], device: Any
) -> list[dict[str, torch.Tensor]]:
    """One batched GAN run on the digits; G's state after each of ``params["g_epochs"]`` epochs.

    Epoch 0 is G at initialisation. Returns one state_dict (seed dim S) per entry of g_epochs.
    """
    p = params
    G = DCGANGenerator(seeds, z_dim=p["z_dim"], channels=p["g_channels"], norm=p["g_norm"])
    D = DCGANDiscriminator(seeds, channels=p["d_channels"])
    initial = copy.deepcopy(G.state_dict())
    real = _digits(device)
    steps = epoch_steps(p["g_epochs"], len(real.data), p["batch_size"])
    if max(steps) > 0:
        cfg = TrainConfig(
            steps=max(steps),
            batch_size=p["batch_size"],
            objective=p["g_objective"],
            lr_g=p["lr"],
            lr_d=p["lr"],
            log_every=max(1, max(steps) // 5),
            snapshot_steps=tuple(s for s in steps if s > 0),
        )
        snaps = train_gan(G, D, real, cfg, z_dim=p["z_dim"], device=device).snapshots
    return [initial if s == 0 else snaps[s] for s in steps]


def stack_snapshots(
    params: Mapping[str, Any], seeds: Sequence[int], snapshots: Sequence[dict], device: Any
) -> DCGANGenerator:
    """A batched G of K*S copies: copy k*S + i is snapshot k of seed i (seeds repeated K times)."""
    p = params
    G = DCGANGenerator(
        list(seeds) * len(snapshots), z_dim=p["z_dim"], channels=p["g_channels"], norm=p["g_norm"]
    )
    G.load_state_dict({k: torch.cat([s[k] for s in snapshots]) for k in snapshots[0]})
    return G.to(device)


def fresh_discriminator(params: Mapping[str, Any], G: DCGANGenerator, device: Any) -> nn.Module:
    """A newly initialised D (stream STREAM_FRESH_D) with one copy per copy of ``G``."""
    return DCGANDiscriminator(G.seeds, channels=params["d_channels"], stream=STREAM_FRESH_D).to(
        device
    )


def run_fresh_d(
    params: Mapping[str, Any], G: nn.Module, D: nn.Module, g_costs: Sequence[str], device: Any
) -> pd.DataFrame:
    """Train the fresh D ``params["d_iterations"]`` steps against the frozen G (engine protocol).

    Returns the engine's curves with a ``copy`` column (position in the batched model), since
    the seed column repeats across snapshots: the engine writes one row per copy in copy order.
    """
    p = params
    curves = train_fresh_discriminator(
        G,
        D,
        _digits(device),
        z_dim=p["z_dim"],
        iterations=p["d_iterations"],
        eval_every=p["eval_every"],
        batch_size=p["batch_size"],
        eval_batches=p["eval_batches"],
        g_costs=tuple(g_costs),
        lr=p["d_lr"],
        device=device,
    )
    curves["copy"] = curves.groupby("iteration").cumcount()
    return curves


def label_copies(df: pd.DataFrame, seeds: Sequence[int], epochs: Sequence[int]) -> pd.DataFrame:
    """Add ``epochs`` (the snapshot) and the true ``seed`` from the ``copy`` column."""
    n = len(seeds)
    df = df.copy()
    df["epochs"] = [int(epochs[c // n]) for c in df["copy"]]
    df["seed"] = [int(seeds[c % n]) for c in df["copy"]]
    return df


def protocol(
    params: Mapping[str, Any], seeds: Sequence[int], device: Any, g_costs: Sequence[str]
) -> tuple[pd.DataFrame, DCGANGenerator, nn.Module]:
    """Snapshots -> stacked G -> fresh D trained against it; returns (curves, G, trained D)."""
    snaps = train_snapshots(params, seeds, device)
    G = stack_snapshots(params, seeds, snaps, device)
    D = fresh_discriminator(params, G, device)
    curves = run_fresh_d(params, G, D, g_costs, device)
    return label_copies(curves, seeds, params["g_epochs"]), G, D


def seed_table(
    seeds: Sequence[int], snaps: pd.DataFrame, reductions: Mapping[str, tuple[str, str]]
) -> pd.DataFrame:
    """The "seeds" table: metric -> (column of ``snaps``, how to reduce it over the snapshots).

    ``snaps`` has one row per (seed, epochs); "min" of a column checked with ">=" is the worst G.
    """
    table = pd.DataFrame({"seed": [int(s) for s in seeds]})
    for metric, (column, how) in reductions.items():
        table[metric] = snaps.groupby("seed")[column].agg(how).loc[list(seeds)].to_numpy()
    return table


def _snapshot_table(curves: pd.DataFrame, fn) -> pd.DataFrame:
    """One row per (seed, epochs) from ``fn(curve of that copy) -> dict``."""
    rows = [
        {"seed": int(seed), "epochs": int(ep), **fn(c.sort_values("iteration"))}
        for (seed, ep), c in curves.groupby(["seed", "epochs"])
    ]
    return pd.DataFrame(rows)
