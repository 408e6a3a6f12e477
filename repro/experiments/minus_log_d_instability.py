"""minus-log-d-instability (Arjovsky & Bottou 2017, Fig. 3 / Thm 2.6): the -log D cost's gradient
grows and gets noisier as a fresh D learns; if D's error is Gaussian noise, its coordinates are
Cauchy distributed (checked across ``n_ds`` independently trained Ds and in the theorem's own
model). The protocol is ``family.arjovsky_bottou``."""

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

from repro.data import sample_normal
from repro.engine.streams import Stream
from repro.experiments import Experiment, Tables
from repro.experiments.family.arjovsky_bottou import (
    PROTOCOL_PARAMS,
    STREAM_MINIBATCH,
    STREAM_THEOREM,
    data_title,
    epoch_label,
    fresh_discriminators,
    label_copies,
    norm_panel,
    repeat_copies,
    run_fresh_d,
    seed_table,
    series_style,
    setup,
    stack_snapshots,
    train_snapshots,
    wide_figure,
)
from repro.invariants import require
from repro.losses import non_saturating_g_loss
from repro.metrics import per_seed_grad_norm

# (q99 - q01) / (q75 - q25): the two-sided tail-quantile ratio of a symmetric law.
GAUSSIAN_TAIL_RATIO = float(
    (stats.norm.ppf(0.99) - stats.norm.ppf(0.01)) / (2 * stats.norm.ppf(0.75))
)


CAUCHY_TAIL_RATIO = float(math.tan(0.49 * math.pi) / math.tan(0.25 * math.pi))


HEAVY_TAIL_THRESHOLD = math.sqrt(GAUSSIAN_TAIL_RATIO * CAUCHY_TAIL_RATIO)  # 10.47


def tail_ratio(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """(q99 - q01) / (q75 - q25) along ``dim``: 3.45 for a Gaussian, 31.8 for a Cauchy.

    Thm 2.6 of Arjovsky & Bottou 2017 predicts Cauchy-distributed coordinates of the -log D
    gradient; this ratio compares a sample's tails with its bulk, free of location and scale.
    NaN where the inter-quartile range is 0.
    """
    probs = torch.tensor([0.01, 0.25, 0.75, 0.99], dtype=torch.float64, device=values.device)
    q = torch.quantile(values.double(), probs, dim=dim)
    iqr = q[2] - q[1]
    return torch.where(iqr > 0, (q[3] - q[0]) / iqr, torch.full_like(iqr, float("nan")))


def robust_standardise(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """(v - median) / (q75 - q25) * 1.349 along ``dim``: a N(m, s^2) sample becomes ~N(0, 1)."""
    v = values.double()
    probs = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64, device=v.device)
    q = torch.quantile(v, probs, dim=dim, keepdim=True)
    return (v - q[1]) / (q[2] - q[0]) * (2 * stats.norm.ppf(0.75))


def pooled_tail_ratio(values: torch.Tensor) -> float:
    """Tail ratio of (n, J) values after standardising each column robustly and pooling.

    Each of J coordinates has only n draws (n fresh Ds), too few for its own q01 / q99; pooling
    the standardised columns gives n * J points. Columns with zero inter-quartile range are
    dropped. Gaussian columns give about 3.45 (a little more for small n, from the noise of
    each column's median and IQR), Cauchy columns about 31.8.
    """
    z = robust_standardise(values, dim=0).reshape(-1)
    z = z[torch.isfinite(z)]
    return float(tail_ratio(z)) if z.numel() >= 100 else float("nan")


def theorem_model_gradients(
    gens: Stream, draws: int, gap: float, noise_std: float, points: int
) -> torch.Tensor:
    """E_z[-d/dtheta log D(g_theta(z))] for ``draws`` realisations of D's error, per copy of the
    random stream ``gens``.

    The model of Arjovsky & Bottou 2017, Thm 2.6: P_r = N(0, 1), P_g = N(gap, 1) with
    g_theta(z) = theta + z at theta = gap; the optimal D* = P_r / (P_r + P_g) =
    sigmoid(gap^2 / 2 - gap x), D*'(x) = -gap D* (1 - D*); D = D* + eps(x) and D' = D*' + r(x),
    eps and r independent N(0, noise_std^2) at every x ("white noise"). E_z is a Gauss-Hermite
    quadrature with ``points`` nodes, so -d/dtheta log D(theta + z) = -D'(x) / D(x) is averaged as
    sum_i w_i (-D'(x_i) / D(x_i)). D is not kept inside (0, 1): the theorem does not either.

    Returns (len(gens), draws) float64, on the stream's device.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)
    x = torch.as_tensor(gap + nodes, dtype=torch.float64, device=gens.device)
    w = torch.as_tensor(weights / weights.sum(), dtype=torch.float64, device=gens.device)
    d_star = torch.sigmoid(gap**2 / 2 - gap * x)
    d_star_prime = -gap * d_star * (1 - d_star)
    eps = noise_std * gens.normal(draws, points, dtype=torch.float64)  # (C, draws, points)
    r = noise_std * gens.normal(draws, points, dtype=torch.float64)
    return (-(d_star_prime + r) / (d_star + eps) * w).sum(dim=2)


def require_theorem_model_heavy(theorem: pd.DataFrame, draws: int) -> None:
    """Invariant: in Thm 2.6's own model the tail ratio is Cauchy-like (> 10.47) at every noise
    level > 0, by construction (D* -> 0 on the fake support, so D'/D is a ratio of independent
    centred Gaussians there). Skipped below 1,000 draws, where q01 / q99 are too noisy.
    ``theorem``: rows (seed, noise_std, tail_ratio)."""
    heavy = theorem[theorem["noise_std"] > 0].groupby("seed")["tail_ratio"].min()
    require(
        bool((heavy > HEAVY_TAIL_THRESHOLD).all()) or draws < 1000,
        f"Thm 2.6 model not heavy-tailed: min tail ratio per seed {heavy.round(2).to_dict()}",
    )


THEOREM_NOISE_GRID = tuple(10.0**k for k in range(-8, 1))  # noise levels for the figure


def per_d_gradients(
    G: nn.Module, D: nn.Module, z: torch.Tensor, n_ds: int, coords: torch.Tensor
) -> torch.Tensor:
    """grad_theta E_z[-log D_j(G(z))] for every D copy, at coordinates ``coords`` (K, J).

    One forward pass of G on z (K, B, z_dim); the input gradient of each D copy's loss; then for
    each D index j one vector-Jacobian product through G. The Ds see the same z, so their gradients
    differ only through D. Returns (n_ds, K, J) on the CPU, float64.
    """
    params = list(G.parameters())
    k = z.shape[0]
    D.requires_grad_(False)
    try:
        x = G(z)
        xr = repeat_copies(x.detach(), n_ds).requires_grad_(True)
        loss = non_saturating_g_loss(D(xr))  # (n_ds * K,)
        (gx,) = torch.autograd.grad(loss.sum(), xr)
        out = []
        for j in range(n_ds):
            grads = torch.autograd.grad(
                x, params, grad_outputs=gx[j * k : (j + 1) * k], retain_graph=j < n_ds - 1
            )
            flat = torch.cat([g.reshape(k, -1) for g in grads], dim=1)  # (K, P)
            out.append(flat.gather(1, coords).double().cpu())
    finally:
        D.requires_grad_(True)
    return torch.stack(out)


def minibatch_norms(
    G: nn.Module,
    D: nn.Module,
    gens: Stream,
    n_ds: int,
    *,
    z_dim: int,
    batch_size: int,
    n_batches: int,
    device: Any,
) -> torch.Tensor:
    """Norm of grad_theta -E log D_0(G(z)) on each of ``n_batches`` minibatches of fresh z:
    (n_batches, K), for the Ds with index 0."""
    params = list(G.parameters())
    norms = []
    D.requires_grad_(False)
    try:
        for _ in range(n_batches):
            z = sample_normal(gens, batch_size, z_dim, device=device)
            x = G(z)
            k = x.shape[0]
            loss = non_saturating_g_loss(D(repeat_copies(x, n_ds))[:k])
            norms.append(per_seed_grad_norm(loss, params).double().cpu())
    finally:
        D.requires_grad_(True)
    return torch.stack(norms)


def _cv(norms: torch.Tensor) -> torch.Tensor:
    return norms.std(0) / norms.mean(0)


def run_instability(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """The -log D cost against fresh Ds (Fig. 3) and Thm 2.6 across Ds and in its own model.

    Per seed, worst G over the snapshots: ``log10_norm_growth`` and ``log10_cv_growth`` (mean and
    coefficient of variation of the minibatch gradient norm, trained D vs fresh D);
    ``tail_ratio_across_ds`` (median over Gs of the pooled tail ratio across the n_ds trained
    Ds); ``analytic_tail_ratio`` (the theorem's model); ``final_accuracy`` (premise: worst G, median
    over its Ds).
    """
    p = params
    epochs, n_ds = p["g_epochs"], p["n_ds"]
    G = stack_snapshots(p, seeds, train_snapshots(p, seeds, device), device)
    D = fresh_discriminators(p, G, n_ds, device)
    k = len(G.seeds)
    state = copy.deepcopy(G.state_dict())
    mb = dict(
        z_dim=p["z_dim"], batch_size=p["batch_size"], n_batches=p["tail_batches"], device=device
    )
    start = minibatch_norms(G, D, Stream(G.seeds, STREAM_MINIBATCH, device), n_ds, **mb)
    G.load_state_dict(state)
    curves = run_fresh_d(p, G, D, n_ds, ("non_saturating",), device)
    end = minibatch_norms(G, D, Stream(G.seeds, STREAM_MINIBATCH, device), n_ds, **mb)
    G.load_state_dict(state)
    # Thm 2.6 across Ds: each D's gradient on eval_size z shared by the Ds of a G copy
    gens = Stream(G.seeds, STREAM_MINIBATCH + 100, device)
    n_params = sum(q[0].numel() for q in G.parameters())
    coords = gens.randint(n_params, p["tail_coords"])  # (K, J)
    z = sample_normal(gens, p["eval_size"], p["z_dim"])
    grads = per_d_gradients(G, D, z, n_ds, coords)  # (n_ds, K, J)
    G.load_state_dict(state)
    G.zero_grad(set_to_none=True)
    require(
        bool(torch.isfinite(grads).all()),
        f"non-finite -log D gradients ({int((~torch.isfinite(grads)).sum())})",
    )
    ratio = [pooled_tail_ratio(grads[:, c]) for c in range(k)]
    per_copy = label_copies(
        pd.DataFrame(
            {
                "copy": range(k),
                "norm_mean_start": start.mean(0).numpy(),
                "norm_mean_end": end.mean(0).numpy(),
                "cv_start": _cv(start).numpy(),
                "cv_end": _cv(end).numpy(),
                "tail_ratio_across_ds": ratio,
            }
        ),
        seeds,
        epochs,
    )
    last = curves[curves["iteration"] == curves["iteration"].max()]
    acc = label_copies(last, seeds, epochs).groupby(["seed", "epochs"])["accuracy"].median()
    per_copy["final_accuracy"] = [
        acc.loc[(s, e)] for s, e in zip(per_copy["seed"], per_copy["epochs"], strict=True)
    ]
    per_copy["log10_norm_growth"] = np.log10(
        per_copy["norm_mean_end"] / per_copy["norm_mean_start"]
    )
    per_copy["log10_cv_growth"] = np.log10(per_copy["cv_end"] / per_copy["cv_start"])
    table = seed_table(
        seeds,
        per_copy,
        {
            "log10_norm_growth": ("log10_norm_growth", "min"),
            "log10_cv_growth": ("log10_cv_growth", "min"),
            "tail_ratio_across_ds": ("tail_ratio_across_ds", "median"),
            "final_accuracy": ("final_accuracy", "min"),
        },
    )
    # Thm 2.6 in its own model, per seed; and the noise sweep for the figure
    theorem = []
    for noise in sorted(set(THEOREM_NOISE_GRID) | {p["analytic_noise_std"]}):
        g = theorem_model_gradients(
            Stream(seeds, STREAM_THEOREM, device),
            p["analytic_draws"],
            p["analytic_gap"],
            noise,
            p["analytic_points"],
        )
        for s, r in zip(seeds, tail_ratio(g, dim=1).tolist(), strict=True):
            theorem.append(
                {
                    "seed": int(s),
                    "noise_std": noise,
                    "tail_ratio": r,
                    "registered": noise == p["analytic_noise_std"],
                }
            )
    theorem = pd.DataFrame(theorem)
    reg = theorem[theorem["registered"]].set_index("seed")["tail_ratio"]
    table["analytic_tail_ratio"] = [float(reg.loc[int(s)]) for s in seeds]
    require_theorem_model_heavy(theorem, p["analytic_draws"])
    qq = _qq_table(grads, seeds, epochs)
    return {
        "seeds": table,
        "curves": label_copies(curves, seeds, epochs),
        "snapshots": per_copy,
        "theorem": theorem,
        "qq": qq,
        "setup": setup(p),
    }


QQ_PROBS = stats.norm.cdf(np.linspace(-3.0, 3.0, 25))  # normal-quantile-spaced probabilities


def _qq_table(grads: torch.Tensor, seeds: Sequence[int], epochs: Sequence[int]) -> pd.DataFrame:
    """Quantiles of the pooled, robustly standardised coordinates across Ds, per G copy."""
    rows = []
    for c in range(grads.shape[1]):
        z = robust_standardise(grads[:, c], dim=0).reshape(-1).numpy()
        z = z[np.isfinite(z)]
        if z.size == 0:
            continue
        for prob, q in zip(QQ_PROBS, np.quantile(z, QQ_PROBS), strict=True):
            rows.append(
                {
                    "copy": c,
                    "prob": float(prob),
                    "normal_quantile": float(stats.norm.ppf(prob)),
                    "value": float(q),
                }
            )
    return (
        label_copies(pd.DataFrame(rows), seeds, epochs)
        if rows
        else pd.DataFrame(
            columns=["copy", "prob", "normal_quantile", "value", "epochs", "seed", "d_index"]
        )
    )


def fig_instability(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Fig. 3 of the paper (norm vs D iterations) and the relative noise across minibatches."""
    fig, axes = wide_figure(2, width=5.0, height=3.8)
    norm_panel(
        axes[0],
        tables["curves"],
        "grad_norm_non_saturating",
        r"$\|\nabla_\theta\, \mathbb{E}_z[-\log D(G_\theta(z))]\|$",
        r"$-\log D$ cost: gradient norm",
    )
    ax = axes[1]
    snaps = tables["snapshots"]
    for i, (ep, c) in enumerate(snaps.groupby("epochs")):
        st = series_style(i)
        jitter = (i - 1) * 0.08
        for x0, col in ((0, "cv_start"), (1, "cv_end")):
            ax.scatter(
                np.full(len(c), x0 + jitter),
                c[col],
                color=st["color"],
                marker=st["marker"],
                s=18,
                label=epoch_label(ep) if x0 == 0 else None,
            )
        for _, r in c.iterrows():
            ax.plot(
                [jitter, 1 + jitter],
                [r["cv_start"], r["cv_end"]],
                color=st["color"],
                lw=0.6,
                alpha=0.5,
            )
    ax.set_xticks([0, 1], ["fresh D", f"trained D ({params['d_iterations']} it.)"])
    ax.set(
        yscale="log",
        xlim=(-0.4, 1.4),
        ylabel=r"$\mathrm{std}/\mathrm{mean}$ of the norm across minibatches",
        title=f"relative noise, {params['tail_batches']} minibatches of {params['batch_size']} z",
    )
    ax.legend(fontsize=8)
    axes[0].set_title(f"{axes[0].get_title()} ({data_title(params)})", fontsize=9)
    return fig


def fig_tails(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Thm 2.6: QQ plot of coordinates across Ds; tail ratio in the theorem's model vs noise."""
    fig, axes = wide_figure(2, width=5.0, height=3.8)
    ax, qq = axes[0], tables["qq"]
    lim = 8.0
    for i, (ep, c) in enumerate(qq.groupby("epochs")):
        m = c.groupby("normal_quantile")["value"].median()
        st = series_style(i)
        ax.plot(
            m.index,
            m.values.clip(-lim, lim),
            color=st["color"],
            marker=st["marker"],
            ms=3,
            ls=st["ls"],
            label=f"{epoch_label(ep)}, {params['n_ds']} Ds",
        )
    u = np.linspace(-3, 3, 201)
    ax.plot(u, u, color="k", lw=1, label="Gaussian")
    # a Cauchy's IQR is 2; robust_standardise maps the IQR to the Gaussian's 2 * 0.674
    cauchy = stats.cauchy.ppf(stats.norm.cdf(u)) * stats.norm.ppf(0.75)
    inside = np.abs(cauchy) <= lim
    ax.plot(u[inside], cauchy[inside], color="k", lw=1, ls="--", label="Cauchy")
    ax.set(
        xlabel="Gaussian quantile",
        ylabel="standardised gradient coordinate",
        title="across independently trained Ds",
        ylim=(-lim, lim),
        xlim=(-3.2, 3.2),
    )
    ax.legend(fontsize=7, loc="upper left")
    ax = axes[1]
    th = tables["theorem"]
    g = th.groupby("noise_std")["tail_ratio"]
    med, lo, hi = g.median(), g.min(), g.max()
    ax.plot(med.index, med.values, color="C0", marker="o", label="median over seeds")
    ax.fill_between(med.index, lo.values, hi.values, color="C0", alpha=0.2, lw=0)
    ax.axhline(GAUSSIAN_TAIL_RATIO, color="k", lw=1, label=f"Gaussian {GAUSSIAN_TAIL_RATIO:.2f}")
    ax.axhline(CAUCHY_TAIL_RATIO, color="k", lw=1, ls="--", label=f"Cauchy {CAUCHY_TAIL_RATIO:.1f}")
    ax.axhline(HEAVY_TAIL_THRESHOLD, color="grey", lw=0.8, ls=":", label="threshold 10.47")
    ax.axvline(params["analytic_noise_std"], color="C3", lw=0.8, ls="-.", label="registered noise")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"std of D's error $\sigma_\epsilon$",
        ylabel=r"$(q_{99} - q_{01}) / (q_{75} - q_{25})$",
        title=rf"Thm 2.6 model: $D = D^* + \epsilon$, gap {params['analytic_gap']}",
    )
    ax.legend(fontsize=7)
    axes[0].set_title(f"{axes[0].get_title()} ({data_title(params)})", fontsize=9)
    return fig


EXPERIMENT = Experiment(
    run=run_instability,
    params=PROTOCOL_PARAMS
    + (
        "n_ds",
        "tail_batches",
        "tail_coords",
        "analytic_gap",
        "analytic_noise_std",
        "analytic_points",
        "analytic_draws",
    ),
    metrics=(
        "log10_norm_growth",
        "log10_cv_growth",
        "tail_ratio_across_ds",
        "analytic_tail_ratio",
        "final_accuracy",
    ),
    figures={"grad_norm": fig_instability, "tails": fig_tails},
    positive_metrics=("tail_ratio_across_ds", "analytic_tail_ratio"),
    doc="Arjovsky & Bottou 2017, Fig. 3 / Thm 2.6: the -log D gradient grows, noisier; Cauchy.",
)
