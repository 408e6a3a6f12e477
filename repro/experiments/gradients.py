"""Arjovsky & Bottou 2017, Figs. 1-3: a fresh D against a frozen G wins, and G's gradients suffer.

Protocol (Sec. 2.2-2.3 of the paper): train a DCGAN on data for 1, 10 and 25 epochs and keep G at
each; freeze it; train a fresh discriminator from scratch against it and record, as D learns,

- D's accuracy (Fig. 1: it reaches 1, sometimes within 50 iterations),
- ||grad_theta E_z log(1 - D(G(z)))||, the original cost's gradient (Fig. 2, Thm 2.4: it vanishes),
- ||grad_theta E_z -log D(G(z))||, the alternative cost's gradient (Fig. 3, Thm 2.6: it grows and
  gets noisier; under a Gaussian model of D's error its coordinates are Cauchy distributed).

Here the data are scikit-learn's 8x8 digits and G, D the small batched DCGANs of ``repro.nets``.
One GAN run (all seeds batched) gives the snapshots; the fresh-D phase batches the snapshots too:
copy k * S + i of the batched G holds snapshot k of seed i (``stack_snapshots``). A fresh D for
seed i starts from the same weights against every snapshot, as S separate runs per snapshot would.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from repro import plots
from repro.data import EpochSampler, load_digits_images, sample_normal
from repro.experiments import Experiment, Tables
from repro.losses import non_saturating_g_loss
from repro.nets import STREAM_FRESH_D, DCGANDiscriminator, DCGANGenerator, seed_generators
from repro.train import TrainConfig, epoch_steps, train_fresh_discriminator, train_gan

# Random stream for the per-minibatch gradient samples (repro.nets uses streams 0-4).
STREAM_MINIBATCH = 7

# (q99 - q01) / (q75 - q25): the two-sided tail-quantile ratio of a symmetric law.
GAUSSIAN_TAIL_RATIO = float(
    (stats.norm.ppf(0.99) - stats.norm.ppf(0.01)) / (2 * stats.norm.ppf(0.75))
)
CAUCHY_TAIL_RATIO = float(math.tan(0.49 * math.pi) / math.tan(0.25 * math.pi))

# Accuracy a fresh D must reach to count as "at 1" (Fig. 1): see claims/d-perfect.yaml.
ACCURACY_TARGET = 0.99

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
# tail statistics (pure)


def tail_ratio(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """(q99 - q01) / (q75 - q25) along ``dim``: 3.45 for a Gaussian, 31.8 for a Cauchy.

    Thm 2.6 of Arjovsky & Bottou 2017 predicts Cauchy-distributed coordinates of the -log D
    gradient; this ratio compares a sample's tails with its bulk, free of location and scale.
    NaN where the inter-quartile range is 0.
    """
    q = torch.quantile(
        values.double(), torch.tensor([0.01, 0.25, 0.75, 0.99], dtype=torch.float64), dim=dim
    )
    iqr = q[2] - q[1]
    return torch.where(iqr > 0, (q[3] - q[0]) / iqr, torch.full_like(iqr, float("nan")))


def robust_standardise(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """(v - median) / (q75 - q25) * 1.349 along ``dim``: a N(m, s^2) sample becomes ~N(0, 1)."""
    v = values.double()
    q = torch.quantile(
        v, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), dim=dim, keepdim=True
    )
    return (v - q[1]) / (q[2] - q[0]) * (2 * stats.norm.ppf(0.75))


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


# ---------------------------------------------------------------------------------------------
# Fig. 1: d-perfect


def first_iteration(curve: pd.DataFrame, column: str, target: float, censored: float) -> float:
    """The first evaluated iteration with ``column >= target``; ``censored`` if there is none."""
    hit = curve.loc[curve[column] >= target, "iteration"]
    return float(hit.min()) if len(hit) else float(censored)


def run_d_perfect(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """D accuracy against frozen G snapshots. Per seed, over the snapshots: ``final_accuracy``
    (the worst G's accuracy at the last evaluation), ``iters_to_target_worst`` (the slowest G's
    first iteration at accuracy >= ACCURACY_TARGET), ``iters_to_perfect_best`` (the fastest G's
    first iteration with every evaluation sample classified right). Never reached: d_iterations + 1.
    """
    curves, _, _ = protocol(params, seeds, device, g_costs=())
    censored = params["d_iterations"] + 1

    def summary(c: pd.DataFrame) -> dict[str, float]:
        return {
            "final_accuracy": float(c["d_accuracy"].iloc[-1]),
            "iters_to_target": first_iteration(c, "d_accuracy", ACCURACY_TARGET, censored),
            "iters_to_perfect": first_iteration(c, "d_accuracy", 1.0, censored),
        }

    snaps = _snapshot_table(curves, summary)
    table = seed_table(
        seeds,
        snaps,
        {
            "final_accuracy": ("final_accuracy", "min"),
            "iters_to_target_worst": ("iters_to_target", "max"),
            "iters_to_perfect_best": ("iters_to_perfect", "min"),
        },
    )
    return {"seeds": table, "curves": curves, "snapshots": snaps}


def fig_d_perfect(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Fig. 1 of the paper: D's error (1 - accuracy) against D iterations, one curve per G."""
    fig, ax = plots.figure()
    curves = tables["curves"].copy()
    # balanced accuracy moves in steps of 1 / (2 n) with n samples per side: show 0 at half a step
    floor = 0.5 / (2 * params["batch_size"] * params["eval_batches"])
    curves["d_error"] = (1 - curves["d_accuracy"]).clip(lower=floor)
    for ep, c in curves.groupby("epochs"):
        plots.mean_band(ax, c, "iteration", "d_error", label=f"G after {ep} epochs")
    ax.axhline(floor, color="grey", lw=0.8, ls=":", label="0 errors (plotted at floor)")
    ax.axhline(1 - ACCURACY_TARGET, color="k", lw=0.8, ls="--", label=f"accuracy {ACCURACY_TARGET}")
    ax.set(
        yscale="log",
        xlabel="fresh D iterations (G frozen)",
        ylabel="D error = 1 - accuracy",
        title="a fresh D against a trained G (8x8 digits)",
    )
    ax.legend()
    return fig


# ---------------------------------------------------------------------------------------------
# Fig. 2: vanishing gradients of the original cost


def run_vanishing(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """||grad E log(1 - D(G(z)))|| as the fresh D learns. Per seed: ``log10_decay``, the worst G's
    log10(norm at iteration 0 / norm at the last evaluation), ``log10_decay_best``, the best G's,
    and ``log10_decay_from_peak``, the worst G's log10(largest norm / last norm).
    """
    curves, _, _ = protocol(params, seeds, device, g_costs=("minimax",))
    col = "grad_norm_minimax"

    def summary(c: pd.DataFrame) -> dict[str, float]:
        return {
            "log10_decay": float(np.log10(c[col].iloc[0]) - np.log10(c[col].iloc[-1])),
            # context, not checked: a fresh D starts near-constant, so the norm first rises
            "log10_decay_from_peak": float(np.log10(c[col].max()) - np.log10(c[col].iloc[-1])),
            "log10_norm_final": float(np.log10(c[col].iloc[-1])),
            "final_accuracy": float(c["d_accuracy"].iloc[-1]),
        }

    snaps = _snapshot_table(curves, summary)
    table = seed_table(
        seeds,
        snaps,
        {
            "log10_decay": ("log10_decay", "min"),
            "log10_decay_best": ("log10_decay", "max"),
            "log10_decay_from_peak": ("log10_decay_from_peak", "min"),
        },
    )
    return {"seeds": table, "curves": curves, "snapshots": snaps}


def _norm_panel(ax, curves: pd.DataFrame, column: str, ylabel: str) -> None:
    for ep, c in curves.groupby("epochs"):
        plots.mean_band(ax, c, "iteration", column, label=f"G after {ep} epochs")
    ax.set(yscale="log", xlabel="fresh D iterations (G frozen)", ylabel=ylabel)
    ax.legend()


def fig_vanishing(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Fig. 2 of the paper: the original cost's gradient norm against D iterations (log y)."""
    fig, ax = plots.figure()
    _norm_panel(ax, tables["curves"], "grad_norm_minimax", "||grad_theta E log(1 - D(G(z)))||")
    ax.set_title("original cost log(1 - D(G(z))): gradient norm")
    return fig


# ---------------------------------------------------------------------------------------------
# Fig. 3 / Thm 2.6: the -log D cost's gradient grows, gets noisier, and has heavy tails


def minibatch_gradients(
    G: nn.Module,
    D: nn.Module,
    gens: Sequence[torch.Generator],
    coords: torch.Tensor,
    *,
    z_dim: int,
    batch_size: int,
    n_batches: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-minibatch gradients of -E log D(G(z)) wrt G's parameters, with D and G fixed.

    For each of ``n_batches`` fresh z minibatches (drawn from ``gens``, one per copy) the full
    gradient of copy k is flattened over all of G's parameters (P numbers); we keep its norm and
    the P-vector's entries at ``coords`` (K, J). Returns norms (M, K) and values (M, K, J).
    """
    params = list(G.parameters())
    norms, values = [], []
    D.requires_grad_(False)  # only G's gradient is wanted
    try:
        for _ in range(n_batches):
            z = sample_normal(gens, batch_size, z_dim, device=coords.device)
            loss = non_saturating_g_loss(D(G(z)))  # (K,)
            grads = torch.autograd.grad(loss.sum(), params)
            flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1)  # (K, P)
            norms.append(flat.norm(dim=1))
            values.append(flat.gather(1, coords))
    finally:
        D.requires_grad_(True)
    return torch.stack(norms).cpu(), torch.stack(values).cpu()


# normal-quantile-spaced probabilities for the QQ panel
QQ_PROBS = stats.norm.cdf(np.linspace(-3.0, 3.0, 25))


def minibatch_summary(
    norms: torch.Tensor, values: torch.Tensor
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per copy: norm mean / std / tail ratio over minibatches, the median over coordinates of the
    coordinate tail ratio, and the pooled quantiles of robustly standardised coordinates (QQ plot).
    """
    coord_ratio = tail_ratio(values, dim=0)  # (K, J), NaN for coordinates that never move
    z = robust_standardise(values, dim=0)  # (M, K, J)
    rows, qq = [], []
    for k in range(norms.shape[1]):
        rows.append(
            {
                "copy": k,
                "norm_mean": float(norms[:, k].double().mean()),
                "norm_std": float(norms[:, k].double().std()),
                "norm_tail_ratio": float(tail_ratio(norms[:, k])),
                "coord_tail_ratio": float(np.nanmedian(coord_ratio[k].numpy())),
            }
        )
        pooled = z[:, k].reshape(-1).numpy()
        pooled = pooled[np.isfinite(pooled)]
        for p, q in zip(QQ_PROBS, np.quantile(pooled, QQ_PROBS), strict=True):
            qq.append(
                {
                    "copy": k,
                    "prob": float(p),
                    "normal_quantile": float(stats.norm.ppf(p)),
                    "value": float(q),
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(qq)


def _minibatch_phase(params, G, D, seeds, epochs, phase: str, device):
    """Per-minibatch statistics of the -log D gradient for every copy, labelled by phase."""
    state = copy.deepcopy(G.state_dict())  # batch-norm statistics move in train mode
    gens = seed_generators(G.seeds, STREAM_MINIBATCH)
    n_params = sum(p[0].numel() for p in G.parameters())
    coords = torch.stack(
        [torch.randint(n_params, (params["tail_coords"],), generator=g) for g in gens]
    ).to(device)  # (K, J), drawn per seed
    norms, values = minibatch_gradients(
        G,
        D,
        gens,
        coords,
        z_dim=params["z_dim"],
        batch_size=params["batch_size"],
        n_batches=params["tail_batches"],
    )
    G.load_state_dict(state)
    summary, qq = minibatch_summary(norms, values)
    return (
        label_copies(summary, seeds, epochs).assign(phase=phase),
        label_copies(qq, seeds, epochs).assign(phase=phase),
    )


def run_instability(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """The -log D cost against a fresh D. Per seed, worst G over the snapshots: growth of the
    mean minibatch gradient norm and of its std across minibatches from the untrained D to the
    trained one (log10 ratios), and the trained D's median coordinate tail ratio."""
    epochs = params["g_epochs"]
    G = stack_snapshots(params, seeds, train_snapshots(params, seeds, device), device)
    D = fresh_discriminator(params, G, device)
    start = _minibatch_phase(params, G, D, seeds, epochs, "start", device)
    curves = label_copies(run_fresh_d(params, G, D, ("non-saturating",), device), seeds, epochs)
    end = _minibatch_phase(params, G, D, seeds, epochs, "end", device)
    mb = pd.concat([start[0], end[0]], ignore_index=True)
    wide = mb.pivot_table(
        index=["seed", "epochs"],
        columns="phase",
        values=["norm_mean", "norm_std", "coord_tail_ratio", "norm_tail_ratio"],
    )
    snaps = pd.DataFrame(
        {
            "log10_norm_growth": np.log10(wide["norm_mean"]["end"] / wide["norm_mean"]["start"]),
            "log10_spread_growth": np.log10(wide["norm_std"]["end"] / wide["norm_std"]["start"]),
            # relative spread (coefficient of variation): does the noise outgrow the signal?
            "log10_cv_growth": np.log10(
                (wide["norm_std"]["end"] / wide["norm_mean"]["end"])
                / (wide["norm_std"]["start"] / wide["norm_mean"]["start"])
            ),
            "coord_tail_ratio_end": wide["coord_tail_ratio"]["end"],
            "coord_tail_ratio_start": wide["coord_tail_ratio"]["start"],
            "norm_tail_ratio_end": wide["norm_tail_ratio"]["end"],
        }
    ).reset_index()
    metrics = snaps.columns.drop(["seed", "epochs"])
    table = seed_table(seeds, snaps, {m: (m, "min") for m in metrics})
    qq = pd.concat([start[1], end[1]], ignore_index=True)
    return {"seeds": table, "curves": curves, "snapshots": snaps, "minibatch": mb, "qq": qq}


def fig_instability(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Fig. 3 of the paper (norm and its spread vs D iterations) plus a QQ plot of the tails."""
    fig, axes = plots.figure(3, width=3.9)
    curves = tables["curves"]
    _norm_panel(axes[0], curves, "grad_norm_non_saturating", "||grad_theta E[-log D(G(z))]||")
    axes[0].set_title("-log D cost: gradient norm")
    _norm_panel(
        axes[1],
        curves,
        "grad_norm_non_saturating_std",
        f"std over {params['eval_batches']} minibatches",
    )
    axes[1].set_title("-log D cost: spread across minibatches")
    ax, qq = axes[2], tables["qq"]
    for i, ((phase, ep), c) in enumerate(qq.groupby(["phase", "epochs"])):
        m = c.groupby("normal_quantile")["value"].median()
        ax.plot(
            m.index,
            m.values,
            marker="o" if phase == "end" else ".",
            ms=3,
            ls="-" if phase == "end" else ":",
            color=f"C{i % 3}",
            label=f"{ep} ep, D {'trained' if phase == 'end' else 'fresh'}",
        )
    u = np.linspace(-3, 3, 101)
    ax.plot(u, u, color="k", lw=1, label="Gaussian")
    # a Cauchy's IQR is 2; robust_standardise maps the IQR to the Gaussian's 2 * 0.674
    cauchy = stats.cauchy.ppf(stats.norm.cdf(u)) * stats.norm.ppf(0.75)
    ax.plot(u, cauchy, color="k", lw=1, ls="--", label="Cauchy")
    ax.set(
        xlabel="Gaussian quantile",
        ylabel="standardised gradient coordinate",
        title="tails of per-minibatch coordinates",
        ylim=(-12, 12),
    )
    ax.legend(fontsize=6)
    return fig


# ---------------------------------------------------------------------------------------------
# the experiments

D_PERFECT = Experiment(
    run=run_d_perfect,
    params=PROTOCOL_PARAMS,
    metrics=("final_accuracy", "iters_to_target_worst", "iters_to_perfect_best"),
    figures={"d_error": fig_d_perfect},
    doc="Arjovsky & Bottou 2017, Fig. 1: a fresh D against a frozen G reaches accuracy 1 fast.",
)

VANISHING_GRADIENTS = Experiment(
    run=run_vanishing,
    params=PROTOCOL_PARAMS,
    metrics=("log10_decay", "log10_decay_best", "log10_decay_from_peak"),
    figures={"grad_norm": fig_vanishing},
    doc="Arjovsky & Bottou 2017, Fig. 2 / Thm 2.4: the original G cost's gradient vanishes.",
)

MINUS_LOG_D_INSTABILITY = Experiment(
    run=run_instability,
    params=PROTOCOL_PARAMS + ("tail_batches", "tail_coords"),
    metrics=(
        "log10_norm_growth",
        "log10_spread_growth",
        "log10_cv_growth",
        "coord_tail_ratio_end",
        "coord_tail_ratio_start",
        "norm_tail_ratio_end",
    ),
    figures={"grad_norm": fig_instability},
    doc="Arjovsky & Bottou 2017, Fig. 3 / Thm 2.6: the -log D gradient grows, noisy, heavy-tailed.",
)
