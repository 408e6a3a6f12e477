"""Tables and figures shared by the mixture table claims (mode_collapse_mixtures, pacgan_table1).

``run_methods`` trains every (method, data set) of the params (``repro.experiments.family.
mixtures``) and returns the per-seed table (``metric_names``: every metric of every method and
data set, and the paired gains against the GAN), the comparison with VEEGAN / PacGAN Table 1 and
the samples for the figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from repro.experiments import Tables
from repro.experiments.family.mixtures import (
    evaluate_deferred,
    get_mixture,
    sample_generator,
    train_method,
)
from repro.metrics import w1_pool
from repro.plots import figure

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# tables shared by the claims

METRICS = ("modes", "hq", "rkl", "w1")
DATASETS = ("ring", "grid")


def _col(metric: str, method: str, dataset: str) -> str:
    return f"{metric}_{method.replace('-', '_')}_{dataset}"


def metric_names(methods: Sequence[str]) -> tuple[str, ...]:
    """Per-seed metric columns: every metric of every (method, data set), then the paired gains
    modes_gain_<m>_<ds> = modes(m) - modes(gan) and rkl_drop_<m>_<ds> = rkl(gan) - rkl(m)."""
    cols = [_col(m, meth, ds) for ds in DATASETS for meth in methods for m in METRICS]
    for ds in DATASETS:
        for meth in (m for m in methods if m != "gan"):
            cols += [_col("modes_gain", meth, ds), _col("rkl_drop", meth, ds)]
    return tuple(cols)


def seed_table(results: pd.DataFrame, seeds, methods: Sequence[str]) -> pd.DataFrame:
    """One row per seed, the columns of ``metric_names(methods)`` (NaN for what was not run)."""
    index = pd.Index([int(s) for s in seeds], name="seed")
    cols: dict[str, pd.Series] = {}
    for (meth, ds), r in results.groupby(["method", "dataset"]):
        r = r.set_index("seed").reindex(index)
        for m in METRICS:
            cols[_col(m, meth, ds)] = r[m]
    nan = pd.Series(np.nan, index=index)
    for ds in DATASETS:
        gan_modes, gan_rkl = (cols.get(_col(m, "gan", ds), nan) for m in ("modes", "rkl"))
        for meth in (m for m in methods if m != "gan"):
            cols[_col("modes_gain", meth, ds)] = cols.get(_col("modes", meth, ds), nan) - gan_modes
            cols[_col("rkl_drop", meth, ds)] = gan_rkl - cols.get(_col("rkl", meth, ds), nan)
    table = pd.DataFrame(cols, index=index)
    return table.reindex(columns=list(metric_names(methods))).astype(float).reset_index()


def paper_comparison(results: pd.DataFrame, paper: Mapping[str, Any]) -> pd.DataFrame:
    """Our mean and standard error beside VEEGAN Table 1 and PacGAN Table 1, cell by cell.

    ``paper`` maps "<paper>_<dataset>_<method>_<metric>" (metric modes / hq / rkl) to the number
    printed in that paper (the spec's reported.values); a missing cell is NaN.
    """
    rows = []
    for (meth, ds), r in results.groupby(["method", "dataset"], sort=False):
        for m in ("modes", "hq", "rkl"):
            v = r[m].dropna()
            key = f"{ds}_{meth.replace('-', '_')}_{m}"
            rows.append(
                {
                    "method": meth,
                    "dataset": ds,
                    "metric": m,
                    "ours_mean": float(v.mean()) if len(v) else np.nan,
                    "ours_se": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else np.nan,
                    "n_seeds": len(v),
                    "veegan": float(paper.get(f"veegan_{key}", np.nan)),
                    "pacgan": float(paper.get(f"pacgan_{key}", np.nan)),
                }
            )
    return pd.DataFrame(rows)


def run_methods(
    params: Mapping[str, Any], seeds: Sequence[int], device: Any, all_methods: Sequence[str]
) -> Tables:
    """Train every (method, data set) of ``params`` (one batched model each) and evaluate it.

    The seeds table has the columns of ``metric_names(all_methods)``: what is not run is NaN.
    """
    results, samples, timing, w1_pairs = [], [], [], []
    for ds in params["datasets"]:
        mix = get_mixture(ds, params)
        for name in params["methods"]:
            t0 = time.perf_counter()
            G, _ = train_method(name, mix, params, seeds, device)
            s = sample_generator(G, params, seeds, device)
            table, pairs = evaluate_deferred(s, mix, seeds, params)
            results.append(table.assign(method=name, dataset=ds))
            w1_pairs += pairs
            n = params["plot_samples"]
            xy = s[0, :n].numpy()
            samples.append(
                pd.DataFrame(
                    {
                        "method": name,
                        "dataset": ds,
                        "seed": int(seeds[0]),
                        "x": xy[:, 0],
                        "y": xy[:, 1],
                    }
                )
            )
            timing.append({"method": name, "dataset": ds, "seconds": time.perf_counter() - t0})
            log.info(
                "%s on %s: %.1f s, modes %s",
                name,
                ds,
                timing[-1]["seconds"],
                results[-1]["modes"].tolist(),
            )
    res = pd.concat(results, ignore_index=True)
    res["w1"] = w1_pool(w1_pairs)  # every (method, data set, seed) at once, after training
    res = res[["method", "dataset", "seed", *METRICS]]
    return {
        "seeds": seed_table(res, seeds, all_methods),
        "results": res,
        "paper_comparison": paper_comparison(res, params.get("paper_values", {})),
        "samples": pd.concat(samples, ignore_index=True),
        "timing": pd.DataFrame(timing),
    }


# ---------------------------------------------------------------------------------------------
# figures (read the tables only)


def fig_samples(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Generated samples (one seed) over the mixture's modes: a row per data set, a column per
    method."""
    s = tables["samples"]
    methods, datasets = list(dict.fromkeys(s.method)), list(dict.fromkeys(s.dataset))
    fig, axes = figure(len(methods), len(datasets), width=1.55, height=1.65, squeeze=False)
    for i, ds in enumerate(datasets):
        means = get_mixture(ds, params).means.numpy()
        lim = 1.6 * float(np.abs(means).max()) + 0.3
        for j, meth in enumerate(methods):
            ax, d = axes[i, j], s[(s.dataset == ds) & (s.method == meth)]
            ax.scatter(d.x, d.y, s=1.5, color="C0", alpha=0.4, lw=0, rasterized=True)
            ax.scatter(means[:, 0], means[:, 1], s=10, marker="x", color="C3", lw=0.8)
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")
            if i == 0:
                ax.set_title(meth, fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{ds}\n$x_2$", fontsize=7)
            if i == len(datasets) - 1:
                ax.set_xlabel("$x_1$", fontsize=7)
    n = len(s) // max(len(methods) * len(datasets), 1)
    fig.suptitle(f"{n} samples of seed {int(s.seed.iloc[0])} (dots), mode centres (x)", fontsize=8)
    return fig


def fig_bars(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Modes captured and high-quality % per method (mean +- s.e. over seeds), with the numbers of
    VEEGAN Table 1 (diamonds) and PacGAN Table 1 (triangles) where they report that cell."""
    pc = tables["paper_comparison"]
    datasets = list(dict.fromkeys(pc.dataset))
    fig, axes = figure(2, len(datasets), width=5.6, height=2.6, squeeze=False)
    for i, ds in enumerate(datasets):
        for j, (metric, label) in enumerate(
            (("modes", "modes captured"), ("hq", "high quality (%)"))
        ):
            ax, d = axes[i, j], pc[(pc.dataset == ds) & (pc.metric == metric)]
            x = np.arange(len(d))
            ax.bar(
                x,
                d.ours_mean,
                yerr=d.ours_se.fillna(0),
                color="C0",
                alpha=0.75,
                capsize=2,
                label="ours",
            )
            ax.scatter(x, d.veegan, marker="D", color="C3", s=18, zorder=3, label="VEEGAN Tab. 1")
            ax.scatter(x, d.pacgan, marker="^", color="C2", s=22, zorder=3, label="PacGAN Tab. 1")
            if metric == "modes":
                ax.axhline(len(get_mixture(ds, params).means), color="0.4", ls="--", lw=0.8)
            ax.set_xticks(x, d.method, rotation=60, ha="right", fontsize=7)
            ax.set(ylabel=label, title=f"{ds}: {label}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7)
    return fig


# the params every mixture table claim takes (pacgan_table1 drops the remedies' own)
MIXTURE_PARAMS = (
    "datasets",
    "methods",
    "ring_radius",
    "ring_std",
    "grid_std",
    "z_dim",
    "g_hidden",
    "g_layers",
    "g_norm",
    "d_hidden",
    "d_layers",
    "maxout_pieces",
    "batch_size",
    "steps",
    "lr",
    "lr_d",
    "betas",
    "wgan_lr",
    "wgan_gp_lr",
    "mbd_kernels",
    "mbd_kernel_dim",
    "noise_schedule",
    "train_points",
    "eval_samples",
    "w1_samples",
    "plot_samples",
    "paper_values",
)
