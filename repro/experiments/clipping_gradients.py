"""Weight clipping against the gradient penalty (Gulrajani et al. 2017, WGAN-GP, Figure 1).

(b) Per-layer gradient norms: a deep ReLU critic (``depth`` linear layers) is trained on the Swiss
roll against a fixed "generator" G = data + N(0, I) with weight clipping at each c in ``clips``
(RMSProp, WGAN's optimiser) or with the gradient penalty (Adam(1e-4, 0, 0.9), lambda = 10). At
the end, on held-out batches, we take the norm of the gradient of the critic loss
E_G f - E_data f with respect to each layer's weight matrix, and fit log10 norm against the
layer index: the slope (decades per layer) says how fast the gradient grows or shrinks through
the depth. Clipping pins the weights near +-c, so the backward signal is multiplied by about
the same factor at every layer (explode or vanish geometrically); the penalty keeps the input
gradient near norm 1 and leaves no such factor.

(a) Value surfaces: a 3-hidden-layer critic, trained on 8 and on 25 Gaussians against the same
fixed G = data + N(0, I), with clipping (c = ``surface_clip``) and with the penalty. How much of
W1 a critic captures is measured by Kantorovich duality: for an L-Lipschitz f,
E_data f - E_G f <= L W1(data, G), so the efficiency (E_data f - E_G f) / (L_hat W1) is at most
about 1 (L_hat: the largest ||grad f|| seen on held-out real, fake and interpolated points;
W1: exact, POT, on the same held-out samples). A critic too simple to follow the data's modes
captures a smaller fraction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from repro import plots
from repro.data import (  # the WGAN-GP toy data sets
    SWISS_SCALE,  # noqa: F401
    grid_means,
    ring_means,
    sample_swiss_roll,  # noqa: F401
    toy_sampler,
)
from repro.engine import STREAMS, Copies, fit, optim, use_graphs
from repro.engine.streams import Stream
from repro.experiments import Experiment, Tables
from repro.invariants import require
from repro.losses import penalty_at, wgan_d_loss
from repro.metrics import w1_pool
from repro.nets import BatchedMLP


def data_and_fake(sampler, gens: Stream, batch: int, fake_noise_std: float, device):
    """Real batch and the fixed generator's batch: an independent real batch + N(0, std^2 I)."""
    real = sampler(gens, batch, device=device)
    base = sampler(gens, batch, device=device)
    eps = gens.normal(batch, 2).to(base)
    return real, base + fake_noise_std * eps


def he_init_(net: BatchedMLP) -> BatchedMLP:
    """Rescale BatchedMLP's U(+-1/sqrt(n_in)) weights to He-uniform U(+-sqrt(6 / n_in)), so a
    deep ReLU net starts with gain ~1 per layer; biases set to 0."""
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(math.sqrt(6.0))
            layer.bias.zero_()
    return net


def clip_per_copy_(net: BatchedMLP, bounds: torch.Tensor) -> None:
    """Clamp copy i's parameters to [-bounds[i], bounds[i]] (WGAN clipping, one c per copy).
    ``bounds`` on the parameters' device and dtype makes no copy (inside a training step)."""
    with torch.no_grad():
        for p in net.parameters():
            c = bounds.to(p).reshape(-1, *([1] * (p.dim() - 1)))
            p.copy_(torch.maximum(torch.minimum(p, c), -c))


def penalty_per_copy(
    net: BatchedMLP, real: torch.Tensor, fake: torch.Tensor, gens: Stream
) -> torch.Tensor:
    """The WGAN-GP penalty per copy (``repro.losses.penalty_at``) with u ~ U[0, 1] per sample
    drawn from the copies' stream. real, fake (C, B, 2) -> (C,)."""
    u = gens.uniform(real.shape[1], 1).to(real)
    return penalty_at(net, real, fake, u)


def train_critic(
    net: BatchedMLP,
    sampler,
    gens: Stream,
    params: Mapping[str, Any],
    steps: int,
    clip_bounds: torch.Tensor | None,
    device,
) -> BatchedMLP:
    """Train every copy against the fixed G = data + N(0, I): clipping (RMSProp, clip after each
    step) when ``clip_bounds`` is given, else the penalty (Adam(lr, 0, 0.9), lambda)."""
    b, noise = int(params["batch_size"]), float(params["fake_noise_std"])
    graphs = use_graphs(device)  # each update (with its clipping) a captured CUDA graph on CUDA
    if graphs and not gens.static:
        raise ValueError("static steps need a static stream: Stream(..., static=True)")
    if clip_bounds is not None:
        clip_per_copy_(net, clip_bounds)
        opt = optim.make("rmsprop", net.parameters(), float(params["lr_clip"]), capturable=graphs)
        bounds = clip_bounds.to(next(net.parameters()))  # on the device once, not every step
    else:
        opt = optim.make(
            "adam", net.parameters(), float(params["lr_gp"]), betas=(0.0, 0.9), capturable=graphs
        )
    lam = float(params["gp_lambda"])

    def per_copy_loss(step: int) -> torch.Tensor:
        real, fake = data_and_fake(sampler, gens, b, noise, device)
        loss = wgan_d_loss(net(real), net(fake))
        if clip_bounds is None:
            loss = loss + lam * penalty_per_copy(net, real, fake, gens)
        return loss

    def clip(step: int) -> None:
        clip_per_copy_(net, bounds)  # WGAN: after every critic update, c per copy

    after = clip if clip_bounds is not None else None
    fit(opt, per_copy_loss, steps, after_step=after, graphs=graphs)
    if clip_bounds is not None:
        for p in net.parameters():
            excess = p.detach().abs().flatten(1).amax(1).cpu() - clip_bounds.to(p.dtype)
            require(bool((excess <= 0).all()), f"clipped weights exceed c by {excess.max():.3g}")
    return net


def layer_grad_norms(
    net: BatchedMLP, sampler, gens, params: Mapping[str, Any], n_batches: int, device
) -> np.ndarray:
    """Mean over held-out batches of ||d(E_G f - E_data f) / dW_l|| per copy and layer: (C, L)."""
    b, noise = int(params["batch_size"]), float(params["fake_noise_std"])
    total = np.zeros((net.n_seeds, len(net.layers)))
    for _ in range(n_batches):
        real, fake = data_and_fake(sampler, gens, b, noise, device)
        loss = wgan_d_loss(net(real), net(fake)).sum()
        grads = torch.autograd.grad(loss, [layer.weight for layer in net.layers])
        total += torch.stack([g.flatten(1).norm(dim=1) for g in grads], 1).double().cpu().numpy()
    return total / n_batches


def activation_grad_norms(
    net: BatchedMLP, sampler, gens, params: Mapping[str, Any], n_batches: int, device
) -> np.ndarray:
    """WGAN-GP Sec. 3.2's quantity: the norm of the gradient of the critic loss
    E_G f - E_data f with respect to successive layers of activations, per copy: (C, L).

    Column 0 is the input x, column l (1..L-1) the ReLU output h_l of hidden layer l; the norm is
    over the batch and the units, averaged over held-out batches. The critic's output layer
    (whose gradient is the constant +-1/B) is not a column. A column that is exactly 0 means
    every path back from the output is dead there: the gradient vanished completely.
    """
    b, noise = int(params["batch_size"]), float(params["fake_noise_std"])
    depth = len(net.layers)
    total = np.zeros((net.n_seeds, depth))
    for _ in range(n_batches):
        real, fake = data_and_fake(sampler, gens, b, noise, device)
        x = torch.cat([real, fake], 1).requires_grad_(True)  # (C, 2B, 2)
        acts, h = [x], x
        for i, layer in enumerate(net.layers):
            h = layer(h)
            if i < depth - 1:
                h = net.act(h)
                acts.append(h)
        f_real, f_fake = h[:, :b], h[:, b:]
        loss = wgan_d_loss(f_real, f_fake).sum()
        grads = torch.autograd.grad(loss, acts)
        total += torch.stack([g.flatten(1).norm(dim=1) for g in grads], 1).double().cpu().numpy()
    return total / n_batches


def fit_slopes(norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of (C, L) norms: (slope of log10 norm against layer index over the layers whose
    norm is not exactly 0, NaN when fewer than 2 are; whether some layer's norm is exactly 0)."""
    vanished = (norms == 0).any(1)
    slopes = np.full(norms.shape[0], np.nan)
    for i, row in enumerate(norms):
        keep = row > 0
        if keep.sum() >= 2:
            x = np.arange(row.size, dtype=float)[keep]
            slopes[i] = np.polyfit(x, np.log10(row[keep]), 1)[0]
    return slopes, vanished


NORM_FLOOR = 1e-30  # a layer whose gradient is exactly 0 (every unit after it dead) counts as 1e-30


def log_slope(norms: np.ndarray) -> np.ndarray:
    """Least-squares slope of log10 norm against layer index 1..L, per row: (C, L) -> (C,).

    Norms of exactly 0 (the gradient vanished completely: some later layer has no active unit)
    are floored at ``NORM_FLOOR`` so the slope stays finite; ``dead_layers`` counts them.
    """
    layers = np.arange(1, norms.shape[1] + 1, dtype=float)
    y = np.log10(np.maximum(norms, NORM_FLOOR))
    x = layers - layers.mean()
    return ((y - y.mean(1, keepdims=True)) * x).sum(1) / (x**2).sum()


def efficiency(
    net: BatchedMLP, sampler, gens, params: Mapping[str, Any], device
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E_data f - E_G f) / (L_hat W1) per copy on held-out samples; returns (eff, est, w1).

    The solves go through ``repro.metrics.w1_pool`` (one per copy, all at once)."""
    n = int(params["n_w1"])
    real, fake = data_and_fake(sampler, gens, n, float(params["fake_noise_std"]), device)
    u = gens.uniform(n, 1).to(real)
    pts = torch.cat([real, fake, u * real + (1 - u) * fake], 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(net(pts).sum(), pts)
    lip = grad.norm(dim=-1).amax(1).double().cpu().numpy()
    with torch.no_grad():
        est = (net(real).mean((1, 2)) - net(fake).mean((1, 2))).double().cpu().numpy()
    r, f = real.double().cpu().numpy(), fake.double().cpu().numpy()
    w1 = np.array(w1_pool([(r[i], f[i]) for i in range(len(gens))]))
    return est / (lip * w1), est, w1


def surface(net: BatchedMLP, extent: float, n: int, device) -> tuple[np.ndarray, np.ndarray]:
    """Critic values on an n x n grid of [-extent, extent]^2: grid (n*n, 2), values (C, n*n)."""
    axis = torch.linspace(-extent, extent, n)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
    with torch.no_grad():
        vals = net(pts.to(device).expand(net.n_seeds, -1, -1))[..., 0]
    return pts.numpy(), vals.double().cpu().numpy()


def run(params: Mapping[str, Any], seeds: list[int], device) -> Tables:
    """Part (b) on the Swiss roll, part (a) on 8 and 25 Gaussians; all copies batched."""
    clips = [float(c) for c in params["clips"]]
    s = len(seeds)
    # (b): copies = (method, seed), methods = each clip, then the penalty
    depth, width = int(params["depth"]), int(params["width"])
    sizes = (2, *[width] * (depth - 1), 1)
    roll = toy_sampler("swissroll")
    graphs = use_graphs(device)  # the critics' training streams are static on the graph path
    copies = Copies.grid(seeds, clip=clips)
    clip_seeds = copies.seeds
    deep_clip = he_init_(BatchedMLP(sizes, clip_seeds, stream=STREAMS["critic_init"]).to(device))
    bounds = copies.column("clip")
    train_critic(
        deep_clip,
        roll,
        Stream(clip_seeds, "data", device, static=graphs),
        params,
        int(params["steps"]),
        bounds,
        device,
    )
    deep_gp = he_init_(BatchedMLP(sizes, seeds, stream=STREAMS["critic_init"]).to(device))
    train_critic(
        deep_gp,
        roll,
        Stream(seeds, "data", device, static=graphs),
        params,
        int(params["steps"]),
        None,
        device,
    )
    nb = int(params["n_eval_batches"])
    norms = np.concatenate(
        [
            layer_grad_norms(
                deep_clip, roll, Stream(clip_seeds, "eval", device), params, nb, device
            ),
            layer_grad_norms(deep_gp, roll, Stream(seeds, "eval", device), params, nb, device),
        ]
    )  # (C, L), rows: clips x seeds, then penalty x seeds
    act_norms = np.concatenate(
        [
            activation_grad_norms(
                deep_clip, roll, Stream(clip_seeds, "eval", device), params, nb, device
            ),
            activation_grad_norms(deep_gp, roll, Stream(seeds, "eval", device), params, nb, device),
        ]
    )  # (C, L): input, then hidden activations 1..L-1; rows as above
    act_slopes, act_vanished = fit_slopes(act_norms)
    methods = [f"clip {c:g}" for c in clips] + ["gradient penalty"]
    method_of = [m for m in methods for _ in seeds]
    seed_of = [sd for _ in methods for sd in seeds]
    layers = pd.DataFrame(
        [
            {"method": m, "seed": sd, "layer": layer + 1, "grad_norm": float(norms[i, layer])}
            for i, (m, sd) in enumerate(zip(method_of, seed_of, strict=True))
            for layer in range(norms.shape[1])
        ]
    )
    activations = pd.DataFrame(
        [
            {"method": m, "seed": sd, "layer": layer, "grad_norm": float(act_norms[i, layer])}
            for i, (m, sd) in enumerate(zip(method_of, seed_of, strict=True))
            for layer in range(act_norms.shape[1])
        ]
    )
    slopes = log_slope(norms)
    # (a): copies = (dataset, seed), clipping and penalty as two nets
    shallow = (2, *[int(params["surface_width"])] * 3, 1)
    eff_rows, surf_rows = [], []
    for data_name in ("8gaussians", "25gaussians"):
        sampler = toy_sampler(data_name, device)  # tables made before training
        for method, bounds_a in (
            ("clip", torch.full((s,), float(params["surface_clip"]))),
            ("gradient penalty", None),
        ):
            net = BatchedMLP(shallow, seeds, stream=STREAMS["critic_init"]).to(device)
            train_critic(
                net,
                sampler,
                Stream(seeds, "data", device, static=graphs),
                params,
                int(params["surface_steps"]),
                bounds_a,
                device,
            )
            eff, est, w1 = efficiency(net, sampler, Stream(seeds, "eval", device), params, device)
            for i, sd in enumerate(seeds):
                eff_rows.append(
                    {
                        "data": data_name,
                        "method": method,
                        "seed": sd,
                        "efficiency": eff[i],
                        "estimate": est[i],
                        "w1": w1[i],
                    }
                )
            pts, vals = surface(
                net, float(params["surface_extent"]), int(params["surface_grid"]), device
            )
            surf_rows.append(
                pd.DataFrame(
                    {
                        "data": data_name,
                        "method": method,
                        "x": pts[:, 0],
                        "y": pts[:, 1],
                        "value": vals[0],
                    }
                )
            )
    eff = pd.DataFrame(eff_rows)
    rows = []
    for i, sd in enumerate(seeds):
        row = {"seed": sd}
        for j in range(len(clips)):
            row[f"abs_slope_clip_{j}"] = float(abs(slopes[j * s + i]))
            row[f"dead_layers_clip_{j}"] = float((norms[j * s + i] == 0).sum())
        row["abs_slope_gp"] = float(abs(slopes[len(clips) * s + i]))
        row["dead_layers_gp"] = float((norms[len(clips) * s + i] == 0).sum())
        gp = len(clips) * s + i
        row["act_abs_slope_gp"] = float(abs(act_slopes[gp]))
        for j in range(len(clips)):
            k = j * s + i
            row[f"act_abs_slope_clip_{j}"] = float(abs(act_slopes[k]))
            row[f"act_vanished_clip_{j}"] = float(act_vanished[k])
            # Fig. 1b's contrast: clipping's gradient vanished completely, or it changes
            # through the depth faster than the penalised critic's (NaN if the GP's is unmeasured)
            steeper = abs(act_slopes[k]) > abs(act_slopes[gp])
            row[f"act_steeper_clip_{j}"] = (
                1.0
                if act_vanished[k]
                else float(steeper)
                if np.isfinite(act_slopes[gp])
                else np.nan
            )
        e = eff[eff["seed"] == sd].set_index(["data", "method"])["efficiency"]
        for d in ("8gaussians", "25gaussians"):
            tag = d.replace("gaussians", "g")
            row[f"eff_gp_{tag}"] = float(e[(d, "gradient penalty")])
            row[f"eff_clip_{tag}"] = float(e[(d, "clip")])
            row[f"eff_gap_{tag}"] = row[f"eff_gp_{tag}"] - row[f"eff_clip_{tag}"]
        rows.append(row)
    return {
        "seeds": pd.DataFrame(rows),
        "layers": layers,
        "activations": activations,
        "efficiency": eff,
        "surfaces": pd.concat(surf_rows, ignore_index=True),
    }


def _norm_panel(ax, table: pd.DataFrame) -> None:
    styles = ["-o", "-s", "-^", "--D"]
    for k, (method, g) in enumerate(table.groupby("method", sort=False)):
        g = g.assign(log_norm=np.log10(np.maximum(g["grad_norm"], NORM_FLOOR)))
        plots.mean_band(
            ax,
            g,
            "layer",
            "log_norm",
            label=method,
            color=f"C{k}",
            ms=3,
            marker=styles[k % 4][-1],
            ls=styles[k % 4][:-1],
        )


def fig_layer_gradients(tables: Tables, params: Mapping[str, Any], reported):
    """WGAN-GP Fig. 1b: log gradient norm of the critic loss against the critic's layers.

    Left, the paper's quantity: the gradient with respect to successive layers of activations
    (0 = the input). Right, for contrast, the gradient with respect to each layer's weights, whose
    depth trend is damped (forward and backward shrinkage partly cancel). A norm of exactly 0
    (vanished completely) is drawn at 1e-30."""
    fig, axes = plots.figure(2, width=4.4)
    _norm_panel(axes[0], tables["activations"])
    axes[0].set(
        xlabel="activation layer (0 = input, farther back to the left)",
        ylabel=r"$\log_{10}\|\nabla_{h_l}\,(E_G f - E_{data} f)\|$",
        title="Swiss roll, activations (paper's quantity)",
    )
    _norm_panel(axes[1], tables["layers"])
    axes[1].set(
        xlabel="weight layer (1 = input side)",
        ylabel=r"$\log_{10}\|\nabla_{W_l}\,(E_G f - E_{data} f)\|$",
        title="weights (contrast)",
    )
    axes[0].legend(fontsize=7)
    return fig


def fig_value_surfaces(tables: Tables, params: Mapping[str, Any], reported):
    """WGAN-GP Fig. 1a style: critic value surfaces (first seed), clipping vs penalty."""
    surf = tables["surfaces"]
    fig, axes = plots.figure(2, 2, width=3.4, height=3.2)
    n = int(params["surface_grid"])
    for r, method in enumerate(("clip", "gradient penalty")):
        for c, data_name in enumerate(("8gaussians", "25gaussians")):
            ax = axes[r, c]
            g = surf[(surf["data"] == data_name) & (surf["method"] == method)]
            ax.contourf(
                g["x"].to_numpy().reshape(n, n),
                g["y"].to_numpy().reshape(n, n),
                g["value"].to_numpy().reshape(n, n),
                levels=20,
                cmap="viridis",
            )
            means = (
                ring_means(8, 2.0) / 1.414
                if data_name == "8gaussians"
                else grid_means(5, 2.0) / 2.828
            ).numpy()
            ax.plot(means[:, 0], means[:, 1], "w+", ms=5)
            label = f"clip c = {params['surface_clip']:g}" if method == "clip" else "penalty"
            ax.set(title=f"{data_name}, {label}", xlabel="$x_1$", ylabel="$x_2$")
            ax.set_aspect("equal")
    return fig


EXPERIMENT = Experiment(
    run=run,
    params=(
        "clips",
        "depth",
        "width",
        "steps",
        "batch_size",
        "lr_clip",
        "lr_gp",
        "gp_lambda",
        "fake_noise_std",
        "n_eval_batches",
        "surface_width",
        "surface_steps",
        "surface_clip",
        "surface_extent",
        "surface_grid",
        "n_w1",
    ),
    metrics=(
        "abs_slope_clip_0",
        "abs_slope_clip_1",
        "abs_slope_clip_2",
        "abs_slope_gp",
        "dead_layers_clip_0",
        "dead_layers_clip_1",
        "dead_layers_clip_2",
        "dead_layers_gp",
        "eff_gp_8g",
        "eff_clip_8g",
        "eff_gap_8g",
        "eff_gp_25g",
        "eff_clip_25g",
        "eff_gap_25g",
        "act_abs_slope_clip_0",
        "act_abs_slope_clip_1",
        "act_abs_slope_clip_2",
        "act_abs_slope_gp",
        "act_vanished_clip_0",
        "act_vanished_clip_1",
        "act_vanished_clip_2",
        "act_steeper_clip_0",
        "act_steeper_clip_1",
        "act_steeper_clip_2",
    ),
    figures={"layer_gradients": fig_layer_gradients, "value_surfaces": fig_value_surfaces},
    doc=__doc__ or "",
)
