"""d-perfect (Arjovsky & Bottou 2017, Fig. 1): a fresh D against a frozen G reaches accuracy 1,
sometimes within 50 iterations; each G snapshot also gets a sample-quality score (Frechet distance
in a small classifier's features). The protocol is ``family.arjovsky_bottou``."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from repro.data import load_labels, sample_normal
from repro.engine import fit, optim, use_graphs
from repro.engine.streams import Stream
from repro.experiments import Experiment, Tables
from repro.experiments.family.arjovsky_bottou import (
    PROTOCOL_PARAMS,
    STREAM_CLASSIFIER,
    data_title,
    epoch_label,
    label_copies,
    load_split,
    make_generator,
    median_band,
    per_snapshot,
    protocol,
    seed_table,
    series_style,
    setup,
    wide_figure,
)
from repro.metrics import feature_gaussian, frechet_distance
from repro.nets import STREAM_EVAL, ConvGenerator, seed_generators

# Accuracy a fresh D must reach to count as "at 1" (Fig. 1): see claims/d-perfect.yaml.
ACCURACY_TARGET = 0.99


class FeatureNet(nn.Module):
    """A small classifier whose 64-unit hidden layer gives the Frechet-distance features."""

    def __init__(self, size: int, n_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * math.ceil(size / 4) ** 2, 64),
            nn.ReLU(),
        )
        self.head = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(
    params: Mapping[str, Any], steps: int, device: Any, batch: int = 128
) -> tuple[FeatureNet, float]:
    """Train ``FeatureNet`` on the training split (Adam 1e-3); return it and its held-out accuracy.

    Stream STREAM_CLASSIFIER of seed 0 gives its weights (a CPU generator, like every network's
    initialisation) and its minibatches (a ``Stream`` drawn on ``device``): the same instrument
    for every seed of a run.
    """
    x, y = load_split(params, "train", device), load_labels(params["dataset"], "train").to(device)
    gen = seed_generators([0], STREAM_CLASSIFIER)[0]
    net = FeatureNet(x.shape[-1])
    with torch.no_grad():  # torch.nn's default bounds, drawn from our own generator
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                bound = 1.0 / math.sqrt(m.weight[0].numel())
                m.weight.copy_((torch.rand(m.weight.shape, generator=gen) * 2 - 1) * bound)
                m.bias.copy_((torch.rand(m.bias.shape, generator=gen) * 2 - 1) * bound)
    net = net.to(device)
    graphs = use_graphs(device)  # each update a captured CUDA graph on CUDA
    batches = Stream([0], STREAM_CLASSIFIER, device, static=graphs)

    def loss(step: int) -> torch.Tensor:  # one classifier for all seeds: a single loss
        idx = batches.randint(len(x), batch)[0]
        return F.cross_entropy(net(x[idx]), y[idx])

    fit(optim.make("adam", net.parameters(), 1e-3, capturable=graphs), loss, steps, graphs=graphs)
    xt, yt = load_split(params, "test", device), load_labels(params["dataset"], "test").to(device)
    with torch.no_grad():
        pred = torch.cat([net(c).argmax(1) for c in xt.split(1024)])
    return net, float((pred == yt).double().mean())


def _features(net: FeatureNet, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([net.body(c) for c in x.split(1024)]).cpu()


def sample_quality(
    params: Mapping[str, Any], seeds: Sequence[int], G: ConvGenerator, device: Any
) -> tuple[pd.DataFrame, float]:
    """Frechet distance of each G copy's samples to held-out real images, in classifier features.

    Also the untrained G (epochs -1 in the table) and real training images (FD_real, the floor).
    quality = (FD - FD_real) / (FD_untrained - FD_real) per seed: 0 = as good as real data,
    1 = as bad as the untrained generator. Returns (table, classifier held-out accuracy).
    """
    p = params
    net, accuracy = train_classifier(p, p["classifier_steps"], device)
    n = p["fd_samples"]
    perms = Stream([0], STREAM_CLASSIFIER + 100, device)  # which real images: seed 0, every run
    test, train = load_split(p, "test", device), load_split(p, "train", device)
    n_real = min(n, len(test))
    real = feature_gaussian(_features(net, test[perms.permutation(len(test))[0, :n_real]]))
    floor = frechet_distance(
        *feature_gaussian(_features(net, train[perms.permutation(len(train))[0, :n_real]])),
        *real,
    )
    state = copy.deepcopy(G.state_dict())
    untrained = make_generator(p, seeds, G.base * 4).to(device)
    rows = []
    for label, gen_model in (("snapshot", G), ("untrained", untrained)):
        z = sample_normal(Stream(gen_model.seeds, STREAM_EVAL + 100, device), n, p["z_dim"])
        with torch.no_grad():
            fakes = gen_model(z)  # (K, n, 1, H, W)
        for c in range(len(gen_model.seeds)):
            fd = frechet_distance(*feature_gaussian(_features(net, fakes[c])), *real)
            rows.append({"copy": c, "kind": label, "fd": fd, "fd_real": floor})
    G.load_state_dict(state)
    df = pd.DataFrame(rows)
    snap = label_copies(df[df["kind"] == "snapshot"], seeds, p["g_epochs"])
    init = df[df["kind"] == "untrained"].assign(
        seed=[int(seeds[c]) for c in df.loc[df["kind"] == "untrained", "copy"]],
        epochs=-1,
        d_index=0,
    )
    init_fd = init.set_index("seed")["fd"]
    out = pd.concat([snap, init], ignore_index=True)
    out["fd_untrained"] = out["seed"].map(init_fd)
    out["quality"] = (out["fd"] - floor) / (out["fd_untrained"] - floor)
    return out.drop(columns=["copy", "kind", "d_index"]), accuracy


def first_iteration(curve: pd.DataFrame, column: str, target: float, censored: float) -> float:
    """The first evaluated iteration with ``column >= target``; ``censored`` if there is none."""
    hit = curve.loc[curve[column] >= target, "iteration"]
    return float(hit.min()) if len(hit) else float(censored)


def run_d_perfect(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """Held-out accuracy of a fresh D against frozen G snapshots, and each snapshot's quality.

    Per seed: ``final_accuracy`` (worst G, last evaluation), ``final_train_accuracy`` (context),
    ``iters_to_target_worst`` (slowest G to held-out accuracy >= 0.99),
    ``iters_to_perfect_best`` (fastest G to held-out accuracy 1: Fig. 1's "sometimes less than
    50 iterations"), ``iters_to_perfect_best_good`` (the same among the Gs with quality <=
    good_quality; context),
    ``n_good_snapshots``, ``classifier_test_accuracy``. Never reached: d_iterations + 1.
    """
    p = params
    curves, G, _, _ = protocol(p, seeds, device, costs=())
    censored = p["d_iterations"] + 1

    def summary(c: pd.DataFrame) -> dict[str, float]:
        return {
            "final_accuracy": float(c["accuracy"].iloc[-1]),
            "final_train_accuracy": float(c["train_accuracy"].iloc[-1]),
            "iters_to_target": first_iteration(c, "accuracy", ACCURACY_TARGET, censored),
            "iters_to_perfect": first_iteration(c, "accuracy", 1.0, censored),
        }

    snaps = per_snapshot(curves, summary)
    quality, accuracy = sample_quality(p, seeds, G, device)
    snaps = snaps.merge(quality, on=["seed", "epochs"], how="left")
    snaps["good"] = snaps["quality"] <= p["good_quality"]
    snaps["iters_to_perfect_good"] = snaps["iters_to_perfect"].where(snaps["good"], censored)
    table = seed_table(
        seeds,
        snaps,
        {
            "final_accuracy": ("final_accuracy", "min"),
            "final_train_accuracy": ("final_train_accuracy", "min"),
            "iters_to_target_worst": ("iters_to_target", "max"),
            "iters_to_perfect_best": ("iters_to_perfect", "min"),
            "iters_to_perfect_best_good": ("iters_to_perfect_good", "min"),
            "n_good_snapshots": ("good", "sum"),
        },
    )
    table["n_good_snapshots"] = table["n_good_snapshots"].astype(float)
    table["classifier_test_accuracy"] = accuracy
    return {
        "seeds": table,
        "curves": curves,
        "snapshots": snaps,
        "quality": quality,
        "setup": setup(p),
    }


def fig_d_perfect(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Fig. 1 of the paper: held-out D error (1 - accuracy) against D iterations, per G."""
    fig, ax = wide_figure(width=6.0, height=4.0)
    curves = tables["curves"]
    curves = curves[curves["d_index"] == 0].copy()
    n_eval = min(params["eval_size"], 297 if params["dataset"] == "digits" else 10000)
    floor = 0.5 / (2 * n_eval)  # balanced accuracy moves in steps of about 1 / (2 n)
    curves["d_error"] = (1 - curves["accuracy"]).clip(lower=floor)
    curves["train_error"] = (1 - curves["train_accuracy"]).clip(lower=floor)
    for i, (ep, c) in enumerate(curves.groupby("epochs")):
        median_band(ax, c, "iteration", "d_error", i, f"{epoch_label(ep)}, held out")
        t = c.dropna(subset=["train_error"]).groupby("iteration")["train_error"].median()
        ax.plot(
            t.index,
            t.values,
            color=series_style(i)["color"],
            lw=0.8,
            ls=":",
            alpha=0.8,
            label=f"{epoch_label(ep)}, training batches",
        )
    ax.axhline(floor, color="grey", lw=0.8, ls=(0, (1, 3)), label="0 errors (drawn at floor)")
    ax.axhline(1 - ACCURACY_TARGET, color="k", lw=0.8, ls="--", label=f"accuracy {ACCURACY_TARGET}")
    ax.axvline(50, color="C3", lw=0.8, ls="-.", label="50 iterations (paper: sometimes fewer)")
    ax.set(
        yscale="log",
        xlabel="fresh D iterations (G frozen)",
        ylabel=r"D error $1 - \mathrm{accuracy}$",
        title=f"fresh D against a frozen G ({data_title(params)})",
    )
    ax.set_xscale("symlog", linthresh=10, linscale=0.5)
    ax.set_xlim(left=0)
    ax.legend(fontsize=7, ncol=2)
    return fig


def fig_sample_quality(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Frechet distance per snapshot (and untrained G, real data) in the classifier's features."""
    fig, axes = wide_figure(2, width=4.2, height=3.4)
    q = tables["quality"]
    acc = float(tables["seeds"]["classifier_test_accuracy"].iloc[0])
    order = sorted(q["epochs"].unique())
    xs = np.arange(len(order))
    for ax, col, ylabel in (
        (axes[0], "fd", r"Fréchet distance $\mathrm{FD}$ (feature units$^2$)"),
        (
            axes[1],
            "quality",
            r"$(\mathrm{FD}-\mathrm{FD}_{real}) / (\mathrm{FD}_{untrained}-\mathrm{FD}_{real})$",
        ),
    ):
        for j, seed in enumerate(sorted(q["seed"].unique())):
            s = q[q["seed"] == seed].set_index("epochs").loc[order, col]
            ax.plot(
                xs,
                s.values,
                marker="o",
                ms=4,
                lw=0.8,
                alpha=0.7,
                label=f"seed {seed}" if j < 10 else None,
            )
        ax.set_xticks(xs, [epoch_label(e).replace("G after ", "") for e in order])
        ax.set(xlabel="generator", ylabel=ylabel)
    axes[0].axhline(q["fd_real"].iloc[0], color="k", ls="--", lw=0.8, label=r"$\mathrm{FD}_{real}$")
    axes[0].set_yscale("log")
    axes[1].axhline(
        params["good_quality"], color="k", ls="--", lw=0.8, label="not trivially bad below"
    )
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    axes[0].set_title(f"{data_title(params)}", fontsize=9)
    axes[1].set_title(f"classifier held-out accuracy {acc:.3f}", fontsize=9)
    return fig


EXPERIMENT = Experiment(
    run=run_d_perfect,
    params=PROTOCOL_PARAMS + ("classifier_steps", "fd_samples", "good_quality"),
    metrics=(
        "final_accuracy",
        "final_train_accuracy",
        "iters_to_target_worst",
        "iters_to_perfect_best",
        "iters_to_perfect_best_good",
        "n_good_snapshots",
        "classifier_test_accuracy",
    ),
    figures={"d_error": fig_d_perfect, "sample_quality": fig_sample_quality},
    positive_metrics=(
        "iters_to_target_worst",
        "iters_to_perfect_best",
        "iters_to_perfect_best_good",
    ),
    doc="Arjovsky & Bottou 2017, Fig. 1: a fresh D against a frozen G reaches accuracy 1 fast.",
)
