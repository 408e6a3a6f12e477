"""annealed-noise-training (Sonderby et al. 2016).

A GAN whose D sees x + eps with the std annealed to 0 against
the same GAN without noise, on the lines (G = (theta, z)) and on a half circle (G an MLP).

"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from repro import plots
from repro.engine import STREAMS, gan, optim, use_graphs
from repro.engine.streams import Stream
from repro.experiments import Experiment, Tables
from repro.experiments.family.noise import half_circle
from repro.losses import gan_d_loss, get_objective
from repro.metrics import w1_pool
from repro.nets import BatchedMLP
from repro.noise import add_instance_noise, noise_on_device, noise_std_at, noise_std_on_device

TARGETS = ("lines", "curve")


class LineGenerator(torch.nn.Module):
    """G_theta(z) = (theta, z), z ~ U[0, 1]: the parallel-lines generator, one theta per copy."""

    def __init__(self, n_copies: int, theta0: float):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.full((n_copies,), float(theta0)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # z: (C, B, 1) uniforms -> (C, B, 2)
        return torch.cat([self.theta.reshape(-1, 1, 1).expand_as(z), z], dim=-1)


def sample_target(target: str, gens: Stream, batch: int) -> torch.Tensor:
    """Real samples per seed: the line (0, Z) or the half circle, Z ~ U[0, 1]. (S, B, 2), on
    the stream's device."""
    u = gens.uniform(batch, dtype=torch.float64)
    if target == "lines":
        return torch.stack([torch.zeros_like(u), u], dim=-1).to(torch.get_default_dtype())
    return half_circle(u).to(torch.get_default_dtype())


def sample_latent(target: str, gens: Stream, batch: int) -> torch.Tensor:
    """Latent z per seed: U[0, 1] for the line generator, N(0, 1) for the curve MLP. (S, B, 1)."""
    if target == "lines":
        return gens.uniform(batch, 1, dtype=torch.get_default_dtype())
    return gens.normal(batch, 1)


def _two_conditions(x: torch.Tensor, std: float, gens: Stream) -> torch.Tensor:
    """Copies [0, S) get instance noise of ``std`` (shared transform), copies [S, 2S) none."""
    n_s = len(gens)
    return torch.cat([add_instance_noise(x[:n_s], std, gens), x[n_s:]])


def _eval_samples(target: str, G, gens: Stream, n: int) -> dict[str, torch.Tensor]:
    """What the W1 to the target needs, kept on the device until training ends: |theta| per copy
    (lines) or G's samples (2S, n, 2) and the target's (S, n, 2) from ``gens`` (curve)."""
    if target == "lines":
        return {"abs_theta": G.theta.detach().abs()}
    with torch.no_grad():
        z = sample_latent(target, gens, n)
        fake = G(torch.cat([z, z]))  # (2S, n, 2)
    return {"fake": fake, "real": sample_target(target, gens, n)}


def _w1_to_target(target: str, evals: Sequence[dict[str, torch.Tensor]]) -> list[np.ndarray]:
    """W1 from each copy's G to the target at every evaluation: |theta| exactly (lines), POT on
    n samples (curve), every evaluation's solves at once through ``repro.metrics.w1_pool``."""
    if target == "lines":
        return [ev["abs_theta"].double().cpu().numpy() for ev in evals]
    pairs = []
    for ev in evals:
        fake, real = ev["fake"].double().cpu().numpy(), ev["real"].double().cpu().numpy()
        n_s = len(real)
        pairs += [(fake[c], real[c % n_s]) for c in range(2 * n_s)]
    w1 = w1_pool(pairs)
    k = len(pairs) // max(1, len(evals))
    return [np.array(w1[j * k : (j + 1) * k]) for j in range(len(evals))]


def train_annealed(target: str, params: Mapping[str, Any], seeds: Sequence[int], device):
    """One batched GAN over copies (noise, seed) + (no noise, seed) on ``repro.engine.gan``; the
    W1 curve at every ``eval_every`` steps, solved after training."""
    n_s = len(seeds)
    copy_seeds = list(seeds) + list(seeds)
    if target == "lines":
        G = LineGenerator(2 * n_s, float(params["lines_theta0"])).to(device)
    else:
        g_sizes = (1, *[int(params["g_hidden"])] * int(params["depth"]), 2)
        G = BatchedMLP(g_sizes, seeds=copy_seeds, stream=STREAMS["g_init"]).to(device)
    d_sizes = (2, *[int(params["hidden"])] * int(params["depth"]), 1)
    D = BatchedMLP(d_sizes, seeds=copy_seeds, stream=STREAMS["d_init"]).to(device)
    betas = tuple(float(b) for b in params["betas"])
    steps, batch = int(params["steps"]), int(params["batch_size"])
    schedule, anneal = dict(params["noise_schedule"]), int(params["anneal_steps"])
    # Static steps (CUDA graphs): while the std is > 0 it comes from a device G-step count; once
    # it is 0 (a suffix of the run) the noise draws nothing, a host decision, so those steps
    # run as a second loop with std 0. Eager when the schedule is not of that form.
    stds = [noise_std_at(t, anneal, schedule) for t in range(steps)]
    zero = next((t for t, v in enumerate(stds) if v == 0), steps)
    graphs = (
        use_graphs(device)
        and all(v == 0 for v in stds[zero:])
        and (zero == 0 or noise_on_device(schedule, anneal, range(zero)))
    )
    opt_g = optim.make(
        "adam", G.parameters(), float(params["lr_g"]), betas=betas, capturable=graphs
    )
    opt_d = optim.make(
        "adam", D.parameters(), float(params["lr_d"]), betas=betas, capturable=graphs
    )
    g_cost = get_objective(str(params["g_objective"])).g_loss
    # both conditions of a seed see the same draws
    gens = Stream(seeds, "data", device, static=graphs)
    step_t = torch.zeros((), dtype=torch.float64, device=device)  # the G steps so far (graphs)

    def losses(std_at):
        """The D and G losses with the noise std ``std_at(step)`` (a float or a device tensor)."""

        def d_loss(step: int, k: int) -> torch.Tensor:
            std = std_at(step)
            real = sample_target(target, gens, batch)
            z = sample_latent(target, gens, batch)
            real = _two_conditions(torch.cat([real, real]), std, gens)
            with torch.no_grad():
                fake = G(torch.cat([z, z]))
            fake = _two_conditions(fake, std, gens)
            return gan_d_loss(D(real), D(fake))

        def g_loss(step: int) -> torch.Tensor:
            std = std_at(step)
            z = sample_latent(target, gens, batch)
            fake = G(torch.cat([z, z]))
            eps = _two_conditions(torch.zeros_like(fake), std, gens)  # the noise only
            if isinstance(std, torch.Tensor):
                step_t.add_(1)  # the next G step's std (captured with this step)
            return g_cost(D(fake + eps))

        return d_loss, g_loss

    def evaluate(step: int) -> dict[str, torch.Tensor]:
        eval_gens = Stream(seeds, "eval", device, substream=step)  # fresh draws at every step
        return _eval_samples(target, G, eval_gens, int(params["n_w1"]))

    every = int(params["eval_every"])
    eval_at = [t for t in range(steps + 1) if t % every == 0 or t == steps]

    def loop(std_at, end: int, start: int = 0, at=eval_at):
        return gan(
            opt_d,
            opt_g,
            *losses(std_at),
            end,
            d_steps=int(params["d_steps"]),
            discriminator=D,
            evaluate=evaluate,
            eval_at=at,
            start=start,
            graphs=graphs,
        )

    if not graphs:
        evals = loop(lambda step: noise_std_at(step, anneal, schedule), steps).evals
    else:  # steps [0, zero) with the device std, then [zero, steps) with none
        evals = loop(lambda step: noise_std_on_device(step_t, anneal, schedule), zero).evals
        if zero < steps:  # the evaluation at step `zero` ended the first loop
            evals += loop(lambda step: 0.0, steps, zero, [t for t in eval_at if t != zero]).evals
    w1_all = _w1_to_target(target, [ev for _, ev in evals])
    rows = []
    for (step, _), w1 in zip(evals, w1_all, strict=True):
        std = noise_std_at(step, anneal, schedule)
        for c in range(2 * n_s):
            rows.append(
                {
                    "target": target,
                    "condition": "annealed noise" if c < n_s else "no noise",
                    "seed": int(copy_seeds[c]),
                    "step": step,
                    "noise_std": std if c < n_s else 0.0,
                    "w1": float(w1[c]),
                }
            )
    return pd.DataFrame(rows)


def run_annealed(params: Mapping[str, Any], seeds: list[int], device) -> Tables:
    """Tables ``seeds`` (final W1 per target and condition) and ``curves`` (W1 vs step)."""
    curves = pd.concat(
        [train_annealed(t, params, seeds, device) for t in params["targets"]], ignore_index=True
    )
    last = curves[curves["step"] == curves["step"].max()]
    out = pd.DataFrame({"seed": [int(s) for s in seeds]})
    first = curves[(curves["step"] == 0) & (curves["target"] == "curve")]
    start = first.groupby("seed")["w1"].min()  # both conditions start from the same G
    out["w1_start_curve"] = [float(start.get(s, np.nan)) for s in seeds]
    for target in TARGETS:
        for cond, tag in (("annealed noise", "noise"), ("no noise", "clean")):
            sel = last[(last["target"] == target) & (last["condition"] == cond)]
            col = sel.set_index("seed")["w1"]
            out[f"w1_end_{tag}_{target}"] = [float(col.get(s, np.nan)) for s in seeds]
    return {"seeds": out, "curves": curves}


def fig_annealed(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """W1 to the target against generator steps, with and without annealed noise, per target."""
    curves = tables["curves"]
    targets = list(dict.fromkeys(curves["target"]))
    fig, axes = plots.figure(len(targets), width=4.2, squeeze=False)
    for j, target in enumerate(targets):
        ax = axes[0, j]
        g = curves[curves["target"] == target]
        for i, (cond, gc) in enumerate(g.groupby("condition")):
            plots.mean_band(ax, gc, "step", "w1", color=f"C{i}", label=cond)
        sched = g[g["condition"] == "annealed noise"].groupby("step")["noise_std"].first()
        ax.plot(sched.index, sched.values, color="0.5", ls=":", lw=1, label=r"noise std $\sigma$")
        ax.set(
            yscale="log",
            xlabel="generator steps",
            ylabel=r"$W_1$ to the target (distance units)",
            title=f"target: {'parallel line' if target == 'lines' else 'half circle'}",
        )
        ax.legend(fontsize=7)
    return fig


EXPERIMENT = Experiment(
    run=run_annealed,
    params=(
        "targets",
        "steps",
        "d_steps",
        "batch_size",
        "lr_g",
        "lr_d",
        "betas",
        "hidden",
        "g_hidden",
        "depth",
        "g_objective",
        "lines_theta0",
        "noise_schedule",
        "anneal_steps",
        "eval_every",
        "n_w1",
    ),
    metrics=(
        "w1_start_curve",
        "w1_end_noise_lines",
        "w1_end_clean_lines",
        "w1_end_noise_curve",
        "w1_end_clean_curve",
    ),
    figures={"w1_vs_steps": fig_annealed},
    doc=__doc__ or "",
)
