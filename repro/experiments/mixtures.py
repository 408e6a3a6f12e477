"""Mode collapse on 2-D Gaussian mixtures and the remedies (VEEGAN, PacGAN, Unrolled GAN).

Three claims share one engine here:

- MODE_COLLAPSE_MIXTURES: every method (GAN, its remedies, WGAN, WGAN-GP) under one architecture
  and one budget of generator steps on the ring (8 modes) and the grid (25 modes); VEEGAN /
  PacGAN protocol (``repro.metrics.mode_metrics``, 2,500 samples) plus the exact W1 to data.
- PACGAN_TABLE1: PacGAN's own networks and optimiser (BN-ReLU G, maxout D), GAN vs PacGAN2/3/4.
- MODE_ROTATION: Unrolled GAN Fig. 1: the mode histogram of GAN vs unrolled-10 over training.

A method is a row of ``METHODS`` (objective, D steps, packing, minibatch discrimination, feature
matching, unrolling, instance noise); ``train_method`` trains all seeds of one (method, data set)
as one batched model and returns G, from which ``evaluate`` draws the 2,500 samples.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call

from repro import remedies
from repro.data import grid_means, ring_means, sample_mixture, sample_normal
from repro.divergences import w1_samples
from repro.engine import gan, generators, optim
from repro.experiments import Experiment, Tables
from repro.losses import Objective, get_objective
from repro.metrics import mode_counts, mode_metrics, nearest_mode
from repro.nets import (
    STREAM_D,
    STREAM_EVAL,
    STREAM_G,
    BatchedLinear,
    BatchedModule,
    seed_generators,
)
from repro.plots import figure
from repro.train import clip_parameters_

log = logging.getLogger(__name__)

STREAM_W1 = 8  # fresh data for the W1 evaluation, independent of the training stream

# ---------------------------------------------------------------------------------------------
# data sets: the VEEGAN / PacGAN protocol (ring radius 1, std 0.01; grid -4 + 2i, std 0.05)


@dataclass(frozen=True)
class Mixture:
    name: str
    means: torch.Tensor  # (K, 2)
    mode_std: float

    def sample(self, gens, batch, device=None) -> torch.Tensor:
        return sample_mixture(gens, batch, self.means, self.mode_std, device=device)


def get_mixture(name: str, params: Mapping[str, Any]) -> Mixture:
    """The ring (8 modes at angles 2 pi k / 8) or the grid (5 x 5, spacing 2) of ``params``."""
    if name == "ring":
        return Mixture("ring", ring_means(8, params["ring_radius"]), params["ring_std"])
    if name == "grid":
        return Mixture("grid", grid_means(5, 2.0), params["grid_std"])
    raise ValueError(f"unknown data set {name!r}; valid: ring, grid")


# ---------------------------------------------------------------------------------------------
# networks


class Generator(BatchedModule):
    """z (S, B, z_dim) -> [Linear -> (BN) -> ReLU] x n_layers -> Linear -> (S, B, 2)."""

    def __init__(self, seeds, z_dim: int, hidden: int, n_layers: int, norm: str = "none"):
        super().__init__(seeds, STREAM_G)
        s, widths = self.n_seeds, [z_dim] + [hidden] * n_layers
        self.hidden = nn.ModuleList(
            BatchedLinear(a, b, s) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.norms = nn.ModuleList(
            remedies.BatchNorm1d(hidden, s) if norm == "batch" else nn.Identity()
            for _ in range(n_layers)
        )
        self.out = BatchedLinear(hidden, 2, s)
        self.reset_parameters()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for layer, norm in zip(self.hidden, self.norms, strict=True):
            h = torch.relu(norm(layer(h)))
        return self.out(h)


class Discriminator(BatchedModule):
    """pack m -> [Linear -> ReLU | maxout] x n_layers -> (minibatch features) -> Linear -> logit.

    ``features`` returns the last hidden layer (feature matching reads it); packing and
    minibatch discrimination are the ``repro.remedies`` pieces.
    """

    def __init__(
        self,
        seeds,
        hidden: int,
        n_layers: int,
        pack: int = 1,
        maxout_pieces: int = 0,
        mbd: tuple[int, int] | None = None,
    ):
        super().__init__(seeds, STREAM_D)
        s, self.pack = self.n_seeds, pack
        widths = [2 * pack] + [hidden] * n_layers
        if maxout_pieces:
            layers = [
                remedies.Maxout(a, b, maxout_pieces, s)
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            ]
        else:
            layers = [
                nn.Sequential(BatchedLinear(a, b, s), nn.ReLU())
                for a, b in zip(widths[:-1], widths[1:], strict=True)
            ]
        self.trunk = nn.Sequential(*layers)
        self.mbd = remedies.MinibatchDiscrimination(hidden, *mbd, s) if mbd else nn.Identity()
        self.head = BatchedLinear(hidden + (mbd[0] if mbd else 0), 1, s)
        self.reset_parameters()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(remedies.pack(x, self.pack))  # (S, B / m, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mbd(self.features(x)))  # (S, B / m, 1)


# ---------------------------------------------------------------------------------------------
# methods


@dataclass(frozen=True)
class Method:
    """One training method: which pieces are switched on (everything else is the GAN)."""

    objective: str = "non-saturating"
    d_steps: int = 1
    pack: int = 1
    mbd: bool = False
    feature_matching: bool = False
    unroll: int = 0
    instance_noise: bool = False
    optimizer: str = "adam"
    betas: tuple[float, float] | None = None  # None: the experiment's betas
    lr_key: str = "lr"  # the params entry holding this method's learning rate (G's and D's)
    # the params entry holding D's learning rate when it differs from G's (the Unrolled GAN
    # notebook: G 1e-3, D 1e-4); None: D uses lr_key's
    lr_d_key: str | None = "lr_d"
    extra: dict = field(default_factory=dict)


METHODS: dict[str, Method] = {
    "gan": Method(),
    "gan-minimax": Method(objective="minimax"),
    # WGAN: RMSProp, n_critic 5, clip 0.01 (Arjovsky et al. 2017, Algorithm 1)
    "wgan": Method(
        objective="wgan", d_steps=5, optimizer="rmsprop", lr_key="wgan_lr", lr_d_key=None
    ),
    # WGAN-GP: Adam(beta1 0, beta2 0.9), n_critic 5, lambda 10 (Gulrajani et al. 2017, Alg. 1)
    "wgan-gp": Method(
        objective="wgan-gp", d_steps=5, betas=(0.0, 0.9), lr_key="wgan_gp_lr", lr_d_key=None
    ),
    "unrolled5": Method(unroll=5),
    "unrolled10": Method(unroll=10),
    # the Unrolled GAN notebook's saddle objective: G ascends D's loss (minimax surrogate)
    "unrolled5-minimax": Method(objective="minimax", unroll=5),
    "unrolled10-minimax": Method(objective="minimax", unroll=10),
    "pacgan2": Method(pack=2),
    "pacgan3": Method(pack=3),
    "pacgan4": Method(pack=4),
    "minibatch-disc": Method(mbd=True),
    "feature-matching": Method(feature_matching=True),
    "instance-noise": Method(instance_noise=True),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(METHODS)}")
    return METHODS[name]


def build_models(method: Method, params: Mapping[str, Any], seeds: Sequence[int], device):
    """G and D of the experiment's architecture for ``method``, on ``device``."""
    G = Generator(
        seeds, params["z_dim"], params["g_hidden"], params["g_layers"], params.get("g_norm", "none")
    )
    mbd = (params["mbd_kernels"], params["mbd_kernel_dim"]) if method.mbd else None
    D = Discriminator(
        seeds,
        params["d_hidden"],
        params["d_layers"],
        method.pack,
        params.get("maxout_pieces", 0),
        mbd,
    )
    return G.to(device), D.to(device)


# ---------------------------------------------------------------------------------------------
# training


STREAM_TRAINSET = 9  # the finite training set (PacGAN: 100,000 points), drawn once per seed


def _real_sampler(mixture: Mixture, params, seeds, device):
    """Fresh mixture samples every batch, or (params["train_points"] > 0) minibatches drawn with
    replacement from a finite training set of that many points per seed (PacGAN's setup)."""
    n = int(params.get("train_points", 0))
    if not n:
        return lambda gens, b: mixture.sample(gens, b, device)
    data = mixture.sample(seed_generators(seeds, STREAM_TRAINSET), n, device)  # (S, N, 2)
    rows = torch.arange(len(seeds), device=data.device)[:, None]

    def draw(gens, b):
        idx = torch.stack([torch.randint(n, (b,), generator=g) for g in gens]).to(data.device)
        return data[rows, idx]

    return draw


def _noise(method: Method, params, step: int, x: torch.Tensor, gens) -> torch.Tensor:
    """Instance noise (Sonderby et al. 2016) on D's input, annealed by ``repro.noise``."""
    if not method.instance_noise:
        return x
    from repro import noise  # the suite's one implementation of instance noise

    std = noise.noise_std_at(step, params["steps"], params["noise_schedule"])
    return noise.add_instance_noise(x, std, gens)


def _d_loss(obj: Objective, D_out, real, fake) -> torch.Tensor:
    return obj.d_loss(D_out(real), D_out(fake))


def train_method(
    name: str,
    mixture: Mixture,
    params: Mapping[str, Any],
    seeds: Sequence[int],
    device: Any,
    snapshot_every: int = 0,
) -> tuple[nn.Module, dict[int, torch.Tensor]]:
    """Train all seeds of ``name`` on ``mixture`` as one batched model for params["steps"] G steps.

    Each G step: ``d_steps`` D updates on fresh real / fake batches, then one G update. A batch
    holds ``batch_size`` D inputs per seed (PacGAN: ``batch_size`` packs of m samples). Losses
    are summed over seeds. Returns G and, every ``snapshot_every`` steps (and at step 0), 2,500
    evaluation samples (S, N, 2) on the CPU, for the rotation figure.
    """
    method = get_method(name)
    obj = get_objective(method.objective)
    G, D = build_models(method, params, seeds, device)
    lr = float(params[method.lr_key])
    lr_d = float(params[method.lr_d_key]) if method.lr_d_key else lr
    betas = tuple(method.betas or params["betas"])
    opt_g = optim.make(method.optimizer, G.parameters(), lr, betas=betas)
    opt_d = optim.make(method.optimizer, D.parameters(), lr_d, betas=betas)
    gens = generators(seeds, "data")
    b, z_dim = params["batch_size"] * method.pack, params["z_dim"]
    steps = params["steps"]

    real = _real_sampler(mixture, params, seeds, device)

    def batch():
        return real(gens, b), sample_normal(gens, b, z_dim, device=device)

    def d_loss(step: int, k: int) -> torch.Tensor:
        x, z = batch()
        with torch.no_grad():
            fake = G(z)
        xr, xf = _noise(method, params, step, x, gens), _noise(method, params, step, fake, gens)
        loss = _d_loss(obj, D, xr, xf)
        if obj.penalty is not None:
            loss = loss + obj.penalty_weight * obj.penalty(D, xr, xf, gens)
        return loss

    def clip(step: int, k: int) -> None:
        if obj.clip is not None:
            clip_parameters_(D, obj.clip)

    def g_loss(step: int) -> torch.Tensor:
        return _g_loss(method, obj, G, D, opt_d, params, step, gens, batch)

    def snapshot(step: int) -> dict[str, torch.Tensor]:
        return {"samples": sample_generator(G, params, seeds, device)}

    # D keeps its gradients in the G step: the unrolled G differentiates through D's parameters
    result = gan(
        opt_d,
        opt_g,
        d_loss,
        g_loss,
        steps,
        d_steps=method.d_steps,
        after_d_step=clip,
        evaluate=snapshot if snapshot_every else None,
        eval_at=[t for t in range(steps) if t % snapshot_every == 0] + [steps]
        if snapshot_every
        else (),
    )
    snaps = {step: ev["samples"] for step, ev in result.evals}
    D.zero_grad(set_to_none=True)
    return G, snaps


def _g_loss(method, obj, G, D, opt_d, params, step, gens, batch) -> torch.Tensor:
    """G's per-seed loss for this step (its backward fills only G's gradients that are used)."""
    x, z = batch()
    fake = G(z)
    if method.feature_matching:
        with torch.no_grad():
            f_real = D.features(x)
        return remedies.feature_matching_loss(f_real, D.features(fake))
    if method.unroll:
        named = dict(D.named_parameters())
        state, t = remedies.adam_state_of(opt_d, named)
        unroll_batches = [batch() for _ in range(method.unroll)]

        def d_loss(theta, i):
            xi, zi = unroll_batches[i]
            return _d_loss(obj, lambda v: functional_call(D, theta, (v,)), xi, G(zi))

        theta = remedies.unrolled_params(
            d_loss, named, state, t, method.unroll, float(params["lr_d"]), tuple(params["betas"])
        )
        return obj.g_loss(functional_call(D, theta, (fake,)))
    return obj.g_loss(D(_noise(method, params, step, fake, gens)))


@torch.no_grad()
def sample_generator(G: nn.Module, params, seeds, device, n: int | None = None) -> torch.Tensor:
    """n (default params["eval_samples"]) samples per seed from G, evaluation stream: (S, n, 2)."""
    n = n or params["eval_samples"]
    z = sample_normal(seed_generators(seeds, STREAM_EVAL), n, params["z_dim"], device=device)
    return G(z).cpu().double()


def evaluate(samples: torch.Tensor, mixture: Mixture, seeds, params) -> pd.DataFrame:
    """The VEEGAN / PacGAN metrics and the exact W1 to fresh data, one row per seed."""
    m = mode_metrics(samples, mixture.means, mixture.mode_std)
    n_w1 = params["w1_samples"]
    data = mixture.sample(seed_generators(seeds, STREAM_W1), n_w1).double()
    rows = []
    for i, seed in enumerate(seeds):
        rows.append(
            {
                "seed": int(seed),
                "modes": float(m["modes_captured"][i]),
                "hq": 100.0 * float(m["high_quality_frac"][i]),
                "rkl": float(m["reverse_kl"][i]),
                "w1": w1_samples(samples[i, :n_w1].numpy(), data[i].numpy()),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# tables shared by the claims

METRICS = ("modes", "hq", "rkl", "w1")
DATASETS = ("ring", "grid")


def _col(metric: str, method: str, dataset: str) -> str:
    return f"{metric}_{method.replace('-', '_')}_{dataset}"


def metric_names(methods: Sequence[str]) -> tuple[str, ...]:
    """Per-seed metric columns: every metric of every (method, data set), then the paired gains
    modes_gain_<m>_<ds> = modes(m) - modes(gan) and rkl_drop_<m>_<ds> = rkl(gan) - rkl(m)."""
    cols = [_col(m, meth, ds) for ds in DATASETS for meth in methods for m in METRICS]
    for ds in DATASETS:
        for meth in (m for m in methods if m != "gan"):
            cols += [_col("modes_gain", meth, ds), _col("rkl_drop", meth, ds)]
    return tuple(cols)


def seed_table(results: pd.DataFrame, seeds, methods: Sequence[str]) -> pd.DataFrame:
    """One row per seed, the columns of ``metric_names(methods)`` (NaN for what was not run)."""
    index = pd.Index([int(s) for s in seeds], name="seed")
    cols: dict[str, pd.Series] = {}
    for (meth, ds), r in results.groupby(["method", "dataset"]):
        r = r.set_index("seed").reindex(index)
        for m in METRICS:
            cols[_col(m, meth, ds)] = r[m]
    nan = pd.Series(np.nan, index=index)
    for ds in DATASETS:
        gan_modes, gan_rkl = (cols.get(_col(m, "gan", ds), nan) for m in ("modes", "rkl"))
        for meth in (m for m in methods if m != "gan"):
            cols[_col("modes_gain", meth, ds)] = cols.get(_col("modes", meth, ds), nan) - gan_modes
            cols[_col("rkl_drop", meth, ds)] = gan_rkl - cols.get(_col("rkl", meth, ds), nan)
    table = pd.DataFrame(cols, index=index)
    return table.reindex(columns=list(metric_names(methods))).astype(float).reset_index()


def paper_comparison(results: pd.DataFrame, paper: Mapping[str, Any]) -> pd.DataFrame:
    """Our mean and standard error beside VEEGAN Table 1 and PacGAN Table 1, cell by cell.

    ``paper`` maps "<paper>_<dataset>_<method>_<metric>" (metric modes / hq / rkl) to the number
    printed in that paper (the spec's reported.values); a missing cell is NaN.
    """
    rows = []
    for (meth, ds), r in results.groupby(["method", "dataset"], sort=False):
        for m in ("modes", "hq", "rkl"):
            v = r[m].dropna()
            key = f"{ds}_{meth.replace('-', '_')}_{m}"
            rows.append(
                {
                    "method": meth,
                    "dataset": ds,
                    "metric": m,
                    "ours_mean": float(v.mean()) if len(v) else np.nan,
                    "ours_se": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else np.nan,
                    "n_seeds": len(v),
                    "veegan": float(paper.get(f"veegan_{key}", np.nan)),
                    "pacgan": float(paper.get(f"pacgan_{key}", np.nan)),
                }
            )
    return pd.DataFrame(rows)


def run_methods(
    params: Mapping[str, Any], seeds: Sequence[int], device: Any, all_methods: Sequence[str]
) -> Tables:
    """Train every (method, data set) of ``params`` (one batched model each) and evaluate it.

    The seeds table has the columns of ``metric_names(all_methods)``: what is not run is NaN.
    """
    results, samples, timing = [], [], []
    for ds in params["datasets"]:
        mix = get_mixture(ds, params)
        for name in params["methods"]:
            t0 = time.perf_counter()
            G, _ = train_method(name, mix, params, seeds, device)
            s = sample_generator(G, params, seeds, device)
            results.append(evaluate(s, mix, seeds, params).assign(method=name, dataset=ds))
            n = params["plot_samples"]
            xy = s[0, :n].numpy()
            samples.append(
                pd.DataFrame(
                    {
                        "method": name,
                        "dataset": ds,
                        "seed": int(seeds[0]),
                        "x": xy[:, 0],
                        "y": xy[:, 1],
                    }
                )
            )
            timing.append({"method": name, "dataset": ds, "seconds": time.perf_counter() - t0})
            log.info(
                "%s on %s: %.1f s, modes %s",
                name,
                ds,
                timing[-1]["seconds"],
                results[-1]["modes"].tolist(),
            )
    res = pd.concat(results, ignore_index=True)[["method", "dataset", "seed", *METRICS]]
    return {
        "seeds": seed_table(res, seeds, all_methods),
        "results": res,
        "paper_comparison": paper_comparison(res, params.get("paper_values", {})),
        "samples": pd.concat(samples, ignore_index=True),
        "timing": pd.DataFrame(timing),
    }


# ---------------------------------------------------------------------------------------------
# figures (read the tables only)


def fig_samples(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Generated samples (one seed) over the mixture's modes: a row per data set, a column per
    method."""
    s = tables["samples"]
    methods, datasets = list(dict.fromkeys(s.method)), list(dict.fromkeys(s.dataset))
    fig, axes = figure(len(methods), len(datasets), width=1.55, height=1.65, squeeze=False)
    for i, ds in enumerate(datasets):
        means = get_mixture(ds, params).means.numpy()
        lim = 1.6 * float(np.abs(means).max()) + 0.3
        for j, meth in enumerate(methods):
            ax, d = axes[i, j], s[(s.dataset == ds) & (s.method == meth)]
            ax.scatter(d.x, d.y, s=1.5, color="C0", alpha=0.4, lw=0, rasterized=True)
            ax.scatter(means[:, 0], means[:, 1], s=10, marker="x", color="C3", lw=0.8)
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")
            if i == 0:
                ax.set_title(meth, fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{ds}\n$x_2$", fontsize=7)
            if i == len(datasets) - 1:
                ax.set_xlabel("$x_1$", fontsize=7)
    n = len(s) // max(len(methods) * len(datasets), 1)
    fig.suptitle(f"{n} samples of seed {int(s.seed.iloc[0])} (dots), mode centres (x)", fontsize=8)
    return fig


def fig_bars(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Modes captured and high-quality % per method (mean +- s.e. over seeds), with the numbers of
    VEEGAN Table 1 (diamonds) and PacGAN Table 1 (triangles) where they report that cell."""
    pc = tables["paper_comparison"]
    datasets = list(dict.fromkeys(pc.dataset))
    fig, axes = figure(2, len(datasets), width=5.6, height=2.6, squeeze=False)
    for i, ds in enumerate(datasets):
        for j, (metric, label) in enumerate(
            (("modes", "modes captured"), ("hq", "high quality (%)"))
        ):
            ax, d = axes[i, j], pc[(pc.dataset == ds) & (pc.metric == metric)]
            x = np.arange(len(d))
            ax.bar(
                x,
                d.ours_mean,
                yerr=d.ours_se.fillna(0),
                color="C0",
                alpha=0.75,
                capsize=2,
                label="ours",
            )
            ax.scatter(x, d.veegan, marker="D", color="C3", s=18, zorder=3, label="VEEGAN Tab. 1")
            ax.scatter(x, d.pacgan, marker="^", color="C2", s=22, zorder=3, label="PacGAN Tab. 1")
            if metric == "modes":
                ax.axhline(len(get_mixture(ds, params).means), color="0.4", ls="--", lw=0.8)
            ax.set_xticks(x, d.method, rotation=60, ha="right", fontsize=7)
            ax.set(ylabel=label, title=f"{ds}: {label}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=7)
    return fig


# ---------------------------------------------------------------------------------------------
# the claims

ALL_METHODS = tuple(METHODS)
MIXTURE_PARAMS = (
    "datasets",
    "methods",
    "ring_radius",
    "ring_std",
    "grid_std",
    "z_dim",
    "g_hidden",
    "g_layers",
    "g_norm",
    "d_hidden",
    "d_layers",
    "maxout_pieces",
    "batch_size",
    "steps",
    "lr",
    "lr_d",
    "betas",
    "wgan_lr",
    "wgan_gp_lr",
    "mbd_kernels",
    "mbd_kernel_dim",
    "noise_schedule",
    "train_points",
    "eval_samples",
    "w1_samples",
    "plot_samples",
    "paper_values",
)


def run_mode_collapse(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """VEEGAN / PacGAN Table 1 protocol for every method in params["methods"] on both data sets."""
    return run_methods(params, seeds, device, ALL_METHODS)


MODE_COLLAPSE_MIXTURES = Experiment(
    run=run_mode_collapse,
    params=MIXTURE_PARAMS,
    metrics=metric_names(ALL_METHODS),
    figures={"samples": fig_samples, "bars": fig_bars},
    doc="VEEGAN Table 1 / PacGAN Table 1: modes captured on ring-8 and grid-25, every remedy.",
)

PACGAN_METHODS = ("gan", "pacgan2", "pacgan3", "pacgan4")


def run_pacgan(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """PacGAN Table 1 with PacGAN's networks: GAN vs PacGAN2/3/4 on both data sets."""
    return run_methods(params, seeds, device, PACGAN_METHODS)


PACGAN_PARAMS = tuple(
    p
    for p in MIXTURE_PARAMS
    if p not in ("wgan_lr", "wgan_gp_lr", "mbd_kernels", "mbd_kernel_dim", "noise_schedule")
)

PACGAN_TABLE1 = Experiment(
    run=run_pacgan,
    params=PACGAN_PARAMS,
    metrics=metric_names(PACGAN_METHODS),
    figures={"samples": fig_samples, "bars": fig_bars},
    doc="PacGAN Table 1 (Lin et al. 2018): GAN vs PacGAN2/3/4, PacGAN's own architecture.",
)


# ---- mode rotation (Unrolled GAN, Fig. 1)


def rotation_stats(hist: torch.Tensor) -> dict[str, torch.Tensor]:
    """From mode histograms over checkpoints (S, T, K): per seed the number of switches of the
    argmax between consecutive checkpoints, the median over checkpoints of the largest mode's
    share, and the number of distinct modes that were ever the argmax. (S,) each."""
    top = hist.argmax(dim=2)  # (S, T)
    share = hist.amax(dim=2) / hist.sum(dim=2).clamp_min(1)  # (S, T)
    switches = (top[:, 1:] != top[:, :-1]).sum(dim=1).to(hist.dtype)
    distinct = torch.tensor([len(set(row.tolist())) for row in top], dtype=hist.dtype)
    return {"switches": switches, "top_share": share.median(dim=1).values, "distinct": distinct}


ROTATION_METRICS = (
    "gan_argmax_switches",
    "gan_top_share",
    "gan_distinct_dominant",
    "gan_modes_final",
    "unrolled_argmax_switches",
    "unrolled_top_share",
    "unrolled_modes_min_late",
    "unrolled_modes_final",
    "gan_hq_late",
    "unrolled_hq_final",
)


def _density(s: torch.Tensor, lim: float, bins: int) -> np.ndarray:
    h, _, _ = np.histogram2d(s[:, 0], s[:, 1], bins=bins, range=[[-lim, lim], [-lim, lim]])
    return h


def run_mode_rotation(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """GAN and unrolled GAN on the ring, 2,500 samples every ``snapshot_every`` G steps.

    Per checkpoint: the histogram of nearest modes over all samples (whose argmax is the dominant
    mode) and the high-quality mode counts (VEEGAN protocol); per seed also the share of
    high-quality samples (%), the GAN's as the median over the late checkpoints and the unrolled
    GAN's at the last one (the quality premises: a diffuse cloud counts modes by stray samples).
    Checkpoints before ``burn_in_steps`` are left out of the rotation statistics; "late" = the
    second half.
    """
    mix = get_mixture("ring", params)
    k, bins, lim = len(mix.means), params["density_bins"], 1.7 * params["ring_radius"]
    seed_cols: dict[str, Any] = {"seed": [int(s) for s in seeds]}
    hist_rows, dens_rows = [], []
    for key, name in (("gan", params["gan_method"]), ("unrolled", params["unrolled_method"])):
        _, snaps = train_method(name, mix, params, seeds, device, params["snapshot_every"])
        steps = sorted(snaps)
        nearest = torch.stack(
            [
                torch.nn.functional.one_hot(nearest_mode(snaps[t], mix.means)[0], k).sum(1)
                for t in steps
            ],
            1,
        ).double()  # (S, T, K)
        hq = torch.stack(
            [mode_counts(snaps[t], mix.means, mix.mode_std) for t in steps], 1
        )  # (S, T, K)
        captured = (hq > 0).sum(dim=2).double()  # (S, T)
        n_samples = torch.tensor([snaps[t].shape[1] for t in steps], dtype=torch.float64)
        hq_pct = 100.0 * hq.sum(dim=2).double() / n_samples  # (S, T): % high-quality samples
        use = torch.tensor([t >= params["burn_in_steps"] for t in steps])
        late = torch.tensor([t >= params["steps"] / 2 for t in steps])
        st = rotation_stats(nearest[:, use])
        seed_cols[f"{key}_argmax_switches"] = st["switches"].numpy()
        seed_cols[f"{key}_top_share"] = st["top_share"].numpy()
        if key == "gan":
            seed_cols["gan_distinct_dominant"] = st["distinct"].numpy()
            # quality premise: the GAN's samples sit on modes (median over late checkpoints)
            seed_cols["gan_hq_late"] = hq_pct[:, late].median(dim=1).values.numpy()
        else:
            seed_cols["unrolled_modes_min_late"] = captured[:, late].amin(dim=1).numpy()
            seed_cols["unrolled_hq_final"] = hq_pct[:, -1].numpy()
        seed_cols[f"{key}_modes_final"] = captured[:, -1].numpy()
        for i, seed in enumerate(seeds):
            for j, t in enumerate(steps):
                for m in range(k):
                    hist_rows.append(
                        {
                            "method": name,
                            "seed": int(seed),
                            "step": t,
                            "mode": m,
                            "nearest": float(nearest[i, j, m]),
                            "high_quality": float(hq[i, j, m]),
                        }
                    )
        for t in steps:
            d = _density(snaps[t][0].numpy(), lim, bins)
            ix, iy = np.nonzero(d)
            dens_rows.append(
                pd.DataFrame({"method": name, "step": t, "ix": ix, "iy": iy, "count": d[ix, iy]})
            )
    table = pd.DataFrame(seed_cols)[["seed", *ROTATION_METRICS]]
    density = pd.concat(dens_rows, ignore_index=True).assign(lim=lim, bins=bins)
    return {"seeds": table, "histograms": pd.DataFrame(hist_rows), "density": density}


def fig_rotation(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Density of the generated samples (one seed) at several training steps: a row per method,
    log colour scale; mode centres marked."""
    d = tables["density"]
    methods = list(dict.fromkeys(d.method))
    steps = sorted(d.step.unique())
    show = [
        steps[i]
        for i in np.unique(np.linspace(0, len(steps) - 1, min(8, len(steps))).round().astype(int))
    ]
    lim, bins = float(d.lim.iloc[0]), int(d.bins.iloc[0])
    means = ring_means(8, params["ring_radius"]).numpy()
    fig, axes = figure(len(show), len(methods), width=1.45, height=1.55, squeeze=False)
    for i, meth in enumerate(methods):
        for j, t in enumerate(show):
            ax, c = axes[i, j], d[(d.method == meth) & (d.step == t)]
            img = np.zeros((bins, bins))
            img[c.ix.to_numpy(), c.iy.to_numpy()] = c["count"].to_numpy()
            ax.imshow(
                np.log1p(img.T), origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis"
            )
            ax.scatter(means[:, 0], means[:, 1], s=6, marker="x", color="w", lw=0.6)
            ax.set(xticks=[], yticks=[])
            ax.grid(False)
            if i == 0:
                ax.set_title(f"step {t}", fontsize=7)
            if j == 0:
                ax.set_ylabel(meth, fontsize=7)
    fig.suptitle("log(1 + count) of generated samples per 2-D bin, first seed", fontsize=8)
    return fig


def fig_rotation_share(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Share of each mode (nearest-mode histogram) against training step, one panel per method
    (first seed): a rotating dominant mode shows as bands that take turns."""
    h = tables["histograms"]
    methods = list(dict.fromkeys(h.method))
    fig, axes = figure(len(methods), 1, width=4.0, height=2.6, squeeze=False)
    for ax, meth in zip(axes[0], methods, strict=True):
        d = h[(h.method == meth) & (h.seed == h.seed.min())]
        wide = d.pivot(index="step", columns="mode", values="nearest")
        share = wide.div(wide.sum(axis=1), axis=0)
        ax.stackplot(share.index, share.T.values, labels=[f"mode {m}" for m in share.columns])
        ax.set(xlabel="generator step", ylabel="share of samples", title=meth, ylim=(0, 1))
    axes[0, 0].legend(fontsize=5, ncol=2, loc="upper right")
    return fig


MODE_ROTATION = Experiment(
    run=run_mode_rotation,
    params=(
        "ring_radius",
        "ring_std",
        "gan_method",
        "unrolled_method",
        "z_dim",
        "g_hidden",
        "g_layers",
        "d_hidden",
        "d_layers",
        "batch_size",
        "steps",
        "lr",
        "lr_d",
        "betas",
        "snapshot_every",
        "burn_in_steps",
        "eval_samples",
        "density_bins",
    ),
    metrics=ROTATION_METRICS,
    figures={"density": fig_rotation, "shares": fig_rotation_share},
    doc="Unrolled GAN Fig. 1: GAN's dominant mode rotates; unrolled (K = 10) covers the ring.",
)
