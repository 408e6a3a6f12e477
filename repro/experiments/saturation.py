"""saturation: the minimax generator cost saturates early in learning (Goodfellow 2014, Sec. 3).

With D's logit l, D = sigmoid(l), the slopes of the two generator costs are
d/dl log(1 - sigmoid(l)) = -sigmoid(l) and d/dl [-log sigmoid(l)] = -(1 - sigmoid(l)). We train
two GANs per seed from the SAME initial G and D on the 8x8 digits, one with each generator cost
(SGD with momentum, k = 1, as in the paper's Algorithm 1), and observe, on held-out samples:
whether D becomes confident early (the premise), the gradient norm each G follows, both costs'
gradients at the same state, and learning progress (exact W1 to the data). Both runs of all
seeds are one batched model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from repro import losses, metrics
from repro.data import EpochSampler, load_digits_images, sample_normal
from repro.engine import gan, optim
from repro.engine.streams import Stream
from repro.experiments import Experiment, Tables
from repro.invariants import require
from repro.nets import ConvDiscriminator, ConvGenerator
from repro.plots import figure, mean_band

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
    return w1_to_data_all([fake], real)[0]


def w1_to_data_all(fakes: Sequence[torch.Tensor], real: np.ndarray) -> list[np.ndarray]:
    """Exact W1 (pixel space, Euclidean) between each copy's samples and the held-out digits, at
    every evaluation: all solves at once through ``metrics.w1_pool`` (after training).

    fakes: one (K, n, 1, 8, 8) per evaluation, real (n, 64) -> one (K,) array per evaluation.
    """
    flat = [f.detach().double().cpu().reshape(f.shape[0], f.shape[1], -1).numpy() for f in fakes]
    w1 = metrics.w1_pool([(f, real) for per_eval in flat for f in per_eval])
    k = [len(per_eval) for per_eval in flat]
    return [np.array(w1[sum(k[:i]) : sum(k[: i + 1])]) for i in range(len(k))]


def w1_mean_image(train: torch.Tensor, held_out: torch.Tensor) -> float:
    """W1 between the training digits' mean image (every sample that one image) and the held-out
    digits: with a point mass, W1 is the mean distance to it (closed form, no solver).

    The structureless reference for "G learned the data": a generator that always outputs the
    average digit. Pixel space, Euclidean, as ``w1_to_data``.
    """
    mean = train.reshape(len(train), -1).double().mean(0)
    return float((held_out.reshape(len(held_out), -1).double() - mean).norm(dim=1).mean())


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


def generator(seeds: Sequence[int], z_dim: int, channels: int, norm: str) -> ConvGenerator:
    """G: the suite's DCGAN family in its small 8x8 form, as registered: PyTorch-default init,
    Linear -> (2c, 4, 4) -> [BN] -> ReLU -> ConvT -> (c, 8, 8) -> [BN] -> ReLU -> 3x3 conv."""
    return ConvGenerator(seeds, z_dim, channels, 8, norm, init="default", out_kernel=3)


def discriminator(seeds: Sequence[int], channels: int) -> ConvDiscriminator:
    """D: two stride-2 4x4 convs (c, 2c), LeakyReLU 0.2, a linear; no batch norm, PyTorch-default
    init."""
    return ConvDiscriminator(seeds, channels, 8, "none", init="default")


def train_pair(params: Mapping[str, Any], seeds: Sequence[int], device: Any):
    """Train the minimax and the non-saturating GAN of every seed as one batched model.

    Copy o * S + s of G and of D is initialised from seed s (the same weights for both
    objectives) and draws its minibatches and noise from the data stream keyed by s alone, so
    the two runs of a seed see the same numbers. Plain SGD with momentum for both players and
    k = 1 D step per G step, as in Goodfellow et al. 2014 (Algorithm 1). Returns curves, G, D.
    """
    p, s = params, len(seeds)
    copy_seeds = [int(x) for _ in OBJECTIVES for x in seeds]
    z_dim = int(p["z_dim"])
    G = generator(copy_seeds, z_dim, int(p["g_channels"]), str(p["g_norm"])).to(device)
    D = discriminator(copy_seeds, int(p["d_channels"])).to(device)
    opt_g = optim.make("sgd-momentum", G.parameters(), float(p["lr_g"]), momentum=p["momentum"])
    opt_d = optim.make("sgd-momentum", D.parameters(), float(p["lr_d"]), momentum=p["momentum"])
    gens = Stream(copy_seeds, "data", device)
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
        return _evaluate(G, D, p, held_out, Stream(copy_seeds, "eval", device), device)

    # eager (no graphs): EpochSampler reshuffles on the host, which a replayed graph would skip
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
    w1 = w1_to_data_all([ev["fake"] for _, ev in result.evals], held)
    rows = []
    for (step, ev), w1_step in zip(result.evals, w1, strict=True):
        stats = {k: v.double().cpu().numpy() for k, v in ev.items() if k != "fake"}
        stats["w1"] = w1_step
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


def saturation_seed_table(
    curves: pd.DataFrame, params: Mapping[str, Any], w1_mean: float
) -> pd.DataFrame:
    """Per-seed metrics from the curves (pure: table in, table out); ``w1_mean`` is
    :func:`w1_mean_image` of the run's split.

    Early window = evaluations at steps in (0, early_steps]. From the minimax run:
    d_fake_median_early, the smallest median D(G(z)) in the window (how confidently D rejects
    the fakes at its most confident; the premise), at step t* where it is reached;
    log10_grad_ratio_same_state, log10(||grad -log D|| / ||grad log(1 - D)||) at t* (both costs at
    the same G, D and z). Across the runs: log10_grad_ratio_runs, the mean over the window of
    log10(||grad||, non-saturating run's own cost / minimax run's own cost);
    w1_log10_ratio_early, log10(W1 minimax / W1 non-saturating) to the held-out digits at step
    early_steps (> 0: the non-saturating run is closer), w1_log10_ratio_run, the mean of that
    log ratio over every evaluation after step 0 (the gap between the two learning curves over
    the run, not one snapshot), and w1_log10_ratio_end at the last step;
    w1_start, w1_minimax_end, w1_ns_end: W1 at step 0 (both runs) and at the last step;
    w1_ns_end_vs_mean_image = w1_ns_end / w1_mean (< 1: the non-saturating G ends closer to the
    held-out digits than a generator that always outputs the average training digit).
    """
    early, end = int(params["early_steps"]), int(curves.step.max())
    in_window = (curves.step > 0) & (curves.step <= early)
    mm = curves[in_window & (curves.objective == "minimax")]
    star = mm.loc[mm.groupby("seed")["d_fake_median"].idxmin()].set_index("seed")
    ns = curves[in_window & (curves.objective == "non-saturating")].set_index(["seed", "step"])
    ratio = ns["grad_non_saturating"] / mm.set_index(["seed", "step"])["grad_minimax"]
    w1_mm, w1_ns = _at(curves, "minimax", end, "w1"), _at(curves, "non-saturating", end, "w1")
    w1_early = _at(curves, "minimax", early, "w1") / _at(curves, "non-saturating", early, "w1")
    # every evaluation after the start: the gap between the two learning curves over the run
    after = curves[curves.step > 0].pivot_table(
        index=["seed", "step"], columns="objective", values="w1"
    )
    w1_run = np.log10(after["minimax"] / after["non-saturating"]).groupby(level="seed").mean()
    out = pd.DataFrame(
        {
            "d_fake_median_early": star["d_fake_median"],
            "step_most_confident": star["step"].astype(float),
            "log10_grad_ratio_same_state": np.log10(
                star["grad_non_saturating"] / star["grad_minimax"]
            ),
            "log10_grad_ratio_runs": np.log10(ratio).groupby(level="seed").mean(),
            "w1_log10_ratio_early": np.log10(w1_early),
            "w1_log10_ratio_run": w1_run,
            "w1_log10_ratio_end": np.log10(w1_mm / w1_ns),
            "w1_minimax_end": w1_mm,
            "w1_ns_end": w1_ns,
            "w1_start": _at(curves, "minimax", 0, "w1"),
            "w1_ns_end_vs_mean_image": w1_ns / w1_mean,
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
    gens = Stream(copy_seeds, "eval", device)
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
    w1_mean = w1_mean_image(*digits_split())
    seeds_table = saturation_seed_table(curves, params, w1_mean)
    return {"seeds": seeds_table, "curves": curves, "samples": samples}


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


EXPERIMENT = Experiment(
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
        "w1_log10_ratio_run",
        "w1_log10_ratio_end",
        "w1_minimax_end",
        "w1_ns_end",
        "w1_start",
        "w1_ns_end_vs_mean_image",
    ),
    figures={"saturation": fig_saturation},
    doc="Goodfellow et al. 2014, Sec. 3: minimax vs non-saturating GAN from the same start.",
)
