"""vanishing-gradients (Arjovsky & Bottou 2017, Fig. 2 / Thm 2.4): as a fresh D learns against a
frozen G, the norm of the original cost's gradient ||grad_theta E_z log(1 - D(G(z)))|| vanishes.
The protocol is ``family.arjovsky_bottou``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from repro.experiments import Experiment, Tables
from repro.experiments.family.arjovsky_bottou import (
    PROTOCOL_PARAMS,
    data_title,
    epoch_label,
    norm_panel,
    per_snapshot,
    protocol,
    seed_table,
    series_style,
    setup,
    wide_figure,
)


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log10 y on log10 x over the finite, positive pairs (NaN if < 3)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 3 or np.ptp(np.log10(x[ok])) == 0:
        return float("nan")
    return float(np.polyfit(np.log10(x[ok]), np.log10(y[ok]), 1)[0])


def _earliest(snaps: pd.DataFrame):
    """Reducer: the value of ``column`` in the row of the earliest snapshot."""

    def pick(values: pd.Series) -> float:
        return float(values.loc[snaps.loc[values.index, "epochs"].idxmin()])

    return pick


def _at_largest(snaps: pd.DataFrame, key: str):
    """Reducer: the value of ``column`` in the row (snapshot) where ``key`` is largest: Fig. 2's
    "best case", the generator whose gradient decays most."""

    def pick(values: pd.Series) -> float:
        return float(values.loc[snaps.loc[values.index, key].idxmax()])

    return pick


PAPER_D_ITERATIONS = 4000  # Fig. 2: "in the best case 5 orders of magnitude after 4000 ..."


def run_vanishing(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """||grad E log(1 - D(G(z)))|| as the fresh D learns, on eval_size fresh z.

    Per seed, for the paper's best case, the generator whose gradient decays most over the run
    (``*_largest``): ``log10_decay_largest`` (log10(first / last)), ``log10_decay_from_peak_
    largest`` (log10(max / last)), ``log10_decay_4000_largest`` (first / last evaluation at or
    before 4,000 D iterations, the paper's horizon; NaN for a shorter run) and
    ``fake_loss_final_largest`` (premise); the same for the earliest G (``*_earliest``, context);
    ``loss_slope``, the median over Gs of the slope of log10 norm on log10 held-out fake loss
    after the peak; the worst G's decay, held-out and training accuracy at the end.
    """
    curves, _, _, _ = protocol(params, seeds, device, costs=("minimax",))
    col = "grad_norm_minimax"

    def summary(c: pd.DataFrame) -> dict[str, float]:
        norm = c[col].to_numpy()
        peak = int(np.argmax(norm))
        upto = c["iteration"].to_numpy() <= PAPER_D_ITERATIONS
        reaches = c["iteration"].max() >= PAPER_D_ITERATIONS
        return {
            "log10_decay": float(np.log10(norm[0]) - np.log10(norm[-1])),
            "log10_decay_4000": float(np.log10(norm[0]) - np.log10(norm[upto][-1]))
            if reaches
            else float("nan"),
            "log10_decay_from_peak": float(np.log10(norm[peak]) - np.log10(norm[-1])),
            "loss_slope": loglog_slope(c["fake_loss"].to_numpy()[peak:], norm[peak:]),
            "fake_loss_final": float(c["fake_loss"].iloc[-1]),
            "final_accuracy": float(c["accuracy"].iloc[-1]),
            "final_train_accuracy": float(c["train_accuracy"].iloc[-1]),
        }

    snaps = per_snapshot(curves, summary)
    table = seed_table(
        seeds,
        snaps,
        {
            "log10_decay_largest": ("log10_decay", _at_largest(snaps, "log10_decay")),
            "log10_decay_from_peak_largest": (
                "log10_decay_from_peak",
                _at_largest(snaps, "log10_decay"),
            ),
            "log10_decay_4000_largest": ("log10_decay_4000", _at_largest(snaps, "log10_decay")),
            "fake_loss_final_largest": ("fake_loss_final", _at_largest(snaps, "log10_decay")),
            "log10_decay_earliest": ("log10_decay", _earliest(snaps)),
            "log10_decay_from_peak_earliest": ("log10_decay_from_peak", _earliest(snaps)),
            "fake_loss_final_earliest": ("fake_loss_final", _earliest(snaps)),
            "loss_slope": ("loss_slope", "median"),
            "log10_decay_worst": ("log10_decay", "min"),
            "final_accuracy": ("final_accuracy", "min"),
            "final_train_accuracy": ("final_train_accuracy", "min"),
        },
    )
    return {"seeds": table, "curves": curves, "snapshots": snaps, "setup": setup(params)}


def fig_vanishing(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Fig. 2 of the paper: the original cost's gradient norm against D iterations (log y)."""
    fig, ax = wide_figure(width=6.0, height=4.0)
    norm_panel(
        ax,
        tables["curves"],
        "grad_norm_minimax",
        r"$\|\nabla_\theta\, \mathbb{E}_z \log(1 - D(G_\theta(z)))\|$",
        f"original cost: gradient norm ({data_title(params)})",
    )
    return fig


def fig_norm_vs_loss(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Thm 2.4's mechanism: gradient norm against D's held-out loss on fakes (log-log)."""
    fig, ax = wide_figure(width=6.0, height=4.0)
    curves = tables["curves"]
    curves = curves[curves["d_index"] == 0]
    for i, (ep, c) in enumerate(curves.groupby("epochs")):
        st = series_style(i)
        for j, (_, cs) in enumerate(c.groupby("seed")):
            cs = cs.sort_values("iteration")
            ax.plot(
                cs["fake_loss"],
                cs["grad_norm_minimax"],
                color=st["color"],
                ls=st["ls"],
                lw=0.8,
                alpha=0.7,
                label=epoch_label(ep) if j == 0 else None,
            )
    lo, hi = curves["fake_loss"].min(), curves["fake_loss"].max()
    ref_y = curves["grad_norm_minimax"].median()
    ref_x = curves["fake_loss"].median()
    xs = np.geomspace(lo, hi, 10)
    ax.plot(xs, ref_y * xs / ref_x, color="k", ls="--", lw=0.8, label="slope 1")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"held-out loss on fakes $-\mathbb{E}_z \log(1 - D(G(z)))$",
        ylabel=r"$\|\nabla_\theta\, \mathbb{E}_z \log(1 - D(G_\theta(z)))\|$",
        title=f"gradient norm against D's error ({data_title(params)})",
    )
    ax.legend(fontsize=8)
    return fig


EXPERIMENT = Experiment(
    run=run_vanishing,
    params=PROTOCOL_PARAMS,
    metrics=(
        "log10_decay_largest",
        "log10_decay_from_peak_largest",
        "log10_decay_4000_largest",
        "fake_loss_final_largest",
        "log10_decay_earliest",
        "log10_decay_from_peak_earliest",
        "loss_slope",
        "fake_loss_final_earliest",
        "log10_decay_worst",
        "final_accuracy",
        "final_train_accuracy",
    ),
    figures={"grad_norm": fig_vanishing, "norm_vs_loss": fig_norm_vs_loss},
    positive_metrics=("fake_loss_final_largest", "fake_loss_final_earliest"),
    doc="Arjovsky & Bottou 2017, Fig. 2 / Thm 2.4: the original G cost's gradient vanishes.",
)
