"""Stacked digits: 1,000 modes, counted by a classifier (VEEGAN Table 2, PacGAN Table 2).

A sample of the data is three independent digit images stacked as the channels of one image,
so the data have 10^3 = 1,000 modes (one per triple of classes, about equally likely). A
classifier trained here on single digits (per seed, held-out accuracy reported and required as
a premise) labels each channel of a generated image; the mode of the image is the triple. Over
26,000 generated samples we count the modes hit at least once and the KL divergence of the
mode histogram to the uniform distribution over the 1,000 modes (PacGAN Table 2:
KL = sum_k p_k log(p_k / (1/1000))).

Three methods share one DCGAN-style architecture, optimiser and step budget:

- ``gan``: the non-saturating GAN (Goodfellow et al. 2014);
- ``pacgan2``: D sees packs of 2 samples concatenated along the channels (Lin et al. 2018);
- ``minibatch``: D gets minibatch-discrimination features (Salimans et al. 2016, Sec. 3.2).

Each method trains all seeds as one batched model (``repro.train.train_gan``). The data are
scikit-learn's 8x8 digits (``dataset: digits``) or Fashion-MNIST's 28x28 images
(``dataset: fashion-mnist``, via ``repro.data.load_fashion_mnist`` when it is present). GAN
training uses the training split only; the classifier's accuracy and the real-data reference
(modes and KL of 26,000 stacks of held-out images) use the held-out split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from repro import data as rdata
from repro import plots
from repro.data import resolve_dataset
from repro.engine import use_graphs
from repro.engine.streams import Stream
from repro.experiments import Experiment, Tables, setup_table
from repro.experiments.family.stacked_digits import (
    EVAL_SAMPLES,
    N_CHANNELS,
    N_MODES,
    StackedSampler,
    classify,
    confident_share,
    held_out_accuracy,
    histogram_metrics,
    load_labelled,
    mode_histogram,
    mode_ids,
    train_classifier,
)
from repro.nets import (
    STREAM_D,
    STREAM_EVAL,
    STREAM_G,
    BatchedBatchNorm2d,
    BatchedConv2d,
    BatchedConvTranspose2d,
    BatchedLinear,
    BatchedModule,
    fold_seeds,
    unfold_seeds,
)
from repro.remedies import minibatch_features, pack
from repro.train import TrainConfig, train_gan

METHODS = ("gan", "pacgan2", "minibatch")


# ---------------------------------------------------------------------------------------------
# the networks (the remedies themselves are in repro.remedies)


def minibatch_features_without_self(h: torch.Tensor, tensor: torch.Tensor, n_kernels: int):
    """``repro.remedies.minibatch_features`` less its j = i term (always exp(0) = 1): o_k(i) =
    sum_{j != i} exp(-||M_ik - M_jk||_1), so a minibatch of one gives 0. h (S, B, F), T (S, F,
    K * d) -> (S, B, K)."""
    return minibatch_features(h, tensor, n_kernels) - 1.0


class StackedGenerator(BatchedModule):
    """DCGAN-style G for 3-channel side x side images, all seeds at once.

    z -> Linear -> (2c, side/2^u, side/2^u) -> BN -> ReLU -> u x [ConvT(4, stride 2) -> BN ->
    ReLU] (channels 2c -> c) -> Conv(3, pad 1) -> 3 channels -> tanh; u = 1 for 8x8, 2 for 28x28.
    """

    def __init__(self, seeds, z_dim: int, channels: int, side: int, stream: int = STREAM_G):
        super().__init__(seeds, stream)
        s, c = self.n_seeds, channels
        self.ups = 1 if side <= 8 else 2
        self.base = side // 2**self.ups
        if self.base * 2**self.ups != side:
            raise ValueError(f"side {side} is not base * 2^{self.ups}")
        self.z_dim, self.channels = z_dim, c
        self.fc = BatchedLinear(z_dim, 2 * c * self.base**2, s)
        self.norm0 = BatchedBatchNorm2d(2 * c, s)
        widths = [2 * c] + [c] * self.ups
        self.up = nn.ModuleList(
            BatchedConvTranspose2d(a, b, 4, s, stride=2, padding=1)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.norms = nn.ModuleList(BatchedBatchNorm2d(b, s) for b in widths[1:])
        self.out = BatchedConv2d(c, N_CHANNELS, 3, s, stride=1, padding=1)
        self.reset_parameters()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s, b, _ = z.shape
        h = self.fc(z).reshape(s, b, 2 * self.channels, self.base, self.base)
        h = torch.relu(self.norm0(fold_seeds(h)))  # (B, S*2c, base, base)
        for up, norm in zip(self.up, self.norms, strict=True):
            h = torch.relu(norm(up(h)))
        return unfold_seeds(torch.tanh(self.out(h)), s)  # (S, B, 3, side, side)


class StackedDiscriminator(BatchedModule):
    """DCGAN-style D for 3-channel images with optional packing and minibatch features.

    x (S, B, 3, H, W) -> [pack m: (S, B/m, 3m, H, W)] -> Conv(4, s2) -> LReLU -> Conv(4, s2)
    -> LReLU -> flatten h -> [concat minibatch features o(h)] -> Linear -> logit (S, B/m, 1).
    """

    def __init__(
        self,
        seeds,
        channels: int,
        side: int,
        pack_m: int = 1,
        mbd_kernels: int = 0,
        mbd_dim: int = 5,
        stream: int = STREAM_D,
    ):
        super().__init__(seeds, stream)
        s, c = self.n_seeds, channels
        self.pack_m, self.mbd_kernels, self.mbd_dim = pack_m, mbd_kernels, mbd_dim
        self.conv1 = BatchedConv2d(N_CHANNELS * pack_m, c, 4, s, stride=2, padding=1)
        self.conv2 = BatchedConv2d(c, 2 * c, 4, s, stride=2, padding=1)
        n_feat = 2 * c * (side // 4) ** 2
        self.mbd = BatchedLinear(n_feat, mbd_kernels * mbd_dim, s) if mbd_kernels else None
        self.fc = BatchedLinear(n_feat + mbd_kernels, 1, s)
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.shape[0]
        if self.pack_m > 1:
            x = pack(x, self.pack_m)
        b = x.shape[1]
        h = F.leaky_relu(self.conv1(fold_seeds(x)), 0.2)
        h = F.leaky_relu(self.conv2(h), 0.2)
        h = unfold_seeds(h, s).reshape(s, b, -1)  # (S, B, F)
        if self.mbd is not None:
            o = minibatch_features_without_self(h, self.mbd.weight, self.mbd_kernels)
            h = torch.cat([h, o], dim=2)
        return self.fc(h)


def build_discriminator(method: str, seeds, params, side: int) -> StackedDiscriminator:
    """The D of ``method``: plain, packed (m = 2), or with minibatch discrimination."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    c = int(params["d_channels"])
    if method == "pacgan2":
        return StackedDiscriminator(seeds, c, side, pack_m=2)
    if method == "minibatch":
        return StackedDiscriminator(seeds, c, side, mbd_kernels=int(params["mbd_kernels"]))
    return StackedDiscriminator(seeds, c, side)


# ---------------------------------------------------------------------------------------------
# the experiment


@torch.no_grad()
def generate(g: StackedGenerator, n: int, seeds, device, chunk: int = 1000) -> torch.Tensor:
    """n samples per seed from G (train-mode batch norm, chunks of ``chunk``): (S, n, 3, H, W)."""
    gens = Stream(seeds, STREAM_EVAL, device)
    out = []
    for i in range(0, n, chunk):
        z = rdata.sample_normal(gens, min(chunk, n - i), g.z_dim)
        out.append(g(z))
    return torch.cat(out, 1)


def train_method(method: str, sampler, params, seeds, device, side: int) -> StackedGenerator:
    """Train G and D of ``method`` for every seed at once; returns G."""
    g = StackedGenerator(seeds, int(params["z_dim"]), int(params["g_channels"]), side)
    d = build_discriminator(method, seeds, params, side)
    m = 2 if method == "pacgan2" else 1
    config = TrainConfig(
        steps=int(params["steps"]),
        batch_size=int(params["batch_size"]) * m,  # PacGAN: m samples per D input
        objective="non-saturating",
        lr_g=float(params["lr"]),
        lr_d=float(params["lr_d"]),
        betas=(0.5, 0.999),
        log_every=max(1, int(params["steps"]) // 10),
    )
    # StackedSampler draws its indices on the device: graph-safe (captured on CUDA)
    graphs = use_graphs(device)
    train_gan(g, d, sampler, config, z_dim=int(params["z_dim"]), device=device, graphs=graphs)
    return g


def auto_note(dataset: str) -> str:
    """What ``dataset: auto`` chose and why: the Fashion-MNIST files present and intact, or the
    first problem found with them (missing, or a SHA-256 that does not match)."""
    if dataset == "fashion-mnist":
        return " (dataset: auto, the Fashion-MNIST files were present and intact)"
    try:
        rdata.require_dataset("fashion-mnist")
        why = "the Fashion-MNIST files were not used"
    except rdata.DataMissingError as e:
        why = str(e).partition(": run `make data`")[0]
    return f" (dataset: auto, fell back to the digits: {why}; `make data` fetches intact files)"


def run(params: Mapping[str, Any], seeds: list[int], device) -> Tables:
    """Classifier, real-data reference and the three methods; tables ``seeds``, ``methods``,
    ``histograms``, ``samples``."""
    methods = list(params["methods"])
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    n_eval = int(params["eval_samples"])
    dataset = resolve_dataset(params["dataset"])
    train_x, train_y = load_labelled(dataset, "train")
    test_x, test_y = load_labelled(dataset, "test")
    side = train_x.shape[-1]
    clf = train_classifier(train_x, train_y, seeds, params, device)
    per_seed: dict[str, Any] = {"seed": [int(s) for s in seeds]}
    per_seed["classifier_accuracy"] = held_out_accuracy(clf, test_x, test_y).numpy()
    # reference: stacks of held-out images, labelled by the classifier (what a perfect G scores)
    real = StackedSampler(test_x.to(device))(Stream(seeds, STREAM_EVAL, device), n_eval)
    hist_rows, method_rows, sample_rows = [], [], []
    ref = histogram_metrics(mode_histogram(mode_ids(classify(clf, real))))
    per_seed["real_modes"], per_seed["real_kl"] = ref["modes"].cpu(), ref["kl"].cpu()
    per_seed["confident_real"] = confident_share(clf, real).cpu().numpy()
    sampler = StackedSampler(train_x.to(device))
    for method in methods:
        g = train_method(method, sampler, params, seeds, device, side)
        fake = generate(g, n_eval, seeds, device)
        counts = mode_histogram(mode_ids(classify(clf, fake)))
        res = histogram_metrics(counts)
        per_seed[f"modes_{method}"] = res["modes"].cpu().numpy()
        per_seed[f"kl_{method}"] = res["kl"].cpu().numpy()
        # quality: the share of confidently labelled stacks relative to held-out real stacks'
        per_seed[f"confident_{method}"] = confident_share(clf, fake).cpu().numpy()
        with np.errstate(invalid="ignore"):  # 0 / 0 (no confident real stack): NaN, unmet
            per_seed[f"quality_{method}"] = (
                per_seed[f"confident_{method}"] / per_seed["confident_real"]
            )
        for i, seed in enumerate(seeds):
            method_rows.append(
                {
                    "seed": int(seed),
                    "method": method,
                    "modes": float(res["modes"][i]),
                    "kl": float(res["kl"][i]),
                }
            )
            sorted_counts = torch.sort(counts[i], descending=True).values.cpu().numpy()
            hist_rows.append(
                pd.DataFrame(
                    {
                        "seed": int(seed),
                        "method": method,
                        "rank": np.arange(1, N_MODES + 1),
                        "count": sorted_counts,
                    }
                )
            )
        first = fake[0, :16].cpu().numpy()  # 16 samples of the first seed, for the figure
        for k in range(len(first)):
            for ch in range(N_CHANNELS):
                sample_rows.append(
                    pd.DataFrame(
                        {
                            "method": method,
                            "sample": k,
                            "channel": ch,
                            "row": np.repeat(np.arange(side), side),
                            "col": np.tile(np.arange(side), side),
                            "value": first[k, ch].reshape(-1),
                        }
                    )
                )
    for name in ("modes", "kl", "confident", "quality"):
        for method in methods:
            per_seed.setdefault(f"{name}_{method}", np.full(len(seeds), math.nan))
        for method in METHODS:
            per_seed.setdefault(f"{name}_{method}", np.full(len(seeds), math.nan))
    per_seed["modes_gain_pacgan2"] = per_seed["modes_pacgan2"] - per_seed["modes_gan"]
    per_seed["kl_drop_pacgan2"] = per_seed["kl_gan"] - per_seed["kl_pacgan2"]
    seeds_table = pd.DataFrame(
        {k: np.asarray(v, dtype=float) if k != "seed" else v for k, v in per_seed.items()}
    )
    data = {
        "digits": f"scikit-learn's 8x8 digits: GANs and classifier on {len(train_x)}, "
        f"held out {len(test_x)}",
        "fashion-mnist": f"Fashion-MNIST 28x28: GANs and classifier on the {len(train_x):,} "
        f"training images, held out the {len(test_x):,} test images",
    }[dataset]
    if params["dataset"] == rdata.AUTO:
        data += auto_note(dataset)
    c_g, c_d = int(params["g_channels"]), int(params["d_channels"])
    model = (
        f"DCGAN-style G ({c_g} channels, z {params['z_dim']}) and D ({c_d} channels) for "
        f"3 x {side} x {side} stacks; {params['steps']} steps, batch {params['batch_size']}, "
        f"Adam G {params['lr']}, D {params['lr_d']}; "
        f"classifier MLP 2 x {params['classifier_hidden']} "
        f"(held-out accuracy {float(np.min(per_seed['classifier_accuracy'])):.4f}, worst seed)"
    )
    return {
        "seeds": seeds_table,
        "setup": setup_table(data=data, model=model),
        "methods": pd.DataFrame(method_rows),
        "histograms": pd.concat(hist_rows, ignore_index=True),
        "samples": pd.concat(sample_rows, ignore_index=True),
    }


# ---------------------------------------------------------------------------------------------
# figures


def fig_modes(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Left: modes out of 1,000 per method (seeds as dots, mean as bar) with the held-out real
    data's count. Right: sorted mode histograms (seed 0), log counts."""
    methods, seeds, hist = tables["methods"], tables["seeds"], tables["histograms"]
    names = list(dict.fromkeys(methods["method"]))
    fig, (ax_m, ax_h) = plots.figure(2, width=4.4, height=3.4)
    for i, name in enumerate(names):
        vals = methods.loc[methods["method"] == name, "modes"]
        ax_m.bar(i, vals.mean(), color=f"C{i}", alpha=0.5)
        ax_m.plot(np.full(len(vals), i), vals, "o", color=f"C{i}", ms=4)
    ax_m.axhline(seeds["real_modes"].mean(), color="k", ls="--", lw=1, label="held-out real stacks")
    ax_m.axhline(N_MODES, color="0.5", ls=":", lw=1, label="all 1,000 modes")
    ax_m.set_xticks(range(len(names)), names)
    ax_m.set(title="Modes hit by 26,000 samples", ylabel="modes (of 1,000)", ylim=(0, 1050))
    ax_m.legend(loc="lower right", fontsize=7)
    first = hist[hist["seed"] == hist["seed"].min()]
    for i, name in enumerate(names):
        h = first[first["method"] == name]
        ax_h.step(h["rank"], h["count"].clip(lower=0.5), where="mid", color=f"C{i}", label=name)
    n_eval = int(params.get("eval_samples", EVAL_SAMPLES))
    ax_h.axhline(n_eval / N_MODES, color="k", ls="--", lw=1, label="uniform")
    ax_h.set(
        yscale="log",
        xlabel="mode rank",
        ylabel="samples in mode (0 shown at 0.5)",
        title="Sorted mode histogram (one seed)",
    )
    ax_h.legend(fontsize=7)
    return fig


def fig_samples(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """16 generated stacks per method (first seed), channels shown as RGB."""
    samples = tables["samples"]
    names = list(dict.fromkeys(samples["method"]))
    fig, axes = plots.figure(len(names), width=3.0, height=3.2)
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        s = samples[samples["method"] == name]
        side = int(s["row"].max()) + 1
        n = int(s["sample"].max()) + 1
        per_row = int(math.ceil(math.sqrt(n)))
        canvas = np.ones((per_row * (side + 1), per_row * (side + 1), N_CHANNELS))
        for (k, ch), g in s.groupby(["sample", "channel"]):
            r, c = divmod(int(k), per_row)
            img = (g["value"].to_numpy().reshape(side, side) + 1) / 2
            canvas[
                r * (side + 1) : r * (side + 1) + side,
                c * (side + 1) : c * (side + 1) + side,
                int(ch),
            ] = img
        ax.imshow(np.clip(canvas, 0, 1), interpolation="nearest")
        ax.set_title(name)
        ax.set_axis_off()  # an image grid: no axes, no units
        ax.grid(False)
    return fig


EXPERIMENT = Experiment(
    run=run,
    params=(
        "dataset",
        "methods",
        "steps",
        "batch_size",
        "lr",
        "lr_d",
        "z_dim",
        "g_channels",
        "d_channels",
        "mbd_kernels",
        "classifier_hidden",
        "classifier_steps",
        "eval_samples",
    ),
    metrics=(
        "classifier_accuracy",
        "real_modes",
        "real_kl",
        "confident_real",
        *[f"{k}_{m}" for m in METHODS for k in ("modes", "kl", "confident", "quality")],
        "modes_gain_pacgan2",
        "kl_drop_pacgan2",
    ),
    figures={"stacked_modes": fig_modes, "stacked_samples": fig_samples},
    doc=__doc__ or "",
)
