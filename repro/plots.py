"""Shared figure helpers: one house style, mean-and-band curves over seeds.

Figure functions live next to their experiment and read result tables only; they return a
``matplotlib.figure.Figure`` and the pipeline saves it (PNG and PDF).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display anywhere: CI, clusters, Snakemake jobs

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from repro.stats import t_interval  # noqa: E402,F401  (re-exported for figure code)

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 160,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2, **kw):
    """A new figure in the house style: ``fig, axes = figure(2)`` (axes squeezed as in plt)."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(width * ncols, height * nrows), layout="constrained", **kw
        )
    return fig, axes


def mean_band(ax, df: pd.DataFrame, x: str, y: str, label: str | None = None, **kw):
    """Plot the mean over seeds of ``y`` against ``x`` with a min-max band across seeds.

    ``df`` holds one row per (seed, x); the band shows the spread of individual seeds, which
    is what a reader compares against the paper's single curves.
    """
    g = df.groupby(x)[y]
    mean, lo, hi = g.mean(), g.min(), g.max()
    (line,) = ax.plot(mean.index, mean.values, label=label, **kw)
    ax.fill_between(mean.index, lo.values, hi.values, color=line.get_color(), alpha=0.2, lw=0)
    return line
