"""noise-bound (Arjovsky & Bottou 2017, Lemma 4, Thm 3.3).

W(P_X, P_{X+eps}) <= V^(1/2) and
W(P_r, P_g) <= 2 V^(1/2) + 2 C sqrt(JSD(P_{r+eps} || P_{g+eps})), V = E||eps||^2, C the diameter
of a ball holding both noisy supports. Gaussian noise has unbounded support (C = inf), so the
noise here is Gaussian truncated per coordinate at +-k s (the hypothesis holds exactly).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import special, stats

from repro import divergences as dv
from repro import plots
from repro.engine import Stream
from repro.experiments import Experiment, Tables
from repro.experiments.family.noise import half_circle, js_2d
from repro.invariants import require
from repro.metrics import w1_pool


def _lines_r(u: np.ndarray, theta: float) -> np.ndarray:
    return np.stack([np.zeros_like(u), u], axis=-1)


def _lines_g(u: np.ndarray, theta: float) -> np.ndarray:
    return np.stack([np.full_like(u, theta), u], axis=-1)


def _arc_g(u: np.ndarray, theta: float) -> np.ndarray:
    return np.stack([2.0 * u - 1.0, np.full_like(u, -0.25)], axis=-1)  # segment below the arc


# pair name -> (P_r curve, P_g curve), each u in [0, 1] -> points (..., 2), u ~ U[0, 1]
PAIRS: dict[str, tuple[Callable, Callable]] = {
    "lines": (_lines_r, _lines_g),
    "arc": (lambda u, theta: half_circle(u), _arc_g),
}


def truncated_noise_var(noise_std: float, trunc_stds: float) -> float:
    """V = E||eps||^2 in 2-D for eps with independent N(0, s^2) coordinates truncated at +-k s.

    Per coordinate Var = s^2 (1 - 2 k phi(k) / (2 Phi(k) - 1)); V is twice that.
    """
    k = trunc_stds
    mass = 2.0 * special.ndtr(k) - 1.0
    return 2.0 * noise_std**2 * (1.0 - 2.0 * k * stats.norm.pdf(k) / mass)


def truncated_noise(
    shape: tuple[int, ...], noise_std: float, trunc_stds: float, gens: Stream
) -> np.ndarray:
    """Samples of N(0, s^2) truncated to [-k s, k s] by the inverse CDF, (C, *shape) for the C
    copies of ``gens`` (a CPU stream: the numbers go to numpy)."""
    u = gens.uniform(*shape, dtype=torch.float64).numpy()
    lo = special.ndtr(-trunc_stds)
    return noise_std * special.ndtri(lo + u * (1.0 - 2.0 * lo))


def truncated_kernel(t: np.ndarray, noise_std: float, trunc_stds: float) -> np.ndarray:
    """Density of the truncated N(0, s^2) on [-k s, k s] at t (0 outside)."""
    mass = 2.0 * special.ndtr(trunc_stds) - 1.0
    inside = np.abs(t) <= trunc_stds * noise_std
    return np.where(inside, dv.gaussian_pdf(t, 0.0, noise_std) / mass, 0.0)


def pair_samples(pair: str, theta: float, n: int, gens: Stream) -> tuple[np.ndarray, ...]:
    """n clean samples of P_r and of P_g of ``pair`` per copy of the CPU stream ``gens``
    (u ~ U[0, 1]): two (C, n, 2)."""
    r, g = PAIRS[pair]
    u = gens.uniform(2, n, dtype=torch.float64).numpy()  # (C, 2, n)
    return r(u[:, 0], theta), g(u[:, 1], theta)


def noisy_pair_densities(
    pair: str, theta: float, noise_std: float, trunc_stds: float, n_grid: int, n_curve: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Densities of P_r + eps and P_g + eps on a 2-D grid: (p, q, x1, x2).

    The kernel is a product over coordinates, so p(x) = (1/M) sum_m psi(x1 - c1_m) psi(x2 - c2_m)
    over M midpoints c_m of the curve: one matrix product A B^T / M per density, renormalised to
    integrate to 1 on the grid.
    """
    r, g = PAIRS[pair]
    u = (np.arange(n_curve) + 0.5) / n_curve
    cr, cg = r(u, theta), g(u, theta)
    pts = np.concatenate([cr, cg])
    pad = trunc_stds * noise_std * 1.02
    x1 = np.linspace(pts[:, 0].min() - pad, pts[:, 0].max() + pad, n_grid)
    x2 = np.linspace(pts[:, 1].min() - pad, pts[:, 1].max() + pad, n_grid)

    def density(c: np.ndarray) -> np.ndarray:
        a = truncated_kernel(x1[:, None] - c[None, :, 0], noise_std, trunc_stds)  # (n1, M)
        b = truncated_kernel(x2[:, None] - c[None, :, 1], noise_std, trunc_stds)  # (n2, M)
        dens = a @ b.T  # (n1, n2)
        # renormalise on the grid: the kernel's jumps at +-k s cost the trapezoid rule O(h) mass
        return dens / np.trapezoid(np.trapezoid(dens, x2, axis=1), x1)

    return density(cr), density(cg), x1, x2


def support_diameter(pair: str, theta: float, noise_std: float, trunc_stds: float) -> float:
    """C: diameter of a ball holding both noisy supports (Thm 3.3's hypothesis).

    Ball centred at the middle of the clean curves' bounding box, radius the farthest clean point
    plus the half-diagonal k s sqrt(2) of the noise box.
    """
    r, g = PAIRS[pair]
    u = np.linspace(0.0, 1.0, 2001)
    pts = np.concatenate([r(u, theta), g(u, theta)])
    centre = 0.5 * (pts.min(0) + pts.max(0))
    radius = np.linalg.norm(pts - centre, axis=1).max() + trunc_stds * noise_std * math.sqrt(2)
    return float(2.0 * radius)


# POT's W1 between two samples of one law (the "floor") is its sampling error; Lemma 4's margin
# (V^(1/2) - E||eps|| ~ 0.16 s for Gaussian noise) is only resolved where the floor is well below.
RESOLVED_FLOOR = 0.5


def require_thm33(per: pd.DataFrame) -> None:
    """Invariant: W1(P_r, P_g) <= 2 V^(1/2) + 2 C sqrt(JSD(P_r+eps || P_g+eps)) (Thm 3.3) in every
    row (pair, noise std, seed) of ``per`` (columns bound_ratio = W1 / bound, pair, noise_std,
    seed). It holds with a slack of ~4x on these pairs (noise-bound.yaml, revision 2026-12-06):
    a sanity check of the computation (W1, V, C, JSD), not evidence that could fail."""
    worst = per.loc[per["bound_ratio"].idxmax()]
    require(
        bool((per["bound_ratio"] <= 1.0).all()),
        f"Thm 3.3 violated: W1 / bound = {worst['bound_ratio']:.4g} "
        f"({worst['pair']}, noise std {worst['noise_std']:g}, seed {worst['seed']})",
    )


def run_bound(params: Mapping[str, Any], seeds: list[int], device) -> Tables:
    """Per (pair, noise std, seed): W1 by POT, V, C, JSD by quadrature, both bounds and slacks."""
    theta, k = float(params["lines_theta"]), float(params["trunc_stds"])
    n_w = int(params["n_w1"])
    exact = []
    for pair in params["pairs"]:
        for std in map(float, params["noise_stds"]):
            p, q, x1, x2 = noisy_pair_densities(
                pair, theta, std, k, int(params["n_quad"]), int(params["n_curve"])
            )
            jsd = js_2d(p, q, x1, x2)
            require(-1e-9 <= jsd <= dv.LOG2 + 1e-9, f"JSD {jsd} outside [0, log 2] ({pair}, {std})")
            var = truncated_noise_var(std, k)
            diam = support_diameter(pair, theta, std, k)
            exact.append(
                {
                    "pair": pair,
                    "noise_std": std,
                    "jsd": jsd,
                    "V": var,
                    "C": diam,
                    "noise_term": 2.0 * math.sqrt(var),
                    "js_term": 2.0 * diam * math.sqrt(max(jsd, 0.0)),
                    "bound": 2.0 * math.sqrt(var) + 2.0 * diam * math.sqrt(max(jsd, 0.0)),
                }
            )
    exact = pd.DataFrame(exact)
    # the point sets are drawn first (the same draws in the same order as solving them one by
    # one), then every exact W1 is solved at once through ``repro.metrics.w1_pool``. The points
    # go to POT on the host, so they are drawn on the CPU: one stream copy per seed (row 0).
    rows, pairs, checks = [], [], []
    for seed in seeds:
        gen = Stream([seed], "eval", "cpu")
        for pair in params["pairs"]:
            (xr,), (xg,) = pair_samples(pair, theta, n_w, gen)
            clean = len(pairs)
            pairs.append((xr, xg))
            (xr2,), _ = pair_samples(pair, theta, n_w, gen)  # an independent sample of P_r
            for std in map(float, params["noise_stds"]):
                (eps,) = truncated_noise((n_w, 2), std, k, gen)
                (eps2,) = truncated_noise((n_w, 2), std, k, gen)
                paired = float(np.linalg.norm(eps, axis=1).mean())  # coupling x -> x + eps
                i = len(pairs)
                pairs += [
                    (xr, xr2 + eps),
                    (xr2 + eps, xr + eps2),  # same law: the estimator's floor
                    (xr2, xr2 + eps),
                ]
                checks.append((i + 2, paired, math.sqrt(float((eps**2).sum(1).mean())), pair, std))
                rows.append(
                    {
                        "seed": int(seed),
                        "pair": pair,
                        "noise_std": std,
                        "w1_clean": clean,
                        "w1_lemma": i,
                        "w1_floor": i + 1,
                    }
                )
    w1 = w1_pool(pairs)
    for j, paired, rms, pair, std in checks:
        require(
            w1[j] <= paired + 1e-9 and paired <= rms + 1e-12,
            f"paired coupling: W1 above mean ||eps|| ({pair}, {std})",
        )
    for row in rows:  # indices into ``pairs`` -> the solved W1
        for col in ("w1_clean", "w1_lemma", "w1_floor"):
            row[col] = w1[row[col]]
    per = pd.DataFrame(rows).merge(exact, on=["pair", "noise_std"])
    per["sqrt_V"] = np.sqrt(per["V"])
    per["bound_slack"] = per["bound"] - per["w1_clean"]
    per["bound_ratio"] = per["w1_clean"] / per["bound"]
    per["lemma_slack"] = per["sqrt_V"] - per["w1_lemma"]
    per["lemma_ratio"] = per["w1_lemma"] / per["sqrt_V"]
    per["resolved"] = per["w1_floor"] <= RESOLVED_FLOOR * per["sqrt_V"]
    require_thm33(per)
    seeds_rows = []
    for seed, g in per.groupby("seed"):
        lines = g[g["pair"] == "lines"]
        seeds_rows.append(
            {
                "seed": int(seed),
                "thm33_ratio_max": float(g["bound_ratio"].max()),
                "thm33_slack_min": float(g["bound_slack"].min()),
                # Lemma 4 is judged where POT resolves it: floor at most half of V^(1/2)
                "lemma4_ratio_max": float(g["lemma_ratio"][g["resolved"]].max()),
                "lemma4_resolved_frac": float(g["resolved"].mean()),
                "lemma4_floor_ratio_max": float((g["w1_floor"] / g["sqrt_V"]).max()),
                "w1_lines_abs_err": float((lines["w1_clean"] - theta).abs().max())
                if len(lines)
                else np.nan,
            }
        )
    return {"seeds": pd.DataFrame(seeds_rows), "per_std": per, "exact": exact}


def fig_bound(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Per pair: W1 of the clean pair against Thm 3.3's bound and its two terms; Lemma 4 below."""
    per = tables["per_std"]
    pairs = list(dict.fromkeys(per["pair"]))
    fig, axes = plots.figure(len(pairs), nrows=2, width=4.0, height=3.0, squeeze=False)
    for j, pair in enumerate(pairs):
        g = per[per["pair"] == pair]
        ax = axes[0, j]
        plots.mean_band(
            ax,
            g,
            "noise_std",
            "w1_clean",
            color="k",
            marker="o",
            ms=3,
            label=r"$W(P_r,P_g)$ (POT, clean)",
        )
        plots.mean_band(
            ax,
            g,
            "noise_std",
            "bound",
            color="C3",
            marker="s",
            ms=3,
            label=r"$2V^{1/2}+2C\sqrt{\mathrm{JSD}}$",
        )
        plots.mean_band(ax, g, "noise_std", "noise_term", color="C0", ls="--", label=r"$2V^{1/2}$")
        plots.mean_band(
            ax,
            g,
            "noise_std",
            "js_term",
            color="C2",
            ls=":",
            label=r"$2C\sqrt{\mathrm{JSD}(P_{r+\epsilon}\|P_{g+\epsilon})}$",
        )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel=r"noise std $\sigma$",
            ylabel="distance units",
            title=f"Thm 3.3 bound, pair: {pair}",
        )
        ax.legend(fontsize=7)
        ax = axes[1, j]
        plots.mean_band(
            ax,
            g,
            "noise_std",
            "w1_lemma",
            color="k",
            marker="o",
            ms=3,
            label=r"$W(P_X,P_{X+\epsilon})$ (POT)",
        )
        plots.mean_band(ax, g, "noise_std", "sqrt_V", color="C3", label=r"$V^{1/2}$")
        plots.mean_band(
            ax, g, "noise_std", "w1_floor", color="0.5", ls=":", label="POT floor (same law)"
        )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel=r"noise std $\sigma$",
            ylabel="distance units",
            title=f"Lemma 4, pair: {pair} ($P_X=P_r$)",
        )
        ax.legend(fontsize=7)
    return fig


EXPERIMENT = Experiment(
    run=run_bound,
    params=("pairs", "lines_theta", "noise_stds", "trunc_stds", "n_w1", "n_quad", "n_curve"),
    metrics=(
        "thm33_ratio_max",
        "thm33_slack_min",
        "lemma4_ratio_max",
        "lemma4_floor_ratio_max",
        "lemma4_resolved_frac",
        "w1_lines_abs_err",
    ),
    figures={"bound": fig_bound},
    doc=__doc__ or "",
)
