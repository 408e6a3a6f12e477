"""noise-restores-overlap (Arjovsky & Bottou 2017, Thm 3.1-3.2, Cor 3.2): instance noise restores
overlap between the parallel lines of WGAN Example 1, P0 = law of (0, Z), P_theta = law of
(theta, Z), Z ~ U[0, 1].

With eps ~ N(0, s^2 I) added to both lines, JS (by 2-D quadrature, ``family.noise``) equals the JS
of N(0, s^2) and N(theta, s^2) (a function of theta / s only): below log 2, continuous in theta,
-> log 2 as s -> 0 for theta != 0. The optimal D* = p0 / (p0 + p_theta) has balanced accuracy
Phi(|theta| / (2 s)) < 1, and with D* frozen the generator cost's gradient is (Cor 3.2, envelope
theorem)

    d/dtheta E log(1 - D*(theta + eps, Z + eps')) = 2 dJS/dtheta,

nonzero wherever the noisy supports overlap, whereas with s = 0 it vanishes as D improves
(Thm 2.4). A D is trained on noisy samples for every (s, theta, seed) copy at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from repro import divergences as dv
from repro import plots
from repro.data import line_offsets, sample_noisy_line_pairs
from repro.engine import STREAMS, Copies, fit, optim, use_graphs
from repro.engine.streams import Stream
from repro.experiments import Experiment, Tables
from repro.experiments.family.noise import bayes_accuracy, gen_grad_limit, js_noisy_lines
from repro.invariants import require
from repro.losses import gan_d_loss
from repro.metrics import d_accuracy
from repro.nets import BatchedMLP


def gen_cost_grad(d_net: BatchedMLP, fake: torch.Tensor) -> torch.Tensor:
    """d/dtheta E log(1 - D(x)) per copy, x = (theta, z) + eps the fake samples (C, B, 2).

    x1 = theta + eps1, so the theta-derivative of the batch mean is the sum over the batch of the
    x1-derivative of the mean: autograd wrt the inputs. Returns (C,).
    """
    x = fake.detach().requires_grad_(True)
    cost = F.logsigmoid(-d_net(x)).mean((1, 2))  # log(1 - D) in log-sigmoid form
    (grad,) = torch.autograd.grad(cost.sum(), x)
    return grad[..., 0].sum(1).detach()


def _train_overlap_d(params: Mapping[str, Any], seeds: Sequence[int], device):
    """Train D on every (noise std, theta, seed) copy; record the G-cost gradient on held-out."""
    stds, thetas = [float(s) for s in params["noise_stds"]], [float(t) for t in params["thetas"]]
    copies = Copies.grid(seeds, noise_std=stds, theta=thetas)
    sizes = (2, *[int(params["hidden"])] * int(params["depth"]), 1)
    d_net = BatchedMLP(sizes, seeds=copies.seeds, stream=STREAMS["d_init"]).to(device)
    graphs = use_graphs(device)  # each update a captured CUDA graph on CUDA
    gens = Stream(seeds, "data", device, static=graphs)  # the samplers draw on the device
    offsets = line_offsets(thetas, device)  # made once, not in every step
    eval_real, eval_fake = sample_noisy_line_pairs(
        stds, thetas, Stream(seeds, "eval", device), int(params["n_eval"])
    )
    iters, every, batch = (
        int(params["d_iterations"]),
        int(params["eval_every"]),
        int(params["batch_size"]),
    )

    def per_copy_loss(step: int) -> torch.Tensor:
        real, fake = sample_noisy_line_pairs(stds, thetas, gens, batch, offsets)
        return gan_d_loss(d_net(real), d_net(fake))

    result = fit(
        optim.make("adam", d_net.parameters(), float(params["lr_d"]), capturable=graphs),
        per_copy_loss,
        iters,
        evaluate=lambda step: {"grad": gen_cost_grad(d_net, eval_fake)},
        eval_at=[it for it in range(iters + 1) if it % every == 0 or it == iters],
        copies=copies,
        graphs=graphs,
    )
    curves = result.curves.rename(columns={"step": "iteration"})
    curves.insert(4, "grad_norm", curves["grad"].abs())
    curves = curves[["noise_std", "theta", "seed", "iteration", "grad_norm", "grad"]]
    with torch.no_grad():
        lr_, lf = d_net(eval_real), d_net(eval_fake)
        value = F.logsigmoid(lr_).mean((1, 2)) + F.logsigmoid(-lf).mean((1, 2))
        final = copies.frame(js_estimate=0.5 * value + dv.LOG2, d_accuracy=d_accuracy(lr_, lf))
    return final, curves


def overlap_closed_forms(params: Mapping[str, Any]) -> pd.DataFrame:
    """Exact JS (2-D quadrature) on a fine theta grid per noise std, with D*'s accuracy."""
    lo, hi = min(params["thetas"]), max(params["thetas"])
    fine = np.linspace(float(lo), float(hi), int(params["curve_points"]))
    rows = []
    for std in map(float, params["noise_stds"]):
        for th in fine:
            js = js_noisy_lines(float(th), std, int(params["n_quad"]))
            rows.append(
                {"noise_std": std, "theta": th, "js": js, "bayes_accuracy": bayes_accuracy(th, std)}
            )
    closed = pd.DataFrame(rows)
    noisy = closed[closed["noise_std"] > 0]
    require(
        # < log 2 mathematically; in float64 it rounds to log 2 once theta / s >~ 15
        bool((noisy["js"] >= -1e-12).all() and (noisy["js"] <= dv.LOG2 + 1e-12).all()),
        f"noisy JS outside [0, log 2]: range {noisy['js'].min()}..{noisy['js'].max()}",
    )
    for std, g in noisy.groupby("noise_std"):  # JS grows with |theta| (a function of |theta|/s)
        order = g.assign(a=g["theta"].abs()).sort_values("a")
        require(
            bool((np.diff(order["js"].to_numpy()) >= -1e-9).all()),
            f"noisy JS not monotone in |theta| at noise std {std}",
        )
    return closed


def _end(curves: pd.DataFrame, frac: float = 0.1) -> pd.DataFrame:
    """Per copy: mean |gradient| over the last ``frac`` of D iterations, and its maximum."""
    last = curves["iteration"] >= (1.0 - frac) * curves["iteration"].max()
    keys = ["noise_std", "theta", "seed"]
    end = curves[last].groupby(keys)["grad_norm"].mean().rename("grad_end")
    peak = curves.groupby(keys)["grad_norm"].max().rename("grad_max")
    return pd.concat([end, peak], axis=1).reset_index()


def overlap_per_seed(
    final: pd.DataFrame, curves: pd.DataFrame, params: Mapping[str, Any]
) -> pd.DataFrame:
    """The per-seed metrics of ``noise-restores-overlap`` (see the spec for the checks)."""
    theta_g = float(params["theta_grad"])
    check_stds = [float(s) for s in params["grad_check_stds"]]
    final = final.assign(
        js_exact=[
            js_noisy_lines(t, s, int(params["n_quad"]))
            for s, t in final[["noise_std", "theta"]].itertuples(index=False)
        ],
        bayes=[
            bayes_accuracy(t, s) for s, t in final[["noise_std", "theta"]].itertuples(index=False)
        ],
    )
    ends = _end(curves)
    ends["limit"] = [abs(gen_grad_limit(theta_g, s)) for s in ends["noise_std"]]
    rows = []
    for seed, f in final.groupby("seed"):
        noisy, clean = f[f["noise_std"] > 0], f[(f["noise_std"] == 0) & (f["theta"] != 0)]
        e = ends[(ends["seed"] == seed) & (ends["theta"] == theta_g)].set_index("noise_std")
        chk = e.loc[check_stds]
        overlap = noisy[(noisy["theta"] != 0) & (noisy["bayes"] <= 0.99)]
        rows.append(
            {
                "seed": int(seed),
                "js_gap_max": float((noisy["js_estimate"] - noisy["js_exact"]).abs().max()),
                "acc_bayes_gap_max": float(
                    (noisy["d_accuracy"] - noisy["bayes"])[noisy["theta"] != 0].abs().max()
                ),
                "acc_overlap_max": float(overlap["d_accuracy"].max()),
                "acc_clean_min": float(clean["d_accuracy"].min()),
                "grad_limit_rel_err_max": float(
                    ((chk["grad_end"] - chk["limit"]).abs() / chk["limit"]).max()
                ),
                "grad_decay_noisy_min": float(np.log10(chk["grad_end"] / chk["grad_max"]).min()),
                "grad_decay_clean": float(
                    np.log10(e.loc[0.0, "grad_end"] / e.loc[0.0, "grad_max"])
                ),
                "grad_slope_clean_late": late_slope(
                    curves[
                        (curves["seed"] == seed)
                        & (curves["noise_std"] == 0.0)
                        & (curves["theta"] == theta_g)
                    ]
                ),
            }
        )
    return pd.DataFrame(rows)


def late_slope(curve: pd.DataFrame, frac: float = 0.5) -> float:
    """Least-squares slope of log10 |gradient| against log10 D iteration over the last ``frac``
    of the iterations (iteration >= 1): negative while the gradient keeps falling. A gradient
    that fell to exactly 0 (underflow: vanished completely) enters at the smallest positive
    float64, so it counts as falling; one that is 0 throughout is not measurable (NaN)."""
    last = curve[curve["iteration"] >= max(1.0, (1.0 - frac) * curve["iteration"].max())]
    norm = last["grad_norm"].to_numpy(float)
    if len(last) < 2 or not (norm > 0).any():
        return float("nan")
    x = np.log10(last["iteration"].to_numpy(float))
    y = np.log10(np.maximum(norm, np.finfo(float).tiny))
    return float(np.polyfit(x, y, 1)[0])


def run_overlap(params: Mapping[str, Any], seeds: list[int], device) -> Tables:
    """Tables ``seeds``, ``estimates`` (per copy), ``grad_curves``, ``closed`` (exact JS)."""
    stds = [float(s) for s in params["noise_stds"]]
    require(0.0 in stds, f"noise_stds must include 0 (the contrast); got {stds}")
    require(float(params["theta_grad"]) in map(float, params["thetas"]), "theta_grad not a theta")
    closed = overlap_closed_forms(params)
    final, curves = _train_overlap_d(params, seeds, device)
    limits = pd.DataFrame(
        {
            "noise_std": stds,
            "grad_limit": [abs(gen_grad_limit(float(params["theta_grad"]), s)) for s in stds],
        }
    )
    return {
        "seeds": overlap_per_seed(final, curves, params),
        "estimates": final,
        "grad_curves": curves,
        "closed": closed,
        "grad_limits": limits,
    }


def _std_label(std: float) -> str:
    return rf"$\sigma={std:g}$"


def _dots(ax, df: pd.DataFrame, y: str, color: str) -> None:
    """Mean over seeds per theta as dots, min-max over seeds as error bars."""
    g = df.groupby("theta")[y]
    mean, lo, hi = g.mean(), g.min(), g.max()
    err = np.vstack([mean - lo, hi - mean])
    ax.errorbar(mean.index, mean.values, yerr=err, fmt="o", ms=4, color=color, capsize=2)


def fig_js_vs_theta(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Exact JS of the noisy lines against theta per noise std, with the trained D's estimates."""
    closed, est = tables["closed"], tables["estimates"]
    fig, (ax, ax_acc) = plots.figure(2, width=4.4)
    for i, (std, g) in enumerate(closed.groupby("noise_std")):
        color = f"C{i}"
        if std == 0:  # a jump at theta = 0: draw the point apart, never a line through it
            at0 = g[g["theta"] == 0]
            ax.plot(at0["theta"], at0["js"], "o", color=color, mfc="none", ms=6)
            ax_acc.plot(at0["theta"], at0["bayes_accuracy"], "o", color=color, mfc="none", ms=6)
            g = g[g["theta"] != 0]
        ax.plot(g["theta"], g["js"], color=color, lw=1.4, label=_std_label(std))
        _dots(ax, est[est["noise_std"] == std], "js_estimate", color)
        ax_acc.plot(g["theta"], g["bayes_accuracy"], color=color, lw=1.2, label=_std_label(std))
        _dots(ax_acc, est[est["noise_std"] == std], "d_accuracy", color)
    ax.axhline(dv.LOG2, color="0.4", ls=":", lw=1, label=r"$\log 2$")
    ax.set(xlabel=r"$\theta$ (distance units)", ylabel="JS (nats)", title="JS of the noisy lines")
    ax.legend(
        title="lines: exact; dots: trained D", fontsize=7, title_fontsize=7, loc="lower right"
    )
    ax_acc.set(
        xlabel=r"$\theta$ (distance units)",
        ylabel="balanced accuracy (held out)",
        title="Discriminator accuracy",
        ylim=(0.45, 1.02),
    )
    ax_acc.legend(
        title=r"lines: D*, $\Phi(|\theta|/2\sigma)$; dots: trained D",
        fontsize=7,
        title_fontsize=7,
        loc="lower right",
    )
    return fig


def fig_grad_vs_iterations(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """|d/dtheta E log(1 - D(x_fake))| against D iterations per noise std (log y)."""
    curves, limits = tables["grad_curves"], tables["grad_limits"]
    theta_g = float(params["theta_grad"])
    cur = curves[curves["theta"] == theta_g]
    fig, ax = plots.figure(1, width=5.2, height=3.6)
    for i, (std, g) in enumerate(cur.groupby("noise_std")):
        color = f"C{i}"
        plots.mean_band(ax, g, "iteration", "grad_norm", color=color, label=_std_label(std))
        lim = float(limits.loc[limits["noise_std"] == std, "grad_limit"].iloc[0])
        if lim > 0:
            ax.axhline(lim, color=color, ls="--", lw=0.9)
    ax.set_yscale("log")
    ax.set(
        xlabel="D iterations",
        ylabel=r"$|\partial_\theta\, \mathbb{E}\log(1-D(x_\theta+\epsilon))|$",
        title=rf"Generator-cost gradient as D trains ($\theta={theta_g:g}$)",
    )
    ax.legend(
        title=r"dashed: $2\,|\partial_\theta \mathrm{JS}|$ (D = D*)", fontsize=7, loc="center right"
    )
    return fig


EXPERIMENT = Experiment(
    run=run_overlap,
    params=(
        "noise_stds",
        "thetas",
        "theta_grad",
        "grad_check_stds",
        "hidden",
        "depth",
        "d_iterations",
        "batch_size",
        "lr_d",
        "eval_every",
        "n_eval",
        "n_quad",
        "curve_points",
    ),
    metrics=(
        "js_gap_max",
        "acc_bayes_gap_max",
        "acc_overlap_max",
        "acc_clean_min",
        "grad_limit_rel_err_max",
        "grad_decay_noisy_min",
        "grad_decay_clean",
        "grad_slope_clean_late",
    ),
    figures={"js_vs_theta": fig_js_vs_theta, "grad_vs_iterations": fig_grad_vs_iterations},
    doc=__doc__ or "",
)
