"""f-GAN (Nowozin et al. 2016): Fenchel conjugates and the tightness of the variational bound.

(i) Table 2's closed-form conjugates f*(t) against sup_u (u t - f(u)) computed numerically from f
alone, on a grid inside dom f*, for the rows the spec names (``params["divergences"]``).

(ii) Eq. 4-6: D_f(P || Q) >= sup_T E_P[T] - E_Q[f*(T)], with equality at T* = f'(p/q). For each f
and each pair of 1-D Gaussians we train T = g_f(V(x)) (V a BatchedMLP, g_f the output activation
of Table 2) on fresh samples to maximise the bound, then evaluate the bound for the learned T by
quadrature, so the only error left is the optimisation/capacity gap (no Monte-Carlo noise), and
compare it with D_f by quadrature. Every (f, pair, seed) is one copy of the batched V.

The gap is normalised by D_f - f(1), the height of D_f above its floor D_f(P || P) = f(1), which
is 0 for every row except the GAN row (-log 4); for the others it is the relative gap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from repro import divergences as dv
from repro import plots
from repro.engine import STREAMS, Copies, Stream, cosine, fit, optim, use_graphs
from repro.experiments import Experiment, Tables, check_names
from repro.invariants import require
from repro.nets import BatchedMLP

# name -> ((mean_P, std_P), (mean_Q, std_Q)), P data, Q model. Equal variances keep the
# likelihood ratio's moments finite; the second pair has a wider Q so that both chi^2 are
# finite (2 std_Q^2 > std_P^2 and 2 std_P^2 > std_Q^2) and every D_f is >= 0.06.
PAIRS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "shift": ((0.0, 1.0), (1.0, 1.0)),
    "scale": ((0.0, 1.0), (0.5, 1.1)),
}
GRID = (-15.0, 15.0)
# Fenchel-Young: p T - q f*(T) <= q f(p/q) pointwise, so on a shared grid the learned bound can
# exceed D_f only by rounding; (bound - D_f) / (D_f - f(1)) above this means a bug, not a finding.
BOUND_EXCESS_TOL = 1e-6


def conjugate_grid(name: str, n: int) -> np.ndarray:
    """n points inside dom f*: [-4, 4] on the real line, [b - 6, b - 0.01] for dom = (-inf, b)."""
    lo, hi = dv.get_f(name).f_star_domain
    if hi == math.inf:
        return np.linspace(-4.0, 4.0, n)
    return np.linspace(hi - 6.0, hi - 0.01, n)


def conjugate_table(names: Sequence[str], n: int) -> pd.DataFrame:
    """Closed-form and numeric f*(t) on each conjugate grid, with the relative error."""
    frames = []
    for name in names:
        t = conjugate_grid(name, n)
        closed, numeric = dv.get_f(name).f_star(t), dv.conjugate_numeric(name, t)
        rel = np.abs(numeric - closed) / np.maximum(1.0, np.abs(closed))
        frames.append(
            pd.DataFrame(
                {"divergence": name, "t": t, "closed": closed, "numeric": numeric, "rel_error": rel}
            )
        )
    return pd.concat(frames, ignore_index=True)


def pair_moments(pairs: Sequence[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of P and Q for every pair, each (1, K, 1, 2, 1) on ``device``: made once per
    training run (no host work inside a step)."""
    mean = torch.tensor([[PAIRS[k][0][0], PAIRS[k][1][0]] for k in pairs], device=device)
    std = torch.tensor([[PAIRS[k][0][1], PAIRS[k][1][1]] for k in pairs], device=device)
    return mean.reshape(1, -1, 1, 2, 1), std.reshape(1, -1, 1, 2, 1)


def draw(
    names: Sequence[str],
    pairs: Sequence[str],
    gens: Stream,
    batch: int,
    moments: tuple[torch.Tensor, torch.Tensor] | None = None,
):
    """P and Q samples per (f, pair, seed) copy, copy = (f * K + pair) * S + seed: 2 x (C, B, 1),
    on the stream's device (``gens`` has one copy per seed); ``moments``: ``pair_moments``
    (made here when None)."""
    z = gens.normal(len(names), len(pairs), 2, batch).permute(1, 2, 0, 3, 4)  # (F, K, S, 2, B)
    mean, std = moments if moments is not None else pair_moments(pairs, z.device)
    x = (mean + std * z).reshape(-1, 2, batch, 1)  # (F*K*S, 2, B, 1)
    return x[:, 0], x[:, 1]


def bound_terms(v_p: torch.Tensor, v_q: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """Per-copy E_P[g_f(V)] - E_Q[f*(g_f(V))] (f-GAN Eq. 6): (C, B, 1) each -> (C,).

    Copies are grouped by f (f-major), so each f's activation acts on one contiguous slice.
    """
    per_f = v_p.shape[0] // len(names)
    out = []
    for i, name in enumerate(names):
        row, sl = dv.get_f(name), slice(i * per_f, (i + 1) * per_f)
        out.append(row.g_f(v_p[sl]).mean((1, 2)) - row.f_star_g(v_q[sl]).mean((1, 2)))
    return torch.cat(out)


def train(params: Mapping[str, Any], seeds: Sequence[int], device) -> BatchedMLP:
    """Maximise the bound for every copy: Adam on the SUM over copies of -bound, the learning
    rate cosine-decayed from ``lr`` to 0."""
    names = check_names(params["divergences"], dv.F_DIVERGENCES, "divergence")
    pairs = check_names(params["pairs"], PAIRS, "pair")
    sizes = (1, *[int(params["hidden"])] * int(params["depth"]), 1)
    copies = Copies.grid(seeds, f=names, pair=pairs)  # copy (f, pair, s) is initialised from s
    net = BatchedMLP(sizes, seeds=copies.seeds, stream=STREAMS["d_init"]).to(device)
    graphs = use_graphs(device)  # each update a captured CUDA graph on CUDA
    gens = Stream(seeds, "data", device, static=graphs)
    moments = pair_moments(pairs, device)

    def per_copy_loss(step: int) -> torch.Tensor:
        xp, xq = draw(names, pairs, gens, int(params["batch_size"]), moments)
        return -bound_terms(net(xp), net(xq), names)

    lr, steps = float(params["lr"]), int(params["steps"])
    opt = optim.make("adam", net.parameters(), lr, capturable=graphs)
    fit(opt, per_copy_loss, steps, schedule=cosine(lr, steps), graphs=graphs)
    return net


def quadrature_bound(
    name: str, v: np.ndarray, p: np.ndarray, q: np.ndarray, x: np.ndarray
) -> float:
    """int p g_f(v) - q f*(g_f(v)) dx for the learned V on the grid; <= D_f by Fenchel-Young."""
    row = dv.get_f(name)
    return float(np.trapezoid(p * row.g_f(v) - q * row.f_star_g(v), x))


def bound_table(
    net: BatchedMLP, params: Mapping[str, Any], seeds: Sequence[int], device
) -> pd.DataFrame:
    """True D_f, the learned bound, and the normalised gap for every (f, pair, seed)."""
    names, pairs = list(params["divergences"]), list(params["pairs"])
    x = np.linspace(*GRID, int(params["grid_points"]))
    xt = torch.tensor(x, dtype=torch.get_default_dtype(), device=device).reshape(1, -1, 1)
    with torch.no_grad():
        v = net(xt.expand(net.n_seeds, -1, -1)).squeeze(-1).double().cpu().numpy()
    v = v.reshape(len(names), len(pairs), len(seeds), -1)
    rows = []
    for i, name in enumerate(names):
        floor = dv.get_f(name).f_one
        for k, pair in enumerate(pairs):
            (mp, sp), (mq, sq) = PAIRS[pair]
            p, q = dv.gaussian_pdf(x, mp, sp), dv.gaussian_pdf(x, mq, sq)
            true = dv.f_divergence(name, p, q, x)
            for j, seed in enumerate(seeds):
                est = quadrature_bound(name, v[i, k, j], p, q, x)
                gap = (true - est) / (true - floor)
                rows.append(
                    {
                        "seed": seed,
                        "divergence": name,
                        "pair": pair,
                        "true": true,
                        "estimate": est,
                        "normalised_gap": gap,
                    }
                )
    return pd.DataFrame(rows)


def run(params: Mapping[str, Any], seeds: list[int], device) -> Tables:
    """Conjugate check and trained bounds; tables ``seeds``, ``bounds``, ``conjugates``."""
    names = check_names(params["divergences"], dv.F_DIVERGENCES, "divergence")
    conj = conjugate_table(names, int(params["conjugate_points"]))
    bounds = bound_table(train(params, seeds, device), params, seeds, device)
    worst = bounds.loc[bounds["normalised_gap"].idxmin()]
    require(
        -worst["normalised_gap"] <= BOUND_EXCESS_TOL,
        f"learned bound exceeds D_f by {-worst['normalised_gap']:.3g} (normalised) for "
        f"{worst['divergence']} on {worst['pair']}, seed {worst['seed']}",
    )
    g = bounds.groupby("seed")["normalised_gap"]
    per_seed = pd.DataFrame(
        {
            "seed": [int(s) for s in g.max().index],
            "conjugate_max_error": float(conj["rel_error"].max()),
            "bound_gap_max": g.max().to_numpy(),
            "bound_gap_mean": g.mean().to_numpy(),
        }
    )
    return {"seeds": per_seed, "bounds": bounds, "conjugates": conj}


def fig_fgan(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Left: learned bound vs true D_f per f and pair (y = x). Right: numeric vs closed f*."""
    bounds, conj = tables["bounds"], tables["conjugates"]
    fig, (ax_b, ax_c) = plots.figure(2, width=4.4, height=3.6)
    agg = bounds.groupby(["divergence", "pair"], sort=False).agg(
        true=("true", "first"),
        mean=("estimate", "mean"),
        lo=("estimate", "min"),
        hi=("estimate", "max"),
    )
    markers = {p: "os^Dv"[i % 5] for i, p in enumerate(dict.fromkeys(bounds["pair"]))}
    colours = {n: f"C{i}" for i, n in enumerate(dict.fromkeys(bounds["divergence"]))}
    for (name, pair), r in agg.iterrows():
        ax_b.errorbar(
            r["true"],
            r["mean"],
            yerr=[[r["mean"] - r["lo"]], [r["hi"] - r["mean"]]],
            fmt=markers[pair],
            color=colours[name],
            ms=5,
            label=f"{name} ({pair})",
        )
    lim = [
        min(agg["true"].min(), agg["lo"].min()) - 0.1,
        max(agg["true"].max(), agg["hi"].max()) + 0.1,
    ]
    ax_b.plot(lim, lim, color="k", lw=1, ls="--", label="y = x (tight bound)")
    ax_b.set(
        title="Variational bound after training",
        xlabel=r"true $D_f(P\|Q)$ (quadrature)",
        ylabel=r"$\int p\,T - q\,f^*(T)$, learned $T$",
    )
    ax_b.legend(fontsize=6, ncol=2)
    for i, (name, c) in enumerate(conj.groupby("divergence", sort=False)):
        ax_c.plot(c["t"], c["closed"], color=f"C{i}", lw=1.2, label=name)
        ax_c.plot(c["t"][::4], c["numeric"][::4], "o", color=f"C{i}", ms=2.5, mfc="none")
    ax_c.set(
        title=r"$f^*$: closed (lines), numeric sup (circles)",
        xlabel="t",
        ylabel=r"$f^*(t)$",
        ylim=(-4, 8),
    )
    ax_c.legend(fontsize=6)
    return fig


EXPERIMENT = Experiment(
    run=run,
    params=(
        "divergences",
        "pairs",
        "hidden",
        "depth",
        "steps",
        "batch_size",
        "lr",
        "grid_points",
        "conjugate_points",
    ),
    metrics=("conjugate_max_error", "bound_gap_max", "bound_gap_mean"),
    figures={"fenchel_conjugates": fig_fgan},
    doc=__doc__ or "",
)
