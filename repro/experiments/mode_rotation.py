"""Unrolled GAN Fig. 1 (Metz et al. 2017): the GAN's dominant mode rotates, unrolled K = 10 covers.

The GAN and the unrolled GAN (``repro.experiments.family.mixtures``) on the ring, with the mode
histogram of 2,500 samples every ``snapshot_every`` generator steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from repro.data import ring_means
from repro.experiments import Experiment, Tables
from repro.experiments.family.mixtures import get_mixture, train_method
from repro.metrics import mode_counts, nearest_mode
from repro.plots import figure


def rotation_stats(hist: torch.Tensor) -> dict[str, torch.Tensor]:
    """From mode histograms over checkpoints (S, T, K): per seed the number of switches of the
    argmax between consecutive checkpoints, the median over checkpoints of the largest mode's
    share, and the number of distinct modes that were ever the argmax. (S,) each."""
    top = hist.argmax(dim=2)  # (S, T)
    share = hist.amax(dim=2) / hist.sum(dim=2).clamp_min(1)  # (S, T)
    switches = (top[:, 1:] != top[:, :-1]).sum(dim=1).to(hist.dtype)
    distinct = torch.tensor([len(set(row.tolist())) for row in top], dtype=hist.dtype)
    return {"switches": switches, "top_share": share.median(dim=1).values, "distinct": distinct}


ROTATION_METRICS = (
    "gan_argmax_switches",
    "gan_top_share",
    "gan_distinct_dominant",
    "gan_modes_final",
    "unrolled_argmax_switches",
    "unrolled_top_share",
    "unrolled_modes_min_late",
    "unrolled_modes_final",
    "gan_hq_late",
    "unrolled_hq_final",
)


def _density(s: torch.Tensor, lim: float, bins: int) -> np.ndarray:
    h, _, _ = np.histogram2d(s[:, 0], s[:, 1], bins=bins, range=[[-lim, lim], [-lim, lim]])
    return h


def run_mode_rotation(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """GAN and unrolled GAN on the ring, 2,500 samples every ``snapshot_every`` G steps.

    Per checkpoint: the histogram of nearest modes over all samples (whose argmax is the dominant
    mode) and the high-quality mode counts (VEEGAN protocol); per seed also the share of
    high-quality samples (%), the GAN's as the median over the late checkpoints and the unrolled
    GAN's at the last one (the quality premises: a diffuse cloud counts modes by stray samples).
    Checkpoints before ``burn_in_steps`` are left out of the rotation statistics; "late" = the
    second half.
    """
    mix = get_mixture("ring", params)
    k, bins, lim = len(mix.means), params["density_bins"], 1.7 * params["ring_radius"]
    seed_cols: dict[str, Any] = {"seed": [int(s) for s in seeds]}
    hist_rows, dens_rows = [], []
    for key, name in (("gan", params["gan_method"]), ("unrolled", params["unrolled_method"])):
        _, snaps = train_method(name, mix, params, seeds, device, params["snapshot_every"])
        steps = sorted(snaps)
        nearest = torch.stack(
            [
                torch.nn.functional.one_hot(nearest_mode(snaps[t], mix.means)[0], k).sum(1)
                for t in steps
            ],
            1,
        ).double()  # (S, T, K)
        hq = torch.stack(
            [mode_counts(snaps[t], mix.means, mix.mode_std) for t in steps], 1
        )  # (S, T, K)
        captured = (hq > 0).sum(dim=2).double()  # (S, T)
        n_samples = torch.tensor([snaps[t].shape[1] for t in steps], dtype=torch.float64)
        hq_pct = 100.0 * hq.sum(dim=2).double() / n_samples  # (S, T): % high-quality samples
        use = torch.tensor([t >= params["burn_in_steps"] for t in steps])
        late = torch.tensor([t >= params["steps"] / 2 for t in steps])
        st = rotation_stats(nearest[:, use])
        seed_cols[f"{key}_argmax_switches"] = st["switches"].numpy()
        seed_cols[f"{key}_top_share"] = st["top_share"].numpy()
        if key == "gan":
            seed_cols["gan_distinct_dominant"] = st["distinct"].numpy()
            # quality premise: the GAN's samples sit on modes (median over late checkpoints)
            seed_cols["gan_hq_late"] = hq_pct[:, late].median(dim=1).values.numpy()
        else:
            seed_cols["unrolled_modes_min_late"] = captured[:, late].amin(dim=1).numpy()
            seed_cols["unrolled_hq_final"] = hq_pct[:, -1].numpy()
        seed_cols[f"{key}_modes_final"] = captured[:, -1].numpy()
        for i, seed in enumerate(seeds):
            for j, t in enumerate(steps):
                for m in range(k):
                    hist_rows.append(
                        {
                            "method": name,
                            "seed": int(seed),
                            "step": t,
                            "mode": m,
                            "nearest": float(nearest[i, j, m]),
                            "high_quality": float(hq[i, j, m]),
                        }
                    )
        for t in steps:
            d = _density(snaps[t][0].numpy(), lim, bins)
            ix, iy = np.nonzero(d)
            dens_rows.append(
                pd.DataFrame({"method": name, "step": t, "ix": ix, "iy": iy, "count": d[ix, iy]})
            )
    table = pd.DataFrame(seed_cols)[["seed", *ROTATION_METRICS]]
    density = pd.concat(dens_rows, ignore_index=True).assign(lim=lim, bins=bins)
    return {"seeds": table, "histograms": pd.DataFrame(hist_rows), "density": density}


def fig_rotation(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Density of the generated samples (one seed) at several training steps: a row per method,
    log colour scale; mode centres marked."""
    d = tables["density"]
    methods = list(dict.fromkeys(d.method))
    steps = sorted(d.step.unique())
    show = [
        steps[i]
        for i in np.unique(np.linspace(0, len(steps) - 1, min(8, len(steps))).round().astype(int))
    ]
    lim, bins = float(d.lim.iloc[0]), int(d.bins.iloc[0])
    means = ring_means(8, params["ring_radius"]).numpy()
    fig, axes = figure(len(show), len(methods), width=1.45, height=1.55, squeeze=False)
    for i, meth in enumerate(methods):
        for j, t in enumerate(show):
            ax, c = axes[i, j], d[(d.method == meth) & (d.step == t)]
            img = np.zeros((bins, bins))
            img[c.ix.to_numpy(), c.iy.to_numpy()] = c["count"].to_numpy()
            ax.imshow(
                np.log1p(img.T), origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis"
            )
            ax.scatter(means[:, 0], means[:, 1], s=6, marker="x", color="w", lw=0.6)
            ax.set(xticks=[], yticks=[])
            ax.grid(False)
            if i == 0:
                ax.set_title(f"step {t}", fontsize=7)
            if j == 0:
                ax.set_ylabel(meth, fontsize=7)
    fig.suptitle("log(1 + count) of generated samples per 2-D bin, first seed", fontsize=8)
    return fig


def fig_rotation_share(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Share of each mode (nearest-mode histogram) against training step, one panel per method
    (first seed): a rotating dominant mode shows as bands that take turns."""
    h = tables["histograms"]
    methods = list(dict.fromkeys(h.method))
    fig, axes = figure(len(methods), 1, width=4.0, height=2.6, squeeze=False)
    for ax, meth in zip(axes[0], methods, strict=True):
        d = h[(h.method == meth) & (h.seed == h.seed.min())]
        wide = d.pivot(index="step", columns="mode", values="nearest")
        share = wide.div(wide.sum(axis=1), axis=0)
        ax.stackplot(share.index, share.T.values, labels=[f"mode {m}" for m in share.columns])
        ax.set(xlabel="generator step", ylabel="share of samples", title=meth, ylim=(0, 1))
    axes[0, 0].legend(fontsize=5, ncol=2, loc="upper right")
    return fig


EXPERIMENT = Experiment(
    run=run_mode_rotation,
    params=(
        "ring_radius",
        "ring_std",
        "gan_method",
        "unrolled_method",
        "z_dim",
        "g_hidden",
        "g_layers",
        "d_hidden",
        "d_layers",
        "batch_size",
        "steps",
        "lr",
        "lr_d",
        "betas",
        "snapshot_every",
        "burn_in_steps",
        "eval_samples",
        "density_bins",
    ),
    metrics=ROTATION_METRICS,
    figures={"density": fig_rotation, "shares": fig_rotation_share},
    doc="Unrolled GAN Fig. 1: GAN's dominant mode rotates; unrolled (K = 10) covers the ring.",
)
