"""fgan-gaussian-fit: f-GAN Section 4, one Gaussian fitted to a 1-D mixture under five divergences.

For each divergence of ``FIT_DIVERGENCES`` the exact best fit theta* and the f-GAN-trained fit
theta-hat (``repro.experiments.family.fdiv_fit``) are compared, and the five trained models are
cross-evaluated under every divergence (each row's minimum should lie on the diagonal).

References: Nowozin, Cseke & Tomioka 2016, f-GAN, Sec. 4, Table 2 (g_f) and Table 3.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from repro import divergences as dv
from repro import plots
from repro.experiments import Experiment, Tables, check_names
from repro.experiments.family.fdiv_fit import (
    FIT_DIVERGENCES,
    GRID,
    MIXTURES,
    TRAINING_PARAMS,
    cross_matrix,
    exact_table,
    grad_ratio,
    initial_thetas,
    learned_thetas,
    train_fits,
)
from repro.invariants import require


def run_gaussian_fit(params: Mapping[str, Any], seeds: list[int], device) -> Tables:
    """Exact and trained fits for every divergence; tables ``seeds``, ``fits``, ``cross``,
    ``exact``, ``trajectory``, ``density``.

    Per seed: ``mean_error_<f>`` / ``std_error_<f>`` = |theta-hat - theta*| per divergence (and
    their max over divergences), ``cross_diagonal_frac`` (rows of the learned models' exact
    cross-evaluation whose minimum is on the diagonal) and ``grad_ratio_<f>`` = the exact
    divergence's gradient norm at theta-hat over that at the seed's start, with
    ``grad_ratio_max`` its worst divergence (the premise that training converged)."""
    names = check_names(params["divergences"], dv.F_DIVERGENCES, "divergence")
    mix = MIXTURES[check_names([params["mixture"]], MIXTURES, "mixture")[0]]
    x = np.linspace(*GRID, int(params["grid_points"]))
    exact = exact_table(mix, names, x)
    star = {r.divergence: (r.mean, r.std) for r in exact.itertuples()}
    cross_star = cross_matrix(mix, x, star, names)
    # by construction theta*_i minimises D_i, so the exact matrix's diagonal is each row's
    # minimum: an invariant of the optimiser (it fails only if Nelder-Mead stopped early)
    require(
        bool(np.all(np.diag(cross_star) <= cross_star.min(axis=1) + 1e-9)),
        f"exact fits: diagonal {np.diag(cross_star)} is not each row's minimum {cross_star.min(1)}",
    )
    gen, trajectory = train_fits(params, mix, names, seeds, device)
    mean_hat, std_hat = learned_thetas(gen, len(names), len(seeds))
    mean0, std0 = (v.numpy() for v in initial_thetas(params, seeds))
    fits, cross, per_seed = [], [], []
    for j, seed in enumerate(seeds):
        hat = {n: (float(mean_hat[i, j]), float(std_hat[i, j])) for i, n in enumerate(names)}
        m = cross_matrix(mix, x, hat, names)
        hits = m.argmin(axis=1) == np.arange(len(names))
        row = {"seed": int(seed)}
        for i, n in enumerate(names):
            mu_err, std_err = abs(hat[n][0] - star[n][0]), abs(hat[n][1] - star[n][1])
            row[f"mean_error_{n}"], row[f"std_error_{n}"] = mu_err, std_err
            row[f"grad_ratio_{n}"] = grad_ratio(n, mix, x, hat[n], (mean0[j], std0[j]))
            fits.append(
                {
                    "seed": int(seed),
                    "divergence": n,
                    "mean_hat": hat[n][0],
                    "std_hat": hat[n][1],
                    "mean_star": star[n][0],
                    "std_star": star[n][1],
                    "mean_error": mu_err,
                    "std_error": std_err,
                    "value_hat": m[i, i],
                    "value_star": cross_star[i, i],
                }
            )
            for k, model in enumerate(names):
                cross.append(
                    {"seed": int(seed), "evaluated": n, "trained": model, "value": m[i, k]}
                )
        for n in FIT_DIVERGENCES:  # a divergence left out of this run: NaN, not absent
            row.setdefault(f"mean_error_{n}", math.nan)
            row.setdefault(f"std_error_{n}", math.nan)
            row.setdefault(f"grad_ratio_{n}", math.nan)
        row["mean_error_max"] = max(row[f"mean_error_{n}"] for n in names)
        row["std_error_max"] = max(row[f"std_error_{n}"] for n in names)
        # the premise: every divergence's fit reached a stationary point of that divergence
        row["grad_ratio_max"] = max(row[f"grad_ratio_{n}"] for n in names)
        row["cross_diagonal_frac"] = float(hits.mean())
        per_seed.append(row)
    density = pd.DataFrame({"x": x, "p": dv.mixture_pdf(x, *mix)})
    return {
        "seeds": pd.DataFrame(per_seed),
        "fits": pd.DataFrame(fits),
        "cross": pd.DataFrame(cross),
        "exact": exact,
        "trajectory": trajectory,
        "density": density[(density.x >= -8) & (density.x <= 8)].reset_index(drop=True),
    }


def fig_gaussian_fit(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Left: P and each divergence's exact (solid) and learned (dashed, seed 0) Gaussian.
    Right: the cross-evaluation matrix of the learned models (mean over seeds), row-normalised."""
    fits, cross, dens = tables["fits"], tables["cross"], tables["density"]
    names = list(dict.fromkeys(fits["divergence"]))
    fig, (ax_d, ax_m) = plots.figure(2, width=4.6, height=3.6)
    x = dens["x"].to_numpy()
    ax_d.fill_between(x, 0, dens["p"], color="0.8", label=r"$P$ (mixture)")
    first = fits[fits["seed"] == fits["seed"].min()]
    for i, r in enumerate(first.itertuples()):
        ax_d.plot(
            x,
            dv.gaussian_pdf(x, r.mean_star, r.std_star),
            color=f"C{i}",
            lw=1.3,
            label=f"{r.divergence}",
        )
        ax_d.plot(x, dv.gaussian_pdf(x, r.mean_hat, r.std_hat), color=f"C{i}", lw=1.3, ls="--")
    ax_d.set(
        title=r"$Q_{\theta^*}$ (solid) and $Q_{\hat\theta}$ (dashed, one seed)",
        xlabel="x",
        ylabel="density",
    )
    ax_d.legend(fontsize=7)
    mean = cross.groupby(["evaluated", "trained"])["value"].mean().unstack().loc[names, names]
    rel = mean.to_numpy() / mean.to_numpy().min(axis=1, keepdims=True)
    im = ax_m.imshow(np.log10(rel), cmap="viridis")
    for i in range(len(names)):
        for j in range(len(names)):
            ax_m.text(
                j,
                i,
                f"{mean.iloc[i, j]:.3g}",
                ha="center",
                va="center",
                fontsize=6,
                # light text on viridis' dark (low) end, dark text on its light end
                color="w" if np.log10(rel[i, j]) < 0.5 * np.log10(rel.max()) else "k",
            )
    ax_m.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=7)
    ax_m.set_yticks(range(len(names)), names, fontsize=7)
    ax_m.grid(False)
    ax_m.set(
        title=r"$D_{row}(P\|Q_{\hat\theta_{col}})$, mean over seeds",
        xlabel="model trained on",
        ylabel="divergence evaluated",
    )
    fig.colorbar(im, ax=ax_m, label=r"$\log_{10}$ (value / row minimum)")
    return fig


EXPERIMENT = Experiment(
    run=run_gaussian_fit,
    params=("mixture", "divergences", *TRAINING_PARAMS),
    metrics=(
        "mean_error_max",
        "std_error_max",
        "cross_diagonal_frac",
        "grad_ratio_max",
        *[f"{k}_{n}" for n in FIT_DIVERGENCES for k in ("mean_error", "std_error", "grad_ratio")],
    ),
    figures={"gaussian_fits": fig_gaussian_fit},
    doc=__doc__ or "",
)
