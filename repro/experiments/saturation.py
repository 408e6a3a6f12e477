"""Generator-cost gradients: saturation (Goodfellow 2014, Sec. 3) and Thm 2.5 (A&B 2017).

SATURATION (Goodfellow et al. 2014, Sec. 3): with D's logit l, D = sigmoid(l), the slopes of the
two generator costs are d/dl log(1 - sigmoid(l)) = -sigmoid(l) and d/dl [-log sigmoid(l)] =
-(1 - sigmoid(l)). We train two GANs per seed from the SAME initial G and D on 1-D data far from
G's initial output, one with each generator cost (SGD with momentum, k = 1, as in the paper's
Algorithm 1), and observe, on held-out samples: whether D becomes confident early (the premise),
the gradient norm each G follows, both costs' gradients at the same state, and learning progress
(exact W1 to the data). Both runs of all seeds are one batched model.

KL_MINUS_2JS (Arjovsky & Bottou 2017, Thm 2.5): for 1-D Gaussians P_r = N(m_r, s_r^2) and
P_g(theta) = N(mean, exp(log_std)^2), theta = (mean, log_std), with D* = p_r / (p_r + p_g0) frozen
at theta0,

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

from repro import divergences, losses, metrics
from repro.data import EpochSampler, load_digits_images, sample_normal
from repro.engine import gan, generators, optim
from repro.experiments import Experiment, Tables
from repro.invariants import require
from repro.nets import DCGANDiscriminator, DCGANGenerator
from repro.plots import figure, mean_band

LOG_2PI = math.log(2 * math.pi)

# --------------------------------------------------------------------------------------------
# Goodfellow 2014, Sec. 3: the two generator costs as functions of D's logit l, D = sigmoid(l)
# --------------------------------------------------------------------------------------------


def saturating_logit_grad(logits: torch.Tensor) -> torch.Tensor:
    """d/dl log(1 - sigmoid(l)) = -sigmoid(l) = -D(G(z)): the minimax cost's per-sample slope.

    Goodfellow et al. 2014, Sec. 3: it vanishes as D(G(z)) -> 0, when D rejects fakes confidently.
    """
    return -torch.sigmoid(logits)


def non_saturating_logit_grad(logits: torch.Tensor) -> torch.Tensor:
    """d/dl [-log sigmoid(l)] = -(1 - sigmoid(l)) = -sigmoid(-l): the -log D cost's slope.

    Goodfellow et al. 2014, Sec. 3: it tends to -1 as D(G(z)) -> 0. The ratio of the two slopes
    is sigmoid(l) / sigmoid(-l) = exp(l) = D / (1 - D).
    """
    return -torch.sigmoid(-logits)


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
    """Left side of Thm 2.5 by Monte Carlo (one generator per seed), with its z-score vs the FD."""
    real = _real_theta(_grids(params)[0])
    gen = torch.Generator().manual_seed(int(seed))
    n = int(params["mc_samples"])
    rows = []
    for mean, std in _theta0_grid(params):
        theta0 = torch.tensor([mean, math.log(std)], dtype=torch.float64)
        z = torch.randn(n, generator=gen, dtype=torch.float64)
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


KL_MINUS_2JS = Experiment(
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


# --------------------------------------------------------------------------------------------
# Goodfellow 2014, Sec. 3: minimax vs non-saturating GAN from the same start
# --------------------------------------------------------------------------------------------

OBJECTIVES = ("minimax", "non-saturating")  # copy o * S + s trains seed s with objective o
G_LOSSES = {"minimax": losses.minimax_g_loss, "non-saturating": losses.non_saturating_g_loss}
# per-sample slopes: autograd (float64) vs the closed forms; a few ulps apart by construction
LOGIT_GRAD_TOL = 1e-12


def per_sample_logit_grads(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample slopes of both generator costs wrt D's logit: autograd (float64) and closed form.

    ``logits`` (S, B[, 1]) from D(G(z)). The engine's costs are batch means, so B times the
    autograd gradient is each sample's slope. Returns (S, B) tensors: d_fake = sigmoid(l),
    sat_autograd, sat_closed (= -sigmoid(l)), ns_autograd, ns_closed (= -(1 - sigmoid(l))).
    """
    l64 = logits.detach().double().reshape(logits.shape[0], -1).requires_grad_(True)  # (S, B)
    batch = l64.shape[1]
    out = {"d_fake": torch.sigmoid(l64.detach())}
    for name, cost, closed in (
        ("sat", losses.minimax_g_loss, saturating_logit_grad),
        ("ns", losses.non_saturating_g_loss, non_saturating_logit_grad),
    ):
        (grad,) = torch.autograd.grad(cost(l64).sum(), l64)
        out[f"{name}_autograd"] = grad * batch
        out[f"{name}_closed"] = closed(l64.detach())
    return out


HELD_OUT = 300  # digits never trained on, for W1 to the data (fixed split, permutation seed 0)


def digits_split(held_out: int = HELD_OUT) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 digits split once and for all: (train, held-out) by a fixed permutation."""
    x = load_digits_images()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm[held_out:]], x[perm[:held_out]]


def w1_to_data(fake: torch.Tensor, real: np.ndarray) -> np.ndarray:
    """Exact W1 (pixel space, Euclidean) between each copy's samples and the held-out digits.

    fake (K, n, 1, 8, 8), real (n, 64): ``repro.divergences.w1_samples`` per copy -> (K,).
    """
    flat = fake.detach().double().cpu().reshape(fake.shape[0], fake.shape[1], -1).numpy()
    return np.array([divergences.w1_samples(f, real) for f in flat])


def _evaluate(G, D, params, held_out: torch.Tensor, eval_gens, device) -> dict[str, torch.Tensor]:
    """Held-out numbers for every copy at its current state: held-out digits and fresh z.

    d_fake_median: median D(G(z)); d_accuracy: balanced accuracy of D (held-out digits vs fresh
    fakes); grad_minimax / grad_non_saturating: ||grad_theta_G|| of each cost at this state (same
    G, D and z); w1: exact W1 between G(z) and the held-out digits (pixel space).
    """
    state = {k: v.clone() for k, v in G.state_dict().items()}  # batch norm moves in train mode
    n = len(held_out)
    z = sample_normal(eval_gens, n, int(params["z_dim"]), device=device)
    fake = G(z)  # (K, n, 1, 8, 8), graph kept for the gradient norms
    fake_logits = D(fake)
    g_params = list(G.parameters())
    norms = {
        name: metrics.per_seed_grad_norm(G_LOSSES[name](fake_logits), g_params, retain_graph=True)
        for name in OBJECTIVES
    }
    G.load_state_dict(state)
    with torch.no_grad():
        real = held_out.to(device).unsqueeze(0).expand(fake.shape[0], *held_out.shape)
        out = {
            "d_fake_median": torch.sigmoid(fake_logits.detach()).squeeze(-1).median(dim=1).values,
            "d_accuracy": metrics.d_accuracy(D(real), fake_logits.detach()),
            "grad_minimax": norms["minimax"],
            "grad_non_saturating": norms["non-saturating"],
        }
    # the samples stay on the device; their exact W1 to the held-out digits is solved after
    # training (``train_pair``), off the training loop
    return {**{k: v.detach() for k, v in out.items()}, "fake": fake.detach()}


def _g_loss(d_fake_logits: torch.Tensor, n_seeds: int) -> torch.Tensor:
    """Per-copy generator cost: minimax for copies [0, S), non-saturating for [S, 2S). (2S,)"""
    parts = [
        G_LOSSES[o](d_fake_logits[i * n_seeds : (i + 1) * n_seeds])
        for i, o in enumerate(OBJECTIVES)
    ]
    return torch.cat(parts)


def train_pair(params: Mapping[str, Any], seeds: Sequence[int], device: Any):
    """Train the minimax and the non-saturating GAN of every seed as one batched model.

    Copy o * S + s of G and of D is initialised from seed s (the same weights for both
    objectives) and draws its minibatches and noise from a generator seeded by s alone, so the
    two runs of a seed see the same numbers. Plain SGD with momentum for both players and
    k = 1 D step per G step, as in Goodfellow et al. 2014 (Algorithm 1). Returns curves, G, D.
    """
    p, s = params, len(seeds)
    copy_seeds = [int(x) for _ in OBJECTIVES for x in seeds]
    z_dim = int(p["z_dim"])
    G = DCGANGenerator(copy_seeds, z_dim, int(p["g_channels"]), str(p["g_norm"])).to(device)
    D = DCGANDiscriminator(copy_seeds, int(p["d_channels"])).to(device)
    opt_g = optim.make("sgd-momentum", G.parameters(), float(p["lr_g"]), momentum=p["momentum"])
    opt_d = optim.make("sgd-momentum", D.parameters(), float(p["lr_d"]), momentum=p["momentum"])
    gens = generators(copy_seeds, "data")
    train_digits, held_out = digits_split()
    real_sampler = EpochSampler(train_digits.to(device))
    batch, steps, every = int(p["batch_size"]), int(p["steps"]), int(p["eval_every"])

    def d_loss(step: int, k: int) -> torch.Tensor:
        real = real_sampler(gens, batch, device=device)
        z = sample_normal(gens, batch, z_dim, device=device)
        with torch.no_grad():
            fake = G(z)
        return losses.gan_d_loss(D(real), D(fake))

    def g_loss(step: int) -> torch.Tensor:
        return _g_loss(D(G(sample_normal(gens, batch, z_dim, device=device))), s)

    def evaluate(step: int) -> dict[str, torch.Tensor]:
        # the same evaluation draws at every evaluation and for both runs of a seed
        return _evaluate(G, D, p, held_out, generators(copy_seeds, "eval"), device)

    result = gan(
        opt_d,
        opt_g,
        d_loss,
        g_loss,
        steps,
        discriminator=D,
        evaluate=evaluate,
        eval_at=[t for t in range(steps + 1) if t % every == 0 or t == steps],
    )
    held = held_out.reshape(len(held_out), -1).double().numpy()
    rows = []
    for step, ev in result.evals:
        stats = {k: v.double().cpu().numpy() for k, v in ev.items() if k != "fake"}
        stats["w1"] = w1_to_data(ev["fake"], held)
        for c in range(2 * s):
            rows.append(
                {
                    "step": step,
                    "seed": copy_seeds[c],
                    "objective": OBJECTIVES[c // s],
                    **{k: float(v[c]) for k, v in stats.items()},
                }
            )
    return pd.DataFrame(rows), G, D


def _at(curves: pd.DataFrame, objective: str, step: int, column: str) -> pd.Series:
    c = curves[(curves.objective == objective) & (curves.step == step)]
    return c.set_index("seed")[column]


def saturation_seed_table(curves: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    """Per-seed metrics from the curves (pure: table in, table out).

    Early window = evaluations at steps in (0, early_steps]. From the minimax run:
    d_fake_median_early, the smallest median D(G(z)) in the window (how confidently D rejects
    the fakes at its most confident; the premise), at step t* where it is reached;
    log10_grad_ratio_same_state, log10(||grad -log D|| / ||grad log(1 - D)||) at t* (both costs at
    the same G, D and z). Across the runs: log10_grad_ratio_runs, the mean over the window of
    log10(||grad||, non-saturating run's own cost / minimax run's own cost);
    w1_log10_ratio_early, log10(W1 minimax / W1 non-saturating) to the held-out digits at step
    early_steps (> 0: the non-saturating run is closer), and w1_log10_ratio_end at the last step;
    w1_start, w1_minimax_end, w1_ns_end: W1 at step 0 (both runs) and at the last step.
    """
    early, end = int(params["early_steps"]), int(curves.step.max())
    in_window = (curves.step > 0) & (curves.step <= early)
    mm = curves[in_window & (curves.objective == "minimax")]
    star = mm.loc[mm.groupby("seed")["d_fake_median"].idxmin()].set_index("seed")
    ns = curves[in_window & (curves.objective == "non-saturating")].set_index(["seed", "step"])
    ratio = ns["grad_non_saturating"] / mm.set_index(["seed", "step"])["grad_minimax"]
    w1_mm, w1_ns = _at(curves, "minimax", end, "w1"), _at(curves, "non-saturating", end, "w1")
    w1_early = _at(curves, "minimax", early, "w1") / _at(curves, "non-saturating", early, "w1")
    out = pd.DataFrame(
        {
            "d_fake_median_early": star["d_fake_median"],
            "step_most_confident": star["step"].astype(float),
            "log10_grad_ratio_same_state": np.log10(
                star["grad_non_saturating"] / star["grad_minimax"]
            ),
            "log10_grad_ratio_runs": np.log10(ratio).groupby(level="seed").mean(),
            "w1_log10_ratio_early": np.log10(w1_early),
            "w1_log10_ratio_end": np.log10(w1_mm / w1_ns),
            "w1_minimax_end": w1_mm,
            "w1_ns_end": w1_ns,
            "w1_start": _at(curves, "minimax", 0, "w1"),
        }
    )
    return out.rename_axis("seed").reset_index().astype({"seed": int})


def run_saturation(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """Minimax vs non-saturating GAN on the digits from the same G and D; tables ``seeds``,
    ``curves`` (every evaluation of both runs) and ``samples`` (per-sample logit slopes of both
    costs at the final state, autograd and closed form)."""
    if int(params["early_steps"]) % int(params["eval_every"]):
        raise ValueError("early_steps must be a multiple of eval_every")
    curves, G, D = train_pair(params, seeds, device)
    copy_seeds = [int(x) for _ in OBJECTIVES for x in seeds]
    gens = generators(copy_seeds, "eval")
    with torch.no_grad():
        z = sample_normal(gens, int(params["batch_size"]), int(params["z_dim"]), device=device)
        logits = D(G(z))
    slopes = {k: v.cpu().numpy() for k, v in per_sample_logit_grads(logits).items()}
    err = max(
        float(np.abs(slopes["sat_autograd"] - slopes["sat_closed"]).max()),
        float(np.abs(slopes["ns_autograd"] - slopes["ns_closed"]).max()),
    )
    require(err <= LOGIT_GRAD_TOL, f"autograd logit slopes differ from closed forms by {err:.3g}")
    b = slopes["d_fake"].shape[1]
    samples = pd.DataFrame({name: v.reshape(-1) for name, v in slopes.items()})
    samples["seed"] = np.repeat(copy_seeds, b)
    samples["objective"] = np.repeat([o for o in OBJECTIVES for _ in seeds], b)
    return {"seeds": saturation_seed_table(curves, params), "curves": curves, "samples": samples}


def fig_saturation(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Both runs against G steps: median D(G(z)), G-gradient norms, W1 to held-out digits."""
    fig, axes = figure(3, width=3.9)
    curves = tables["curves"]
    mm, ns = (curves[curves.objective == o] for o in OBJECTIVES)
    red, blue = dict(color="C3"), dict(color="C0", ls="--")
    mean_band(axes[0], mm, "step", "d_fake_median", label="minimax run", **red)
    mean_band(axes[0], ns, "step", "d_fake_median", label="non-saturating run", **blue)
    axes[0].axhline(0.01, color="k", lw=0.8, ls="-.", label="premise: 0.01")
    mean_band(axes[1], mm, "step", "grad_minimax", label=r"minimax run, $\log(1-D)$", **red)
    mean_band(
        axes[1],
        mm,
        "step",
        "grad_non_saturating",
        label=r"minimax run, $-\log D$ (same state)",
        color="C1",
        ls=":",
    )
    mean_band(axes[1], ns, "step", "grad_non_saturating", label=r"non-sat. run, $-\log D$", **blue)
    mean_band(axes[2], mm, "step", "w1", label="minimax run", **red)
    mean_band(axes[2], ns, "step", "w1", label="non-saturating run", **blue)
    for ax in axes:
        ax.axvline(params["early_steps"], color="0.5", lw=0.8, ls=":")
    axes[0].set(
        yscale="log",
        xlabel="generator steps",
        ylabel=r"median $D(G(z))$, fresh $z$",
        title="D's output on fakes (dotted: end of early window)",
    )
    axes[1].set(
        yscale="log",
        xlabel="generator steps",
        ylabel=r"$\|\nabla_{\theta_G}\,\mathrm{cost}\|$",
        title="generator gradient norms",
    )
    axes[2].set(
        xlabel="generator steps",
        ylabel=r"$W_1$ to held-out digits (pixel units)",
        title="distance to the data",
    )
    for ax in axes:
        ax.legend(fontsize=6)
    return fig


SATURATION = Experiment(
    run=run_saturation,
    params=(
        "z_dim",
        "g_channels",
        "d_channels",
        "g_norm",
        "lr_g",
        "lr_d",
        "momentum",
        "batch_size",
        "steps",
        "early_steps",
        "eval_every",
    ),
    metrics=(
        "d_fake_median_early",
        "step_most_confident",
        "log10_grad_ratio_same_state",
        "log10_grad_ratio_runs",
        "w1_log10_ratio_early",
        "w1_log10_ratio_end",
        "w1_minimax_end",
        "w1_ns_end",
        "w1_start",
    ),
    figures={"saturation": fig_saturation},
    doc="Goodfellow et al. 2014, Sec. 3: minimax vs non-saturating GAN from the same start.",
)
