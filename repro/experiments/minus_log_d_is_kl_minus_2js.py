"""minus-log-d-is-kl-minus-2js: Arjovsky & Bottou 2017, Thm 2.5, tested on 1-D Gaussians.

For P_r = N(m_r, s_r^2) and P_g(theta) = N(mean, exp(log_std)^2), theta = (mean, log_std), with
D* = p_r / (p_r + p_g0) frozen at theta0,

    E_z[-grad_theta log D*(g_theta(z))] = grad_theta [KL(P_g || P_r) - 2 JSD(P_g, P_r)]  at theta0

g_theta(z) = mean + exp(log_std) z, z ~ N(0, 1). The left side is computed by quadrature over z
(autograd through the reparametrisation) and by Monte Carlo; the right side by central finite
differences of quadrature divergences (``repro.divergences``) on a fixed x grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from repro import divergences
from repro.engine import Stream
from repro.experiments import Experiment, Tables
from repro.plots import figure

LOG_2PI = math.log(2 * math.pi)

# --------------------------------------------------------------------------------------------
# Thm 2.5: -log D* gradient = grad [KL(P_g || P_r) - 2 JSD(P_g, P_r)]
# --------------------------------------------------------------------------------------------


def gaussian_logpdf(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, exp(log_std)^2) = -(x - mean)^2 / (2 std^2) - log std - log(2 pi) / 2."""
    return -0.5 * ((x - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * LOG_2PI


def log_d_star(x: torch.Tensor, real: torch.Tensor, gen0: torch.Tensor) -> torch.Tensor:
    """log D*(x) for D* = p_r / (p_r + p_g0) (Goodfellow 2014, Prop. 1), in logit form.

    log D*(x) = logsigmoid(log p_r(x) - log p_g0(x)); ``real`` and ``gen0`` are (mean, log_std).
    """
    return F.logsigmoid(gaussian_logpdf(x, *real) - gaussian_logpdf(x, *gen0))


def kl_and_2js(gen: tuple[float, float], real: tuple[float, float], x: np.ndarray) -> np.ndarray:
    """(KL(P_g || P_r), 2 JSD(P_g, P_r)) for Gaussians given as (mean, std), by quadrature on ``x``.

    JSD = KL(P||M)/2 + KL(Q||M)/2, M = (P + Q)/2, the convention of Goodfellow 2014 (Thm 1) and
    Arjovsky & Bottou 2017 (Thm 2.5); both from ``repro.divergences`` (trapezoid rule).
    """
    p_g, p_r = divergences.gaussian_pdf(x, *gen), divergences.gaussian_pdf(x, *real)
    return np.array([divergences.kl(p_g, p_r, x), 2.0 * divergences.js(p_g, p_r, x)])


def minus_log_d_grad_quadrature(
    theta0: torch.Tensor, real: torch.Tensor, z: torch.Tensor
) -> torch.Tensor:
    """Left side of Thm 2.5 by quadrature over z on the uniform grid ``z``.

    E_z[-grad_theta log D*(mean + exp(log_std) z)] at theta = theta0, D* frozen at theta0; the
    expectation is int phi(z) (...) dz by the trapezoid rule. Returns (2,) = (d/dmean, d/dlog_std).
    """
    theta = theta0.detach().clone().requires_grad_(True)
    x = theta[0] + torch.exp(theta[1]) * z
    weights = torch.exp(-0.5 * z**2 - 0.5 * LOG_2PI)
    value = torch.trapezoid(-weights * log_d_star(x, real, theta0.detach()), z)
    return torch.autograd.grad(value, theta)[0]


def minus_log_d_grad_samples(
    theta0: torch.Tensor, real: torch.Tensor, z: torch.Tensor
) -> torch.Tensor:
    """Per-sample -grad_theta log D*(g_theta(z_i)) at theta0 for samples ``z`` (N,) -> (N, 2).

    Closed form of the chain rule: with x = mean + std z and h(x) = d/dx log D*(x),
    d/dmean = -h(x), d/dlog_std = -h(x) std z. h comes from autograd in x.
    """
    std = torch.exp(theta0[1])
    x = (theta0[0] + std * z).detach().requires_grad_(True)
    h = torch.autograd.grad(log_d_star(x, real, theta0).sum(), x)[0]
    return torch.stack([-h, -h * std * z], dim=-1)


def divergence_grad_fd(
    theta0: tuple[float, float], real: tuple[float, float], x: np.ndarray, step: float
) -> np.ndarray:
    """Central finite differences of (KL(P_g||P_r), 2 JSD(P_g, P_r)) in theta = (mean, log_std).

    ``theta0`` = (mean, log_std), ``real`` = (mean, std). Returns (2 terms, 2 coordinates); the
    right side of Thm 2.5 is row 0 minus row 1. The grid ``x`` stays fixed while theta moves, so
    quadrature error does not leak into the slope.
    """
    cols = []
    for k in range(2):
        e = np.eye(2)[k] * step
        (mp, lp), (mm, lm) = theta0 + e, theta0 - e
        plus = kl_and_2js((mp, math.exp(lp)), real, x)
        minus = kl_and_2js((mm, math.exp(lm)), real, x)
        cols.append((plus - minus) / (2 * step))
    return np.stack(cols, axis=-1)


def _theta0_grid(params: Mapping[str, Any]) -> list[tuple[float, float]]:
    """Every (mean, std) pair of the generator at which the identity is tested."""
    return [(float(m), float(s)) for s in params["gen_stds"] for m in params["gen_means"]]


# phi(12) ~ 1e-32: the z grid truncation is far below float64 resolution of the integrals.
Z_MAX = 12.0
COORDS = ("mean", "log_std")


def _grids(params: Mapping[str, Any]) -> tuple[tuple[float, float], np.ndarray, torch.Tensor]:
    """(real as (mean, std), x grid for the divergences, z grid for the expectation), float64."""
    real = (float(params["real_mean"]), float(params["real_std"]))
    half = float(params["x_halfwidth"])
    x = np.linspace(-half, half, int(params["x_points"])) + real[0]
    z = torch.linspace(-Z_MAX, Z_MAX, int(params["z_points"]), dtype=torch.float64)
    return real, x, z


def _real_theta(real: tuple[float, float]) -> torch.Tensor:
    return torch.tensor([real[0], math.log(real[1])], dtype=torch.float64)


def _quadrature_rows(params: Mapping[str, Any]) -> pd.DataFrame:
    """Both sides of Thm 2.5 at every theta0, one row per (theta0, coordinate)."""
    real, x, z = _grids(params)
    rows = []
    for mean, std in _theta0_grid(params):
        theta0 = np.array([mean, math.log(std)])
        lhs = minus_log_d_grad_quadrature(torch.from_numpy(theta0), _real_theta(real), z).numpy()
        terms = divergence_grad_fd(theta0, real, x, float(params["fd_step"]))  # (2 terms, 2)
        rhs = terms[0] - terms[1]
        rel = float(np.linalg.norm(lhs - rhs) / np.linalg.norm(rhs))
        jsd_share = float(np.linalg.norm(terms[1]) / np.linalg.norm(rhs))
        for k, coord in enumerate(COORDS):
            rows.append(
                {
                    "gen_mean": mean,
                    "gen_std": std,
                    "coord": coord,
                    "lhs_quad": float(lhs[k]),
                    "rhs_fd": float(rhs[k]),
                    "grad_kl": float(terms[0, k]),
                    "grad_2js": float(terms[1, k]),
                    "rel_err": rel,
                    "jsd_share": jsd_share,
                }
            )
    return pd.DataFrame(rows)


def _monte_carlo_rows(params: Mapping[str, Any], seed: int, quad: pd.DataFrame) -> pd.DataFrame:
    """Left side of Thm 2.5 by Monte Carlo (one random stream per seed), with its z-score vs the
    FD. On the CPU like the quadrature; stream id 0, the one the plain ``manual_seed(seed)``
    generator it replaces drew from (this experiment has no networks)."""
    real = _real_theta(_grids(params)[0])
    gen = Stream([int(seed)], 0, "cpu")  # one copy: row 0 of each draw
    n = int(params["mc_samples"])
    rows = []
    for mean, std in _theta0_grid(params):
        theta0 = torch.tensor([mean, math.log(std)], dtype=torch.float64)
        (z,) = gen.normal(n, dtype=torch.float64)
        per_sample = minus_log_d_grad_samples(theta0, real, z)  # (N, 2)
        est, est_std = per_sample.mean(0), per_sample.std(0) / math.sqrt(n)
        for k, coord in enumerate(COORDS):
            rows.append(
                {
                    "seed": int(seed),
                    "gen_mean": mean,
                    "gen_std": std,
                    "coord": coord,
                    "lhs_mc": float(est[k]),
                    "lhs_mc_std": float(est_std[k]),
                }
            )
    mc = pd.DataFrame(rows).merge(quad[["gen_mean", "gen_std", "coord", "rhs_fd"]])
    mc["z_score"] = (mc["lhs_mc"] - mc["rhs_fd"]) / mc["lhs_mc_std"]
    return mc


def _curve_rows(params: Mapping[str, Any]) -> pd.DataFrame:
    """The right side on a dense line of means, per generator std, for the figure."""
    real, x, _ = _grids(params)
    means = np.linspace(min(params["gen_means"]), max(params["gen_means"]), params["curve_points"])
    rows = []
    for std in params["gen_stds"]:
        for mean in means:
            theta0 = np.array([mean, math.log(std)])
            terms = divergence_grad_fd(theta0, real, x, float(params["fd_step"]))
            for k, coord in enumerate(COORDS):
                rows.append(
                    {
                        "gen_mean": float(mean),
                        "gen_std": float(std),
                        "coord": coord,
                        "rhs_fd": float(terms[0, k] - terms[1, k]),
                        "grad_kl": float(terms[0, k]),
                    }
                )
    return pd.DataFrame(rows)


def run_kl_minus_2js(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """Thm 2.5 at every theta0: quadrature and Monte-Carlo left sides vs finite-difference right.

    Quadrature is seed-free (float64 on CPU: 1-D integrals gain nothing from a GPU); seeds drive
    the Monte-Carlo estimate only. Metrics per seed: ``quad_max_rel_err`` (max over theta0 of
    ||lhs - rhs|| / ||rhs||), ``mc_max_abs_z`` (max |z-score| of the MC estimate against the right
    side), ``jsd_share_min`` (min over theta0 of ||grad 2 JSD|| / ||rhs||: how visible the JSD
    term is, i.e. how far from the truth an identity without it would be).
    """
    quad = _quadrature_rows(params)
    mc = pd.concat([_monte_carlo_rows(params, s, quad) for s in seeds], ignore_index=True)
    per_seed = mc.groupby("seed")["z_score"].apply(lambda v: float(np.abs(v).max()))
    table = pd.DataFrame(
        {
            "seed": [int(s) for s in seeds],
            "quad_max_rel_err": float(quad["rel_err"].max()),
            "mc_max_abs_z": [per_seed[int(s)] for s in seeds],
            "jsd_share_min": float(quad["jsd_share"].min()),
        }
    )
    return {"seeds": table, "quadrature": quad, "monte_carlo": mc, "curve": _curve_rows(params)}


def fig_kl_minus_2js(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Both sides of Thm 2.5 against the generator mean, one panel per coordinate, + errors."""
    fig, axes = figure(3, width=3.8)
    curve, quad, mc = tables["curve"], tables["quadrature"], tables["monte_carlo"]
    mc_mean = mc.groupby(["gen_mean", "gen_std", "coord"], as_index=False)[["lhs_mc"]].mean()
    for ax, coord in zip(axes[:2], COORDS, strict=True):
        for i, (std, c) in enumerate(curve[curve.coord == coord].groupby("gen_std")):
            color, first = f"C{i}", i == 0  # colour = generator std; styles labelled once
            q = quad[(quad.coord == coord) & (quad.gen_std == std)]
            m = mc_mean[(mc_mean.coord == coord) & (mc_mean.gen_std == std)]
            ax.plot(c.gen_mean, c.rhs_fd, color=color, label=f"std_g={std:g}: FD grad(KL - 2 JSD)")
            ax.plot(
                c.gen_mean,
                c.grad_kl,
                color=color,
                ls=":",
                lw=1,
                label="FD grad KL alone" if first else None,
            )
            ax.plot(
                q.gen_mean,
                q.lhs_quad,
                "o",
                color=color,
                mfc="none",
                label="E[-grad log D*], quadrature" if first else None,
            )
            ax.plot(
                m.gen_mean,
                m.lhs_mc,
                "x",
                color=color,
                label="E[-grad log D*], Monte Carlo" if first else None,
            )
        ax.set(
            xlabel="generator mean at theta0", ylabel=f"d/d {coord}", title=f"gradient in {coord}"
        )
    axes[0].legend(loc="best", fontsize=6)
    q = quad.drop_duplicates(["gen_mean", "gen_std"])
    for i, (std, c) in enumerate(q.groupby("gen_std")):
        axes[2].semilogy(c.gen_mean, c.rel_err, "o-", color=f"C{i}", label=f"std_g={std:g}")
    axes[2].set(
        xlabel="generator mean at theta0",
        ylabel="||quad - FD|| / ||FD||",
        title=f"relative error (real N({params['real_mean']:g}, {params['real_std']:g}^2))",
    )
    axes[2].legend()
    return fig


EXPERIMENT = Experiment(
    run=run_kl_minus_2js,
    params=(
        "real_mean",
        "real_std",
        "gen_means",
        "gen_stds",
        "x_halfwidth",
        "x_points",
        "z_points",
        "fd_step",
        "mc_samples",
        "curve_points",
    ),
    metrics=("quad_max_rel_err", "mc_max_abs_z", "jsd_share_min"),
    figures={"identity": fig_kl_minus_2js},
    doc="Arjovsky & Bottou 2017 Thm 2.5: E[-grad log D*] = grad [KL(P_g||P_r) - 2 JSD].",
)
