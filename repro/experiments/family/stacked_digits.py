"""Stacked digits (1,000 modes, counted by a classifier): data, modes and the classifier.

The stacked-MNIST protocol of Unrolled GAN, VEEGAN and PacGAN (Table 2) on the suite's data:
three independent digit images stacked as the channels of one image (``StackedSampler``), the
mode of a stack from its channels' classifier labels (``mode_ids``), the mode histogram and its
metrics, and the per-seed classifier with its held-out accuracy and the share of confidently
labelled stacks (the sample-quality metric). Used by ``repro.experiments.stacked_digits_modes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from repro import data as rdata
from repro.engine import STREAMS, Stream, fit, optim, use_graphs
from repro.metrics import reverse_kl_uniform
from repro.nets import (
    BatchedMLP,
)

N_CHANNELS = 3  # digits stacked per sample
N_CLASSES = 10
N_MODES = N_CLASSES**N_CHANNELS
EVAL_SAMPLES = 26_000  # PacGAN Table 2 / VEEGAN Table 2 protocol
DATASETS = rdata.DATASETS  # and "auto" (repro.data.resolve_dataset)
SPLIT_SEED = 20_161_130  # one fixed train / held-out split of the digits, for every seed
# a channel is a recognisable digit when the classifier gives its label at least this probability
CONFIDENCE = 0.9


# ---------------------------------------------------------------------------------------------
# data


def load_labelled(dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [-1, 1] (N, 1, H, W) and labels (N,) of ``split`` ("train" or "test").

    digits: scikit-learn's 1,797 8x8 digits, split 75 / 25 by one fixed permutation
    (``SPLIT_SEED``). fashion-mnist: ``repro.data.load_fashion_mnist(split)`` (60,000 / 10,000).
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; valid: train, test")
    if dataset == "fashion-mnist":
        images, labels = rdata.load_fashion_mnist(split)
        return torch.as_tensor(images, dtype=torch.get_default_dtype()), torch.as_tensor(
            labels
        ).long()
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    images = rdata.load_digits_images()
    labels = torch.from_numpy(load_digits().target).long()
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))
    cut = (3 * len(images)) // 4
    idx = perm[:cut] if split == "train" else perm[cut:]
    return images[idx], labels[idx]


class StackedSampler:
    """Stacks of ``N_CHANNELS`` independent, uniformly drawn images: (S, B, 3, H, W).

    ``gens`` is a ``repro.engine.streams.Stream`` of S copies: copy s's indices (with
    replacement) depend on its seed alone, so batched seeds see the data separate runs would.
    The indices are drawn on the stream's device. ``labels`` gives each stack's mode when asked
    for.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        self.images = images  # (N, 1, H, W)
        self.labels = labels

    def indices(self, gens: Stream, batch: int) -> torch.Tensor:
        return gens.randint(len(self.images), batch, N_CHANNELS)  # (S, B, 3)

    def __call__(self, gens: Stream, batch: int, device: Any = None) -> torch.Tensor:
        idx = self.indices(gens, batch)  # (S, B, 3)
        out = self.images[idx.to(self.images.device)].squeeze(3)  # (S, B, 3, H, W)
        return out if device is None else out.to(device)


def mode_ids(labels: torch.Tensor) -> torch.Tensor:
    """Mode of a stack from its channel labels (..., 3): 100 a + 10 b + c, in 0..999."""
    weights = N_CLASSES ** torch.arange(N_CHANNELS - 1, -1, -1, device=labels.device)
    return (labels * weights).sum(-1)


def mode_histogram(modes: torch.Tensor) -> torch.Tensor:
    """Counts of every mode per seed: modes (S, N) long -> (S, 1000) float64."""
    counts = torch.zeros(modes.shape[0], N_MODES, dtype=torch.float64, device=modes.device)
    return counts.scatter_add_(1, modes, torch.ones_like(modes, dtype=torch.float64))


def histogram_metrics(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Modes hit at least once and KL(histogram || uniform over 1,000) (PacGAN Table 2): (S,)."""
    return {"modes": (counts > 0).sum(1).double(), "kl": reverse_kl_uniform(counts)}


# ---------------------------------------------------------------------------------------------
# classifier


def train_classifier(
    images: torch.Tensor, labels: torch.Tensor, seeds: Sequence[int], params, device
) -> BatchedMLP:
    """One MLP digit classifier per seed (pixels -> hidden -> hidden -> 10), Adam on the SUM of
    per-seed cross-entropies over minibatches of the training split (drawn with replacement from
    stream "classifier" on ``device``; the same stream id initialises the weights)."""
    side = images.shape[-1]
    width = int(params["classifier_hidden"])
    net = BatchedMLP((side * side, width, width, N_CLASSES), seeds, stream=STREAMS["classifier"])
    net.to(device)
    graphs = use_graphs(device)  # each update a captured CUDA graph on CUDA
    gens = Stream(seeds, "classifier", device, static=graphs)
    flat, labels = images.reshape(len(images), -1).to(device), labels.to(device)
    batch = min(128, len(flat))

    def per_seed_loss(step: int) -> torch.Tensor:
        idx = gens.randint(len(flat), batch)  # (S, B)
        logits = net(flat[idx])  # (S, B, 10)
        ce = F.cross_entropy(
            logits.reshape(-1, N_CLASSES), labels[idx].reshape(-1), reduction="none"
        )
        return ce.reshape(len(seeds), batch).mean(1)

    opt = optim.make("adam", net.parameters(), 1e-3, capturable=graphs)
    fit(opt, per_seed_loss, int(params["classifier_steps"]), graphs=graphs)
    return net


@torch.no_grad()
def classify(net: BatchedMLP, images: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Class of every channel of per-seed stacks: (S, N, 3, H, W) -> (S, N, 3) long."""
    s, n = images.shape[:2]
    flat = images.reshape(s, n * N_CHANNELS, -1)
    out = [net(flat[:, i : i + chunk]).argmax(-1) for i in range(0, flat.shape[1], chunk)]
    return torch.cat(out, 1).reshape(s, n, N_CHANNELS)


@torch.no_grad()
def confident_share(net: BatchedMLP, images: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Share of per-seed stacks (S, N, 3, H, W) whose every channel the classifier labels with
    probability >= ``CONFIDENCE`` (max softmax): (S,) in [0, 1]. The sample-quality metric of the
    stacks: held-out real stacks score ~0.87 with the quick classifier, uniform noise ~0.003."""
    s, n = images.shape[:2]
    flat = images.reshape(s, n * N_CHANNELS, -1)
    probs = [
        torch.softmax(net(flat[:, i : i + chunk]), -1).amax(-1)
        for i in range(0, flat.shape[1], chunk)
    ]
    least = torch.cat(probs, 1).reshape(s, n, N_CHANNELS).amin(-1)  # least confident channel
    return (least >= CONFIDENCE).double().mean(1)


@torch.no_grad()
def held_out_accuracy(net: BatchedMLP, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Accuracy per seed on the held-out split: (S,)."""
    flat = images.reshape(1, len(images), -1).expand(net.n_seeds, -1, -1)
    pred = net(flat.to(next(net.parameters()).device)).argmax(-1).cpu()
    return (pred == labels.reshape(1, -1)).double().mean(1)
