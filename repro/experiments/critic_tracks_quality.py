"""critic-tracks-quality (Arjovsky, Chintala & Bottou 2017, WGAN Sec. 4.2, Figs. 3-4): while a
weight-clipped WGAN trains on a ring of Gaussians (in a 2-D plane of R^ambient_dim, so that data
and samples lie on near-disjoint low-dimensional supports), its critic's held-out estimate
E_data f - E_G f rises and falls with the exact W1 between generated samples and data (Spearman
rank correlation across checkpoints); for a standard GAN on the same data the JS estimate of its
discriminator is compared with the exact W1 in the same way.
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
from repro.data import GaussianMixture, ring_means, sample_normal
from repro.engine import STREAMS, gan, optim, use_graphs
from repro.engine.streams import Stream
from repro.experiments import Experiment, Tables
from repro.losses import get_objective
from repro.metrics import w1_pool
from repro.nets import BatchedMLP
from repro.train import clip_parameters_


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equal-length 1-D arrays (average ranks for ties)."""
    ra = pd.Series(a).rank().to_numpy()
    rb = pd.Series(b).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])


def _mixture(params: Mapping[str, Any], device: Any = None):
    """The ring of Gaussians in the plane of the first two of ``ambient_dim`` coordinates (the
    others 0): with ``ambient_dim`` > 2 the data lie on a 2-D plane of R^ambient_dim, and a
    generator from R^z_dim almost surely puts its mass off it (Arjovsky & Bottou 2017, Lemma 2 /
    Thm 2.1: near-disjoint supports, the regime of WGAN Fig. 4). ``ambient_dim`` = 2 is the
    plain 2-D ring."""
    means = ring_means(int(params["n_modes"]), float(params["ring_radius"]))
    pad = int(params["ambient_dim"]) - means.shape[1]
    if pad < 0:
        raise ValueError(f"ambient_dim must be >= 2, got {params['ambient_dim']}")

    mixture = GaussianMixture(means, float(params["mode_std"]))
    if device is not None:
        mixture.prepare(device)  # its device tables made before the first training step

    def sample(gens, batch, device=None):
        x = mixture.sample(gens, batch, device=device)
        return F.pad(x, (0, pad)) if pad else x

    return sample


def _gan_pair(params: Mapping[str, Any], seeds: Sequence[int], device):
    z_dim, h, depth = int(params["z_dim"]), int(params["hidden"]), int(params["depth"])
    x_dim = int(params["ambient_dim"])
    g = BatchedMLP((z_dim, *[h] * depth, x_dim), seeds, stream=STREAMS["g_init"]).to(device)
    d = BatchedMLP((x_dim, *[h] * depth, 1), seeds, stream=STREAMS["d_init"]).to(device)
    return g, d


def evaluate_checkpoint(
    g: BatchedMLP, d: BatchedMLP, real_sampler, params: Mapping[str, Any], seeds, kind: str, device
) -> dict[str, torch.Tensor]:
    """On fresh held-out batches (evaluation stream, restarted so every checkpoint sees the same
    real samples and latent codes): the net's estimate (S,) and the first ``n_w1`` real and fake
    samples (S, n_w1, ambient_dim), whose exact W1 (``w1_after``) is solved after training.

    WGAN: E_real f - E_fake f. GAN: V/2 + log 2 with V = E log D(real) + E log(1 - D(fake)),
    the JS estimate of WGAN Sec. 4.2 / Fig. 4.
    """
    gens = Stream(seeds, "eval", device)
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
    """Exact W1 (POT) per seed at every evaluation, from the samples kept during training,
    solved through ``repro.metrics.w1_pool``."""
    n = len(seeds)
    pairs = []
    for _, ev in evals:
        r, f = ev["real"].double().cpu().numpy(), ev["fake"].double().cpu().numpy()
        pairs += [(r[i], f[i]) for i in range(n)]
    w1 = w1_pool(pairs)  # every evaluation's solves at once, in a process pool
    return [np.array(w1[j * n : (j + 1) * n]) for j in range(len(evals))]


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
    real = _mixture(params, device)
    graphs = use_graphs(device)  # D steps (with clipping) and G steps captured on CUDA
    if kind == "wgan":
        obj = get_objective("wgan", clip=float(params["clip"]))
        clip_parameters_(d, obj.clip)
        lr = float(params["lr_wgan"])
        opt_g = optim.make("rmsprop", g.parameters(), lr, capturable=graphs)
        opt_d = optim.make("rmsprop", d.parameters(), lr, capturable=graphs)
    else:
        obj = get_objective("non-saturating")
        betas, lr = (0.5, 0.999), float(params["lr_gan"])
        opt_g = optim.make("adam", g.parameters(), lr, betas=betas, capturable=graphs)
        opt_d = optim.make("adam", d.parameters(), lr, betas=betas, capturable=graphs)
    gens = Stream(seeds, "data", device, static=graphs)
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
        graphs=graphs,
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


EXPERIMENT = Experiment(
    run=run_critic_tracks_quality,
    params=(
        "n_modes",
        "ring_radius",
        "mode_std",
        "ambient_dim",
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
