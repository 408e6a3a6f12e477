"""wgan-critic-vs-discriminator (Arjovsky, Chintala & Bottou 2017, WGAN Fig. 2).

Two separated 1-D Gaussians, real
N(real_mean, real_std^2) and fake N(fake_mean, fake_std^2), both fixed. A GAN discriminator D
(cross-entropy, Adam) and a WGAN critic f (weight clipping, RMSProp, the paper's defaults) are
trained side by side on the same fresh batches, every seed a copy in the leading dimension of the
batched nets. On held-out fake samples we measure the slope the generator would receive:

    D:  dD/dx = sigmoid(l) sigmoid(-l) dl/dx  (D = sigmoid(l)), which saturates to 0 once D is
        confident there;
    f:  df/dx, which for a clipped critic is nearly constant and points towards the real data.

Both slopes are reported relative to the same net's largest |slope| on a grid covering both
Gaussians, so the two nets' different output scales (a clipped critic's f is K times a
1-Lipschitz function for an unknown K) do not enter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from repro import plots
from repro.data import GaussianMixture, mixture_1d
from repro.engine import STREAMS, Stream, fit, optim, use_graphs
from repro.experiments import Experiment, Tables
from repro.losses import gan_d_loss, wgan_d_loss
from repro.metrics import d_accuracy
from repro.nets import BatchedMLP
from repro.train import clip_parameters_


def input_slope(net: BatchedMLP, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The net's output and d output / dx at every sample: x (S, B, 1) -> ((S, B), (S, B)).

    Every output depends on its own input only (no batch norm), so the gradient of the sum
    gives every per-sample derivative at once.
    """
    x = x.detach().requires_grad_(True)
    out = net(x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    return out.detach()[..., 0], grad[..., 0]


def sigmoid_slope(logits: torch.Tensor, dlogits: torch.Tensor) -> torch.Tensor:
    """dD/dx for D = sigmoid(l): sigmoid(l) sigmoid(-l) dl/dx (exact, no cancellation)."""
    return torch.sigmoid(logits) * torch.sigmoid(-logits) * dlogits


def _pair(params: Mapping[str, Any], device) -> tuple[GaussianMixture, GaussianMixture]:
    """The real and the fake 1-D Gaussian, their device tables made once."""
    return tuple(
        mixture_1d(None, (float(params[f"{side}_mean"]),), float(params[f"{side}_std"])).prepare(
            device
        )
        for side in ("real", "fake")
    )


def _gaussians(params: Mapping[str, Any], gens: Stream, batch: int, device, pair=None):
    """Real and fake batches, (S, B, 1) each; ``pair``: ``_pair(params, device)``."""
    real_mix, fake_mix = pair if pair is not None else _pair(params, device)
    return real_mix.sample(gens, batch, device=device), fake_mix.sample(gens, batch, device=device)


def train_pair(
    params: Mapping[str, Any], seeds: Sequence[int], device
) -> tuple[BatchedMLP, BatchedMLP]:
    """D (GAN loss, Adam) and the clipped critic (WGAN loss, RMSProp, clip after every step)."""
    sizes = (1, *[int(params["hidden"])] * int(params["depth"]), 1)
    d_net = BatchedMLP(sizes, seeds, stream=STREAMS["d_init"]).to(device)
    critic = BatchedMLP(sizes, seeds, stream=STREAMS["critic_init"]).to(device)
    clip = float(params["clip"])
    clip_parameters_(critic, clip)  # start inside the constraint set, as after any WGAN step
    graphs = use_graphs(device)  # each update (with its clipping) a captured CUDA graph on CUDA
    opts = optim.Chain(
        optim.make("adam", d_net.parameters(), float(params["lr_d"]), capturable=graphs),
        optim.make("rmsprop", critic.parameters(), float(params["lr_critic"]), capturable=graphs),
    )
    gens = Stream(seeds, "data", device, static=graphs)
    pair = _pair(params, device)

    def per_copy_loss(step: int) -> torch.Tensor:
        real, fake = _gaussians(params, gens, int(params["batch_size"]), device, pair)
        # disjoint parameters: one backward of the sum serves both nets
        return gan_d_loss(d_net(real), d_net(fake)) + wgan_d_loss(critic(real), critic(fake))

    fit(
        opts,
        per_copy_loss,
        int(params["steps"]),
        after_step=lambda step: clip_parameters_(critic, clip),
        graphs=graphs,
    )
    return d_net, critic


def slopes_on(d_net: BatchedMLP, critic: BatchedMLP, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """D(x), dD/dx, f(x), df/dx at x (S, N, 1): each (S, N)."""
    logits, dlogits = input_slope(d_net, x)
    f, df = input_slope(critic, x)
    return {
        "d": torch.sigmoid(logits),
        "d_slope": sigmoid_slope(logits, dlogits),
        "critic": f,
        "critic_slope": df,
    }


def run_critic_vs_discriminator(params: Mapping[str, Any], seeds: list[int], device) -> Tables:
    """Train D and the critic per seed; slopes on held-out fakes and on a grid."""
    d_net, critic = train_pair(params, seeds, device)
    n = int(params["n_eval"])
    real, fake = _gaussians(params, Stream(seeds, "eval", device), n, device)
    with torch.no_grad():
        acc = d_accuracy(d_net(real), d_net(fake))
    on_fake = slopes_on(d_net, critic, fake)
    lo = min(params["real_mean"], params["fake_mean"]) - float(params["grid_margin"])
    hi = max(params["real_mean"], params["fake_mean"]) + float(params["grid_margin"])
    grid = torch.linspace(lo, hi, int(params["grid_size"]), device=device)
    on_grid = slopes_on(d_net, critic, grid.reshape(1, -1, 1).expand(len(seeds), -1, -1))
    toward_real = float(np.sign(params["real_mean"] - params["fake_mean"]))
    d_max = on_grid["d_slope"].abs().amax(1)  # (S,)
    c_max = on_grid["critic_slope"].abs().amax(1)
    c_fake = on_fake["critic_slope"]
    seeds_table = pd.DataFrame(
        {
            "seed": seeds,
            "d_accuracy": acc.double().cpu().numpy(),
            "gan_slope_fake_rel": (on_fake["d_slope"].abs().mean(1) / d_max).cpu().numpy(),
            "gan_slope_fake_abs": on_fake["d_slope"].abs().mean(1).cpu().numpy(),
            "critic_slope_fake_rel": (c_fake.abs().mean(1) / c_max).cpu().numpy(),
            "critic_slope_fake_cv": (c_fake.std(1) / c_fake.mean(1).abs()).cpu().numpy(),
            "critic_toward_real_frac": (c_fake * toward_real > 0).double().mean(1).cpu().numpy(),
        }
    )
    x = grid.cpu().numpy()
    curves = pd.concat(
        [
            pd.DataFrame(
                {"seed": seed, "x": x, **{k: v[i].cpu().numpy() for k, v in on_grid.items()}}
            )
            for i, seed in enumerate(seeds)
        ],
        ignore_index=True,
    )
    samples = pd.DataFrame(
        {
            "seed": np.repeat(seeds, n),
            "real": real[..., 0].reshape(-1).cpu().numpy(),
            "fake": fake[..., 0].reshape(-1).cpu().numpy(),
        }
    )
    return {"seeds": seeds_table, "curves": curves, "samples": samples}


def fig_critic_vs_discriminator(tables: Tables, params: Mapping[str, Any], reported):
    """WGAN Fig. 2 style: data densities, D(x) and the (rescaled) critic; |slope| on a log axis."""
    curves, samples = tables["curves"], tables["samples"]
    seed0 = curves["seed"].min()
    c0 = curves[curves["seed"] == seed0]
    s0 = samples[samples["seed"] == seed0]
    fig, (ax, ax_s) = plots.figure(2, width=4.6)
    bins = np.linspace(c0["x"].min(), c0["x"].max(), 80)
    ax.hist(s0["real"], bins, density=True, color="C2", alpha=0.35, label="real density")
    ax.hist(s0["fake"], bins, density=True, color="C1", alpha=0.35, label="fake density")
    ax.plot(c0["x"], c0["d"], color="C3", lw=2, label="GAN discriminator $D(x)$")
    f = c0["critic"]
    ax.plot(
        c0["x"],
        (f - f.min()) / (f.max() - f.min()),
        color="C0",
        lw=2,
        label="WGAN critic $f(x)$ (min-max rescaled)",
    )
    ax.set(xlabel="$x$", ylabel="value / density", title=f"trained nets (seed {seed0})")
    ax.legend(fontsize=7, loc="center left")
    for col, color, label in [
        ("d_slope", "C3", r"GAN $|dD/dx|$"),
        ("critic_slope", "C0", r"critic $|df/dx|$"),
    ]:
        rel = curves.assign(
            r=curves[col].abs() / curves.groupby("seed")[col].transform(lambda v: v.abs().max())
        )
        plots.mean_band(ax_s, rel, "x", "r", label=label, color=color)
    ax_s.axvspan(
        params["fake_mean"] - 2 * params["fake_std"],
        params["fake_mean"] + 2 * params["fake_std"],
        color="C1",
        alpha=0.15,
        label=r"fake mean $\pm$ 2 std",
    )
    ax_s.set_yscale("log")
    ax_s.set(
        xlabel="$x$",
        ylabel="|slope| / its max on the grid",
        title="input gradient (mean, min-max over seeds)",
        ylim=(1e-8, 2),
    )
    ax_s.legend(fontsize=7, loc="lower left")
    return fig


EXPERIMENT = Experiment(
    run=run_critic_vs_discriminator,
    params=(
        "real_mean",
        "real_std",
        "fake_mean",
        "fake_std",
        "hidden",
        "depth",
        "steps",
        "batch_size",
        "lr_d",
        "lr_critic",
        "clip",
        "n_eval",
        "grid_margin",
        "grid_size",
    ),
    metrics=(
        "d_accuracy",
        "gan_slope_fake_rel",
        "gan_slope_fake_abs",
        "critic_slope_fake_rel",
        "critic_slope_fake_cv",
        "critic_toward_real_frac",
    ),
    figures={"critic_vs_discriminator": fig_critic_vs_discriminator},
    doc=__doc__ or "",
)
