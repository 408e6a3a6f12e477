"""The Wasserstein critic against the GAN discriminator (Arjovsky, Chintala & Bottou 2017).

``wgan-critic-vs-discriminator`` (WGAN Fig. 2): two separated 1-D Gaussians, real
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
import torch.nn.functional as F

from repro import divergences as dv
from repro import plots
from repro.data import ring_means, sample_mixture, sample_mixture_1d, sample_normal
from repro.engine import STREAMS, fit, gan, generators, optim
from repro.experiments import Experiment, Tables
from repro.losses import gan_d_loss, get_objective, wgan_d_loss
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


def _gaussians(params: Mapping[str, Any], gens, batch: int, device):
    real = sample_mixture_1d(gens, batch, [params["real_mean"]], params["real_std"], device=device)
    fake = sample_mixture_1d(gens, batch, [params["fake_mean"]], params["fake_std"], device=device)
    return real, fake  # (S, B, 1) each


def train_pair(
    params: Mapping[str, Any], seeds: Sequence[int], device
) -> tuple[BatchedMLP, BatchedMLP]:
    """D (GAN loss, Adam) and the clipped critic (WGAN loss, RMSProp, clip after every step)."""
    sizes = (1, *[int(params["hidden"])] * int(params["depth"]), 1)
    d_net = BatchedMLP(sizes, seeds, stream=STREAMS["d_init"]).to(device)
    critic = BatchedMLP(sizes, seeds, stream=STREAMS["critic_init"]).to(device)
    clip = float(params["clip"])
    clip_parameters_(critic, clip)  # start inside the constraint set, as after any WGAN step
    opts = optim.Chain(
        optim.make("adam", d_net.parameters(), float(params["lr_d"])),
        optim.make("rmsprop", critic.parameters(), float(params["lr_critic"])),
    )
    gens = generators(seeds, "data")

    def per_copy_loss(step: int) -> torch.Tensor:
        real, fake = _gaussians(params, gens, int(params["batch_size"]), device)
        # disjoint parameters: one backward of the sum serves both nets
        return gan_d_loss(d_net(real), d_net(fake)) + wgan_d_loss(critic(real), critic(fake))

    fit(
        opts,
        per_copy_loss,
        int(params["steps"]),
        after_step=lambda step: clip_parameters_(critic, clip),
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
    real, fake = _gaussians(params, generators(seeds, "eval"), n, device)
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


# ---------------------------------------------------------------------------------------------
# critic-tracks-quality (WGAN Sec. 4.2, Figs. 3-4)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equal-length 1-D arrays (average ranks for ties)."""
    ra = pd.Series(a).rank().to_numpy()
    rb = pd.Series(b).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])


def _mixture(params: Mapping[str, Any]):
    means = ring_means(int(params["n_modes"]), float(params["ring_radius"]))
    return lambda gens, batch, device=None: sample_mixture(
        gens, batch, means, float(params["mode_std"]), device=device
    )


def _gan_pair(params: Mapping[str, Any], seeds: Sequence[int], device):
    z_dim, h, depth = int(params["z_dim"]), int(params["hidden"]), int(params["depth"])
    g = BatchedMLP((z_dim, *[h] * depth, 2), seeds, stream=STREAMS["g_init"]).to(device)
    d = BatchedMLP((2, *[h] * depth, 1), seeds, stream=STREAMS["d_init"]).to(device)
    return g, d


def evaluate_checkpoint(
    g: BatchedMLP, d: BatchedMLP, real_sampler, params: Mapping[str, Any], seeds, kind: str, device
) -> dict[str, torch.Tensor]:
    """On fresh held-out batches (evaluation stream, reseeded so every checkpoint sees the same
    real samples and latent codes): the net's estimate (S,) and the first ``n_w1`` real and fake
    samples (S, n_w1, 2), whose exact W1 (``w1_after``) is solved after training.

    WGAN: E_real f - E_fake f. GAN: V/2 + log 2 with V = E log D(real) + E log(1 - D(fake)),
    the JS estimate of WGAN Sec. 4.2 / Fig. 4.
    """
    gens = generators(seeds, "eval")
    n = int(params["n_eval"])
    with torch.no_grad():
        real = real_sampler(gens, n, device=device)
        fake = g(sample_normal(gens, n, int(params["z_dim"]), device=device))
        lr_, lf = d(real), d(fake)
        if kind == "wgan":
            est = lr_.mean((1, 2)) - lf.mean((1, 2))
        else:
            value = F.logsigmoid(lr_).mean((1, 2)) + F.logsigmoid(-lf).mean((1, 2))
            est = 0.5 * value + dv.LOG2
    m = int(params["n_w1"])
    return {"estimate": est, "real": real[:, :m], "fake": fake[:, :m]}


def w1_after(evals, seeds: Sequence[int]) -> list[np.ndarray]:
    """Exact W1 (POT) per seed at every evaluation, from the samples kept during training."""
    out = []
    for _, ev in evals:
        r, f = ev["real"].double().cpu().numpy(), ev["fake"].double().cpu().numpy()
        out.append(np.array([dv.w1_samples(r[i], f[i]) for i in range(len(seeds))]))
    return out


def critic_steps(params: Mapping[str, Any], kind: str, g_step: int) -> int:
    """D / critic steps before G step ``g_step`` (0-based).

    WGAN: ``d_steps``, except ``warmup_d_steps`` for the first ``warmup_g_steps`` G steps and at
    every ``warmup_every``-th (the WGAN authors' code: 100 critic iterations while
    gen_iterations < 25 or gen_iterations % 500 == 0, so the critic starts and stays near its
    optimum); ``warmup_d_steps: 0`` turns this off. GAN: ``gan_d_steps`` always.
    """
    if kind != "wgan":
        return int(params["gan_d_steps"])
    warm = int(params["warmup_d_steps"])
    if warm > 0 and (
        g_step < int(params["warmup_g_steps"]) or g_step % int(params["warmup_every"]) == 0
    ):
        return warm
    return int(params["d_steps"])


def train_tracking(
    params: Mapping[str, Any], seeds: Sequence[int], device, kind: str
) -> pd.DataFrame:
    """Train a WGAN (clipping, RMSProp, ``d_steps`` critic steps per G step) or a GAN
    (non-saturating, Adam, ``gan_d_steps``) on the ring mixture with ``repro.engine.gan``;
    evaluate at step 0 and every ``eval_every`` G steps, the exact W1 after training."""
    g, d = _gan_pair(params, seeds, device)
    real = _mixture(params)
    if kind == "wgan":
        obj = get_objective("wgan", clip=float(params["clip"]))
        clip_parameters_(d, obj.clip)
        opt_g = optim.make("rmsprop", g.parameters(), float(params["lr_wgan"]))
        opt_d = optim.make("rmsprop", d.parameters(), float(params["lr_wgan"]))
    else:
        obj = get_objective("non-saturating")
        betas = (0.5, 0.999)
        opt_g = optim.make("adam", g.parameters(), float(params["lr_gan"]), betas=betas)
        opt_d = optim.make("adam", d.parameters(), float(params["lr_gan"]), betas=betas)
    gens = generators(seeds, "data")
    z_dim, b = int(params["z_dim"]), int(params["batch_size"])
    steps, every = int(params["steps"]), int(params["eval_every"])

    def d_loss(step: int, i: int) -> torch.Tensor:
        x = real(gens, b, device=device)
        z = sample_normal(gens, b, z_dim, device=device)
        with torch.no_grad():
            fake = g(z)  # only D learns here
        return obj.d_loss(d(x), d(fake))

    def clip(step: int, i: int) -> None:
        if obj.clip is not None:
            clip_parameters_(d, obj.clip)

    def g_loss(step: int) -> torch.Tensor:
        return obj.g_loss(d(g(sample_normal(gens, b, z_dim, device=device))))

    result = gan(
        opt_d,
        opt_g,
        d_loss,
        g_loss,
        steps,
        d_steps=lambda step: critic_steps(params, kind, step),
        discriminator=d,
        after_d_step=clip,
        evaluate=lambda step: evaluate_checkpoint(g, d, real, params, seeds, kind, device),
        eval_at=[t for t in range(steps + 1) if t % every == 0 or t == steps],
    )
    rows = []
    for (step_, ev), w1 in zip(result.evals, w1_after(result.evals, seeds), strict=True):
        estimate = ev["estimate"].double().cpu().numpy()
        for i, seed in enumerate(seeds):
            rows.append(
                {"model": kind, "seed": seed, "step": step_, "estimate": estimate[i], "w1": w1[i]}
            )
    return pd.DataFrame(rows)


def tracking_per_seed(curves: pd.DataFrame) -> pd.DataFrame:
    """Per seed: Spearman(estimate, W1) across the checkpoints after step 0 (at step 0 neither
    net has been trained, so its output estimates nothing), W1 end / start (step 0 included),
    and the GAN's median gap log 2 - JS estimate over the checkpoints after step 0."""
    rows = []
    for seed, c in curves.groupby("seed"):
        w, g = c[c["model"] == "wgan"], c[c["model"] == "gan"]
        w_late, g_late = w[w["step"] > 0], g[g["step"] > 0]
        rows.append(
            {
                "seed": int(seed),
                "wgan_spearman": spearman(w_late["estimate"].to_numpy(), w_late["w1"].to_numpy()),
                "gan_spearman": spearman(g_late["estimate"].to_numpy(), g_late["w1"].to_numpy()),
                "wgan_w1_ratio": float(w["w1"].iloc[-1] / w["w1"].iloc[0]),
                "gan_w1_ratio": float(g["w1"].iloc[-1] / g["w1"].iloc[0]),
                "gan_js_gap_median": float((dv.LOG2 - g_late["estimate"]).median()),
                # a dead critic: E_r f - E_g f <= 0 although f = 0 lies in the clipped class
                # (so its optimum is >= 0); the share of checkpoints after step 0 where it is
                "wgan_dead_frac": float((w_late["estimate"] <= 0).mean()),
                "wgan_w1_end": float(w["w1"].iloc[-1]),
                "gan_w1_end": float(g["w1"].iloc[-1]),
            }
        )
    out = pd.DataFrame(rows)
    # WGAN Sec. 4.2's comparison: the critic's estimate tracks quality, the JS estimate does not
    return out.assign(spearman_gap=out["wgan_spearman"] - out["gan_spearman"])


def run_critic_tracks_quality(params: Mapping[str, Any], seeds: list[int], device) -> Tables:
    """WGAN and GAN on the same mixture; estimates vs exact W1 across checkpoints."""
    curves = pd.concat(
        [train_tracking(params, seeds, device, kind) for kind in ("wgan", "gan")],
        ignore_index=True,
    )
    return {"seeds": tracking_per_seed(curves), "curves": curves}


def fig_critic_tracks_quality(tables: Tables, params: Mapping[str, Any], reported):
    """WGAN Figs. 3-4 style: each net's estimate (left axis) and the exact W1 (right axis)."""
    curves = tables["curves"]
    fig, axes = plots.figure(2, width=4.4)
    for ax, model, label, color in [
        (axes[0], "wgan", "WGAN critic estimate $E_r f - E_g f$", "C0"),
        (axes[1], "gan", "GAN JS estimate $V/2 + \\log 2$", "C3"),
    ]:
        c = curves[curves["model"] == model]
        trained = c[c["step"] > 0]  # at step 0 the net is untrained: no estimate
        plots.mean_band(ax, trained, "step", "estimate", label=label, color=color, marker=".")
        ax.set(xlabel="generator iterations", ylabel="estimate (critic units / nats)")
        if model == "gan":
            ax.axhline(dv.LOG2, color="0.4", ls=":", lw=1, label="log 2")
        ax2 = ax.twinx()
        plots.mean_band(
            ax2, c, "step", "w1", label="exact $W_1$ (POT, held out)", color="k", ls="--"
        )
        ax2.set_ylabel("$W_1$(samples, data) (distance units)")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
        ax.set_title(f"{model.upper()} (mean, min-max over seeds)")
    return fig


CRITIC_TRACKS_QUALITY = Experiment(
    run=run_critic_tracks_quality,
    params=(
        "n_modes",
        "ring_radius",
        "mode_std",
        "z_dim",
        "hidden",
        "depth",
        "steps",
        "d_steps",
        "warmup_d_steps",
        "warmup_g_steps",
        "warmup_every",
        "gan_d_steps",
        "batch_size",
        "lr_wgan",
        "lr_gan",
        "clip",
        "eval_every",
        "n_eval",
        "n_w1",
    ),
    metrics=(
        "wgan_spearman",
        "gan_spearman",
        "wgan_w1_ratio",
        "gan_w1_ratio",
        "gan_js_gap_median",
        "wgan_w1_end",
        "gan_w1_end",
        "wgan_dead_frac",
        "spearman_gap",
    ),
    figures={"critic_tracks_quality": fig_critic_tracks_quality},
    doc=__doc__ or "",
)


WGAN_CRITIC_VS_DISCRIMINATOR = Experiment(
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
