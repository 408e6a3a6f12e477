"""Arjovsky & Bottou 2017, Figs. 1-3 and Thm 2.6: a fresh D against a frozen G wins, and G's
gradients suffer.

Protocol (Sec. 2.2-2.3 of the paper): train a DCGAN for 1, 10 and 25 epochs and keep G at each;
freeze it; train a fresh discriminator from scratch against it and record, as D learns,

- D's accuracy (Fig. 1: it reaches 1, sometimes within 50 iterations),
- ||grad_theta E_z log(1 - D(G(z)))||, the original cost's gradient (Fig. 2, Thm 2.4: it vanishes),
- ||grad_theta E_z -log D(G(z))||, the alternative cost's gradient (Fig. 3: it grows and gets
  noisier; Thm 2.6: if D's error is Gaussian noise its coordinates are Cauchy distributed).

Data: Fashion-MNIST with the standard 28x28 DCGAN (``repro.nets.ConvGenerator`` /
``ConvDiscriminator``) at full scale; the 8x8 digits with the same architecture at smoke / quick.
D trains on the training split; every evaluation uses held-out real images and fresh fakes.

Batching: one GAN run (all seeds) gives the snapshots; the fresh-D phase stacks them, copy
k * S + i of G holding snapshot k of seed i (``stack_snapshots``), and trains ``n_ds`` fresh Ds
per copy of G as one batched D, copy j * K + c facing G copy c (K = snapshots x seeds). D's
copies share G's outputs (``repeat_copies``); G's gradient for each D is a vector-Jacobian product
through the one copy of G (``per_d_gradients``).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from repro import plots
from repro.data import (
    DIGITS_TEST_SIZE,
    EpochSampler,
    digits_split_indices,
    image_size,
    load_images,
    load_labels,
    require_dataset,
    sample_normal,
)
from repro.engine import fit, optim
from repro.experiments import Experiment, Tables, setup_table
from repro.invariants import require
from repro.losses import gan_d_loss, minimax_g_loss, non_saturating_g_loss
from repro.metrics import d_accuracy, feature_gaussian, frechet_distance, per_seed_grad_norm
from repro.nets import (
    STREAM_EVAL,
    STREAM_FRESH_D,
    ConvDiscriminator,
    ConvGenerator,
    seed_generators,
    stream_seed,
)
from repro.train import TrainConfig, epoch_steps, train_gan

log = logging.getLogger(__name__)

# Random streams beyond repro.nets' 0-4: minibatch gradient samples, the quality classifier,
# the theorem's noise model, the fresh Ds' initial weights (per D index).
STREAM_MINIBATCH, STREAM_CLASSIFIER, STREAM_THEOREM, STREAM_D_INDEX = 7, 8, 9, 10

# (q99 - q01) / (q75 - q25): the two-sided tail-quantile ratio of a symmetric law.
GAUSSIAN_TAIL_RATIO = float(
    (stats.norm.ppf(0.99) - stats.norm.ppf(0.01)) / (2 * stats.norm.ppf(0.75))
)
CAUCHY_TAIL_RATIO = float(math.tan(0.49 * math.pi) / math.tan(0.25 * math.pi))
HEAVY_TAIL_THRESHOLD = math.sqrt(GAUSSIAN_TAIL_RATIO * CAUCHY_TAIL_RATIO)  # 10.47

# Accuracy a fresh D must reach to count as "at 1" (Fig. 1): see claims/d-perfect.yaml.
ACCURACY_TARGET = 0.99

COSTS = {"minimax": minimax_g_loss, "non_saturating": non_saturating_g_loss}

PROTOCOL_PARAMS = (
    "dataset",
    "g_epochs",
    "batch_size",
    "z_dim",
    "g_channels",
    "d_channels",
    "g_norm",
    "d_norm",
    "g_objective",
    "lr",
    "d_lr",
    "d_iterations",
    "eval_every",
    "eval_every_early",
    "eval_early_until",
    "eval_size",
)

DATA_LABEL = {
    "digits": "8x8 digits, DCGAN 8x8 (proxy)",
    "fashion-mnist": "Fashion-MNIST, DCGAN 28x28",
}


# ---------------------------------------------------------------------------------------------
# pure statistics


def tail_ratio(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """(q99 - q01) / (q75 - q25) along ``dim``: 3.45 for a Gaussian, 31.8 for a Cauchy.

    Thm 2.6 of Arjovsky & Bottou 2017 predicts Cauchy-distributed coordinates of the -log D
    gradient; this ratio compares a sample's tails with its bulk, free of location and scale.
    NaN where the inter-quartile range is 0.
    """
    q = torch.quantile(
        values.double(), torch.tensor([0.01, 0.25, 0.75, 0.99], dtype=torch.float64), dim=dim
    )
    iqr = q[2] - q[1]
    return torch.where(iqr > 0, (q[3] - q[0]) / iqr, torch.full_like(iqr, float("nan")))


def robust_standardise(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """(v - median) / (q75 - q25) * 1.349 along ``dim``: a N(m, s^2) sample becomes ~N(0, 1)."""
    v = values.double()
    q = torch.quantile(
        v, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), dim=dim, keepdim=True
    )
    return (v - q[1]) / (q[2] - q[0]) * (2 * stats.norm.ppf(0.75))


def pooled_tail_ratio(values: torch.Tensor) -> float:
    """Tail ratio of (n, J) values after standardising each column robustly and pooling.

    Each of J coordinates has only n draws (n fresh Ds), too few for its own q01 / q99; pooling
    the standardised columns gives n * J points. Columns with zero inter-quartile range are
    dropped. Gaussian columns give about 3.45 (a little more for small n, from the noise of
    each column's median and IQR), Cauchy columns about 31.8.
    """
    z = robust_standardise(values, dim=0).reshape(-1)
    z = z[torch.isfinite(z)]
    return float(tail_ratio(z)) if z.numel() >= 100 else float("nan")


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log10 y on log10 x over the finite, positive pairs (NaN if < 3)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 3 or np.ptp(np.log10(x[ok])) == 0:
        return float("nan")
    return float(np.polyfit(np.log10(x[ok]), np.log10(y[ok]), 1)[0])


def eval_schedule(iterations: int, every: int, every_early: int, early_until: int) -> list[int]:
    """Iterations at which D is evaluated: 0, every ``every_early`` up to ``early_until``, then
    every ``every``, and the last one."""
    early = range(0, min(early_until, iterations) + 1, every_early)
    return sorted(set(early) | set(range(0, iterations + 1, every)) | {iterations})


# ---------------------------------------------------------------------------------------------
# Thm 2.6 in its own model: D = D* + Gaussian noise


def theorem_model_gradients(
    gens: Sequence[torch.Generator], draws: int, gap: float, noise_std: float, points: int
) -> torch.Tensor:
    """E_z[-d/dtheta log D(g_theta(z))] for ``draws`` realisations of D's error, per generator.

    The model of Arjovsky & Bottou 2017, Thm 2.6: P_r = N(0, 1), P_g = N(gap, 1) with
    g_theta(z) = theta + z at theta = gap; the optimal D* = P_r / (P_r + P_g) =
    sigmoid(gap^2 / 2 - gap x), D*'(x) = -gap D* (1 - D*); D = D* + eps(x) and D' = D*' + r(x),
    eps and r independent N(0, noise_std^2) at every x ("white noise"). E_z is a Gauss-Hermite
    quadrature with ``points`` nodes, so -d/dtheta log D(theta + z) = -D'(x) / D(x) is averaged as
    sum_i w_i (-D'(x_i) / D(x_i)). D is not kept inside (0, 1): the theorem does not either.

    Returns (len(gens), draws) float64.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)
    x = torch.as_tensor(gap + nodes, dtype=torch.float64)
    w = torch.as_tensor(weights / weights.sum(), dtype=torch.float64)
    d_star = torch.sigmoid(gap**2 / 2 - gap * x)
    d_star_prime = -gap * d_star * (1 - d_star)
    out = []
    for g in gens:
        eps = noise_std * torch.randn(draws, points, generator=g, dtype=torch.float64)
        r = noise_std * torch.randn(draws, points, generator=g, dtype=torch.float64)
        out.append((-(d_star_prime + r) / (d_star + eps) * w).sum(dim=1))
    return torch.stack(out)


def require_theorem_model_heavy(theorem: pd.DataFrame, draws: int) -> None:
    """Invariant: in Thm 2.6's own model the tail ratio is Cauchy-like (> 10.47) at every noise
    level > 0, by construction (D* -> 0 on the fake support, so D'/D is a ratio of independent
    centred Gaussians there). Skipped below 1,000 draws, where q01 / q99 are too noisy.
    ``theorem``: rows (seed, noise_std, tail_ratio)."""
    heavy = theorem[theorem["noise_std"] > 0].groupby("seed")["tail_ratio"].min()
    require(
        bool((heavy > HEAVY_TAIL_THRESHOLD).all()) or draws < 1000,
        f"Thm 2.6 model not heavy-tailed: min tail ratio per seed {heavy.round(2).to_dict()}",
    )


THEOREM_NOISE_GRID = tuple(10.0**k for k in range(-8, 1))  # noise levels for the figure


# ---------------------------------------------------------------------------------------------
# data, models, snapshots


def _images(params: Mapping[str, Any], split: str, device: Any) -> torch.Tensor:
    require_dataset(params["dataset"])
    return load_images(params["dataset"], split).to(device)


def make_generator(params: Mapping[str, Any], seeds: Sequence[int], size: int) -> ConvGenerator:
    p = params
    return ConvGenerator(
        seeds, z_dim=p["z_dim"], channels=p["g_channels"], image_size=size, norm=p["g_norm"]
    )


# GAN settings that determine the snapshots (the fresh-D settings d_norm, d_lr, ... do not)
GAN_PARAMS = (
    "dataset",
    "g_epochs",
    "batch_size",
    "z_dim",
    "g_channels",
    "d_channels",
    "g_norm",
    "g_objective",
    "lr",
)
CHECKPOINT_DIR_ENV = "GAN_CLAIMS_CHECKPOINT_DIR"


def snapshot_checkpoint(params: Mapping[str, Any], seeds: Sequence[int], device: Any):
    """Where the GAN run behind the snapshots is checkpointed, or None (the default).

    With $GAN_CLAIMS_CHECKPOINT_DIR set, ``train_gan`` resumes from / writes
    ``<dir>/gradients-gan-<key>.pt``; the key hashes the GAN settings, the seeds, the device
    type, torch's version and the source of the code that trains the GAN, so the three claims
    and their fresh-D variants (d-bn-off, d-lr-1e-3) share one GAN run per data set and an
    interrupted run resumes; any change to that code or those settings gives a new file.
    """
    root = os.environ.get(CHECKPOINT_DIR_ENV)
    if not root:
        return None
    code = [train_gan, train_snapshots, ConvGenerator, ConvDiscriminator, EpochSampler]
    key = {
        "params": {k: params[k] for k in GAN_PARAMS},
        "seeds": [int(s) for s in seeds],
        "device": torch.device(device).type,
        "torch": torch.__version__,
        "code": hashlib.sha256("".join(inspect.getsource(f) for f in code).encode()).hexdigest(),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(root, f"gradients-gan-{digest}.pt")


def train_snapshots(
    params: Mapping[str, Any], seeds: Sequence[int], device: Any
) -> list[dict[str, torch.Tensor]]:
    """One batched GAN run on the training split; G's state after each of ``g_epochs`` epochs.

    The GAN is the standard DCGAN (D with batch norm, Adam lr, beta1 0.5, the g_objective cost,
    k = 1). Epoch 0 is G at initialisation. Returns one state_dict (seed dim S) per entry.
    """
    p = params
    real = EpochSampler(_images(p, "train", device))
    size = real.data.shape[-1]
    G = make_generator(p, seeds, size)
    D = ConvDiscriminator(seeds, channels=p["d_channels"], image_size=size, norm="batch")
    initial = copy.deepcopy(G.state_dict())
    steps = epoch_steps(p["g_epochs"], len(real.data), p["batch_size"])
    snaps: dict[int, dict[str, torch.Tensor]] = {}
    if max(steps) > 0:
        cfg = TrainConfig(
            steps=max(steps),
            batch_size=p["batch_size"],
            objective=p["g_objective"],
            lr_g=p["lr"],
            lr_d=p["lr"],
            log_every=max(1, max(steps) // 10),
            snapshot_steps=tuple(s for s in steps if s > 0),
            checkpoint_every=2000,
        )
        ckpt = snapshot_checkpoint(p, seeds, device)
        snaps = train_gan(
            G, D, real, cfg, z_dim=p["z_dim"], device=device, checkpoint=ckpt
        ).snapshots
    return [initial if s == 0 else snaps[s] for s in steps]


def stack_snapshots(
    params: Mapping[str, Any], seeds: Sequence[int], snapshots: Sequence[dict], device: Any
) -> ConvGenerator:
    """A batched G of K*S copies: copy k*S + i is snapshot k of seed i (seeds repeated K times)."""
    G = make_generator(params, list(seeds) * len(snapshots), image_size(params["dataset"]))
    G.load_state_dict({k: torch.cat([s[k] for s in snapshots]) for k in snapshots[0]})
    return G.to(device)


def fresh_discriminators(
    params: Mapping[str, Any], G: ConvGenerator, n_ds: int, device: Any
) -> ConvDiscriminator:
    """``n_ds`` fresh Ds per copy of G, as one batched D: copy j * K + c faces G copy c.

    D j of seed s starts from stream STREAM_FRESH_D of the integer stream_seed(s, 10 + j) (j = 0:
    of s itself), so the fresh D of seed s is the same against every snapshot, and the n_ds Ds
    differ only in their initialisation.
    """
    init_seeds = [
        s if j == 0 else stream_seed(s, STREAM_D_INDEX + j) % (2**62)
        for j in range(n_ds)
        for s in G.seeds
    ]
    size = G.base * 4
    D = ConvDiscriminator(
        init_seeds,
        channels=params["d_channels"],
        image_size=size,
        norm=params["d_norm"],
        stream=STREAM_FRESH_D,
    )
    return D.to(device)


def repeat_copies(x: torch.Tensor, n: int) -> torch.Tensor:
    """(K, B, ...) -> (n * K, B, ...), block j holding a copy of x: D copy j * K + c sees x[c]."""
    return x.repeat(n, *([1] * (x.dim() - 1)))


def label_copies(df: pd.DataFrame, seeds: Sequence[int], epochs: Sequence[int]) -> pd.DataFrame:
    """Add ``epochs``, ``seed`` and ``d_index`` from the ``copy`` column (copy = j*K + k*S + i)."""
    n, k = len(seeds), len(seeds) * len(epochs)
    df = df.copy()
    df["epochs"] = [int(epochs[(c % k) // n]) for c in df["copy"]]
    df["seed"] = [int(seeds[c % n]) for c in df["copy"]]
    df["d_index"] = [int(c // k) for c in df["copy"]]
    return df


# ---------------------------------------------------------------------------------------------
# the fresh-D phase


class _Eval:
    """Held-out evaluation: real test images (per-copy passes) and fresh z, own random stream."""

    def __init__(self, params: Mapping[str, Any], G: ConvGenerator, device: Any):
        self.test = EpochSampler(_images(params, "test", device))
        self.n_real = min(params["eval_size"], len(self.test.data))
        self.n_fake = params["eval_size"]
        self.gens = seed_generators(G.seeds, STREAM_EVAL)
        self.z_dim, self.device = params["z_dim"], device

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.test(self.gens, self.n_real, device=self.device)
        z = sample_normal(self.gens, self.n_fake, self.z_dim, device=self.device)
        return x, z


def evaluate(
    G: nn.Module, D: nn.Module, x: torch.Tensor, z: torch.Tensor, n_ds: int, costs: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Held-out numbers for every D copy, and G-gradient norms for the Ds with index 0.

    Returns (n_ds * K,) tensors: accuracy (balanced, held-out real ``x`` vs fakes G(z)),
    fake_loss = -E log(1 - D(G(z))) and real_loss = -E log D(x); and (K,) grad_norm_<cost> for
    each cost, the norm over all of G's parameters of grad E_z cost(D_0(G(z))).
    """
    k = x.shape[0]
    fake = G(z)  # graph through G for the gradient norms
    fake_logits = D(repeat_copies(fake, n_ds))
    with torch.no_grad():
        real_logits = D(repeat_copies(x, n_ds))
        out = {
            "accuracy": d_accuracy(real_logits, fake_logits),
            "fake_loss": F.softplus(fake_logits).reshape(n_ds * k, -1).mean(1),
            "real_loss": F.softplus(-real_logits).reshape(n_ds * k, -1).mean(1),
        }
    params = list(G.parameters())
    for i, c in enumerate(costs):
        loss = COSTS[c](fake_logits[:k])
        out[f"grad_norm_{c}"] = per_seed_grad_norm(loss, params, retain_graph=i < len(costs) - 1)
    return {key: v.detach().double().cpu() for key, v in out.items()}


def run_fresh_d(
    params: Mapping[str, Any],
    G: ConvGenerator,
    D: ConvDiscriminator,
    n_ds: int,
    costs: Sequence[str],
    device: Any,
) -> pd.DataFrame:
    """Train the batched fresh Ds ``d_iterations`` steps against the frozen G; evaluate on the
    ``eval_schedule``. G's parameters and buffers are left exactly as they were.

    Training batches: per G copy, minibatches of the training split without replacement and z,
    from stream STREAM_FRESH_D (shared by the copy's n_ds Ds). Returns one row per (evaluation,
    D copy): iteration, copy, accuracy (held-out), train_accuracy (mean over the D steps since the
    previous evaluation, before each update; NaN at 0), fake_loss, real_loss, grad_norm_<cost>
    (NaN for Ds with index > 0).
    """
    p = params
    frozen = copy.deepcopy(G.state_dict())  # batch-norm statistics move in train mode
    k, b = len(G.seeds), p["batch_size"]
    train = EpochSampler(_images(p, "train", device))
    gens = seed_generators(G.seeds, STREAM_FRESH_D)
    ev = _Eval(p, G, device)
    opt = optim.make("adam", D.parameters(), p["d_lr"], betas=(0.5, 0.999))
    schedule = eval_schedule(
        p["d_iterations"], p["eval_every"], p["eval_every_early"], p["eval_early_until"]
    )
    t0 = time.perf_counter()
    n_copies = n_ds * k
    acc = {"sum": torch.zeros(n_copies, device=device), "n": 0}  # train accuracy since last eval

    def per_copy_loss(it: int) -> torch.Tensor:
        x = train(gens, b, device=device)
        z = sample_normal(gens, b, p["z_dim"], device=device)
        with torch.no_grad():
            fake = G(z)
        real_logits = D(repeat_copies(x, n_ds))
        fake_logits = D(repeat_copies(fake, n_ds))
        acc["sum"] += d_accuracy(real_logits.detach(), fake_logits.detach())  # before the update
        acc["n"] += 1
        return gan_d_loss(real_logits, fake_logits)  # (n_ds * K,)

    def evaluate_at(it: int) -> dict[str, torch.Tensor]:
        stats_ = evaluate(G, D, *ev.batch(), n_ds, costs)
        G.zero_grad(set_to_none=True)
        nan = torch.full((n_copies,), math.nan, device=device, dtype=torch.float64)
        train_acc = (acc["sum"] / acc["n"]).double() if acc["n"] else nan
        acc["sum"] = torch.zeros(n_copies, device=device)
        acc["n"] = 0
        if it % p["eval_every"] == 0 or it == p["d_iterations"]:
            log.info(
                "fresh D it %d/%d  held-out accuracy %.4f  (%d D copies)  %.1f s",
                it,
                p["d_iterations"],
                float(stats_["accuracy"].mean()),
                n_copies,
                time.perf_counter() - t0,
            )
        padded = {  # grad norms exist for the Ds with index 0 only: NaN for the others
            key: torch.cat(
                [v, torch.full((n_copies - len(v),), math.nan, dtype=v.dtype, device=v.device)]
            )
            if len(v) < n_copies
            else v
            for key, v in stats_.items()  # evaluate() returns them on the host
        }
        return {"train_accuracy": train_acc, **padded}

    result = fit(opt, per_copy_loss, p["d_iterations"], evaluate=evaluate_at, eval_at=schedule)
    rows = result.curves.rename(columns={"step": "iteration"})
    G.load_state_dict(frozen)
    return rows


def protocol(
    params: Mapping[str, Any],
    seeds: Sequence[int],
    device: Any,
    costs: Sequence[str],
    n_ds: int = 1,
) -> tuple[pd.DataFrame, ConvGenerator, ConvDiscriminator, ConvDiscriminator]:
    """Snapshots -> stacked G -> fresh Ds trained against it.

    Returns (labelled curves, G, the trained Ds, a copy of the Ds at initialisation).
    """
    G = stack_snapshots(params, seeds, train_snapshots(params, seeds, device), device)
    D = fresh_discriminators(params, G, n_ds, device)
    D0 = copy.deepcopy(D)
    curves = run_fresh_d(params, G, D, n_ds, costs, device)
    return label_copies(curves, seeds, params["g_epochs"]), G, D, D0


def _per_snapshot(curves: pd.DataFrame, fn) -> pd.DataFrame:
    """One row per (seed, epochs) from ``fn(curve of that copy) -> dict`` (D index 0 only)."""
    rows = [
        {"seed": int(seed), "epochs": int(ep), **fn(c.sort_values("iteration"))}
        for (seed, ep), c in curves[curves["d_index"] == 0].groupby(["seed", "epochs"])
    ]
    return pd.DataFrame(rows)


def seed_table(
    seeds: Sequence[int], snaps: pd.DataFrame, reductions: Mapping[str, tuple[str, Any]]
) -> pd.DataFrame:
    """The "seeds" table: metric -> (column of ``snaps``, how to reduce it over the snapshots)."""
    table = pd.DataFrame({"seed": [int(s) for s in seeds]})
    for metric, (column, how) in reductions.items():
        table[metric] = snaps.groupby("seed")[column].agg(how).loc[list(seeds)].to_numpy()
    return table


def _earliest(snaps: pd.DataFrame):
    """Reducer: the value of ``column`` in the row of the earliest snapshot."""

    def pick(values: pd.Series) -> float:
        return float(values.loc[snaps.loc[values.index, "epochs"].idxmin()])

    return pick


def _at_largest(snaps: pd.DataFrame, key: str):
    """Reducer: the value of ``column`` in the row (snapshot) where ``key`` is largest: Fig. 2's
    "best case", the generator whose gradient decays most."""

    def pick(values: pd.Series) -> float:
        return float(values.loc[snaps.loc[values.index, key].idxmax()])

    return pick


# ---------------------------------------------------------------------------------------------
# Fig. 1: d-perfect, with a sample-quality score per snapshot


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

    Initialised and fed from its own generator (stream STREAM_CLASSIFIER of seed 0): the same
    instrument for every seed of a run.
    """
    x, y = _images(params, "train", device), load_labels(params["dataset"], "train").to(device)
    gen = seed_generators([0], STREAM_CLASSIFIER)[0]
    net = FeatureNet(x.shape[-1])
    with torch.no_grad():  # torch.nn's default bounds, drawn from our own generator
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                bound = 1.0 / math.sqrt(m.weight[0].numel())
                m.weight.copy_((torch.rand(m.weight.shape, generator=gen) * 2 - 1) * bound)
                m.bias.copy_((torch.rand(m.bias.shape, generator=gen) * 2 - 1) * bound)
    net = net.to(device)

    def loss(step: int) -> torch.Tensor:  # one classifier for all seeds: a single loss
        idx = torch.randint(len(x), (batch,), generator=gen).to(device)
        return F.cross_entropy(net(x[idx]), y[idx])

    fit(optim.make("adam", net.parameters(), 1e-3), loss, steps)
    xt, yt = _images(params, "test", device), load_labels(params["dataset"], "test").to(device)
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
    gen = seed_generators([0], STREAM_CLASSIFIER + 100)[0]
    test, train = _images(p, "test", device), _images(p, "train", device)
    n_real = min(n, len(test))
    real = feature_gaussian(_features(net, test[torch.randperm(len(test), generator=gen)[:n_real]]))
    floor = frechet_distance(
        *feature_gaussian(
            _features(net, train[torch.randperm(len(train), generator=gen)[:n_real]])
        ),
        *real,
    )
    state = copy.deepcopy(G.state_dict())
    untrained = make_generator(p, seeds, G.base * 4).to(device)
    rows = []
    for label, gen_model in (("snapshot", G), ("untrained", untrained)):
        z = sample_normal(
            seed_generators(gen_model.seeds, STREAM_EVAL + 100), n, p["z_dim"], device=device
        )
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

    snaps = _per_snapshot(curves, summary)
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


def _figure(ncols: int = 1, width: float = 6.0, height: float = 4.0, width_px: int = 1400):
    """``plots.figure`` with the dpi set so the PNG is ``width_px`` wide (issue 9: >= ~1,000 px;
    the dpi must be given at creation: savefig uses the figure's original dpi)."""
    return plots.figure(ncols, width=width, height=height, dpi=width_px / (width * ncols))


def _epoch_label(ep: int) -> str:
    return "untrained G" if ep < 0 else f"G after {ep} epoch" + ("" if ep == 1 else "s")


SERIES = {
    "color": ["C0", "C1", "C2", "C3"],
    "marker": ["o", "s", "^", "D"],
    "ls": ["-", "--", "-.", ":"],
}


def _style(i: int) -> dict[str, Any]:
    return {k: v[i % len(v)] for k, v in SERIES.items()}


def _median_band(ax, df: pd.DataFrame, x: str, y: str, i: int, label: str, markevery=None):
    g = df.groupby(x)[y]
    med, lo, hi = g.median(), g.min(), g.max()
    st = _style(i)
    ax.plot(
        med.index,
        med.values,
        color=st["color"],
        ls=st["ls"],
        marker=st["marker"],
        ms=3,
        markevery=markevery or max(1, len(med) // 12),
        label=label,
    )
    ax.fill_between(med.index, lo.values, hi.values, color=st["color"], alpha=0.15, lw=0)


def setup(params: Mapping[str, Any]) -> pd.DataFrame:
    """The data and model a run used, for the report."""
    split = {
        "digits": f"train {len(digits_split_indices()[0]):,} / held out {DIGITS_TEST_SIZE} "
        "(one fixed split)",
        "fashion-mnist": "train 60,000 / held out 10,000 (the test split)",
    }
    side = image_size(params["dataset"])
    return setup_table(
        data=f"{DATA_LABEL[params['dataset']]}; {split[params['dataset']]}",
        model=(
            f"DCGAN {side}x{side}: z {params['z_dim']}, G {params['g_channels']} channels "
            f"({params['g_norm']} norm), D {params['d_channels']} channels ({params['d_norm']} "
            f"norm); {params['g_objective']} G cost; Adam lr {params['lr']} (D {params['d_lr']}), "
            f"batch {params['batch_size']}; G kept after {params['g_epochs']} epochs; fresh D "
            f"trained {params['d_iterations']} iterations"
        ),
    )


def _title(params: Mapping[str, Any]) -> str:
    return DATA_LABEL.get(params["dataset"], params["dataset"])


def fig_d_perfect(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Fig. 1 of the paper: held-out D error (1 - accuracy) against D iterations, per G."""
    fig, ax = _figure(width=6.0, height=4.0)
    curves = tables["curves"]
    curves = curves[curves["d_index"] == 0].copy()
    n_eval = min(params["eval_size"], 297 if params["dataset"] == "digits" else 10000)
    floor = 0.5 / (2 * n_eval)  # balanced accuracy moves in steps of about 1 / (2 n)
    curves["d_error"] = (1 - curves["accuracy"]).clip(lower=floor)
    curves["train_error"] = (1 - curves["train_accuracy"]).clip(lower=floor)
    for i, (ep, c) in enumerate(curves.groupby("epochs")):
        _median_band(ax, c, "iteration", "d_error", i, f"{_epoch_label(ep)}, held out")
        t = c.dropna(subset=["train_error"]).groupby("iteration")["train_error"].median()
        ax.plot(
            t.index,
            t.values,
            color=_style(i)["color"],
            lw=0.8,
            ls=":",
            alpha=0.8,
            label=f"{_epoch_label(ep)}, training batches",
        )
    ax.axhline(floor, color="grey", lw=0.8, ls=(0, (1, 3)), label="0 errors (drawn at floor)")
    ax.axhline(1 - ACCURACY_TARGET, color="k", lw=0.8, ls="--", label=f"accuracy {ACCURACY_TARGET}")
    ax.axvline(50, color="C3", lw=0.8, ls="-.", label="50 iterations (paper: sometimes fewer)")
    ax.set(
        yscale="log",
        xlabel="fresh D iterations (G frozen)",
        ylabel=r"D error $1 - \mathrm{accuracy}$",
        title=f"fresh D against a frozen G ({_title(params)})",
    )
    ax.set_xscale("symlog", linthresh=10, linscale=0.5)
    ax.set_xlim(left=0)
    ax.legend(fontsize=7, ncol=2)
    return fig


def fig_sample_quality(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Frechet distance per snapshot (and untrained G, real data) in the classifier's features."""
    fig, axes = _figure(2, width=4.2, height=3.4)
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
        ax.set_xticks(xs, [_epoch_label(e).replace("G after ", "") for e in order])
        ax.set(xlabel="generator", ylabel=ylabel)
    axes[0].axhline(q["fd_real"].iloc[0], color="k", ls="--", lw=0.8, label=r"$\mathrm{FD}_{real}$")
    axes[0].set_yscale("log")
    axes[1].axhline(
        params["good_quality"], color="k", ls="--", lw=0.8, label="not trivially bad below"
    )
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    axes[0].set_title(f"{_title(params)}", fontsize=9)
    axes[1].set_title(f"classifier held-out accuracy {acc:.3f}", fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# Fig. 2 / Thm 2.4: vanishing gradients of the original cost


PAPER_D_ITERATIONS = 4000  # Fig. 2: "in the best case 5 orders of magnitude after 4000 ..."


def run_vanishing(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """||grad E log(1 - D(G(z)))|| as the fresh D learns, on eval_size fresh z.

    Per seed, for the paper's best case, the generator whose gradient decays most over the run
    (``*_largest``): ``log10_decay_largest`` (log10(first / last)), ``log10_decay_from_peak_
    largest`` (log10(max / last)), ``log10_decay_4000_largest`` (first / last evaluation at or
    before 4,000 D iterations, the paper's horizon; NaN for a shorter run) and
    ``fake_loss_final_largest`` (premise); the same for the earliest G (``*_earliest``, context);
    ``loss_slope``, the median over Gs of the slope of log10 norm on log10 held-out fake loss
    after the peak; the worst G's decay, held-out and training accuracy at the end.
    """
    curves, _, _, _ = protocol(params, seeds, device, costs=("minimax",))
    col = "grad_norm_minimax"

    def summary(c: pd.DataFrame) -> dict[str, float]:
        norm = c[col].to_numpy()
        peak = int(np.argmax(norm))
        upto = c["iteration"].to_numpy() <= PAPER_D_ITERATIONS
        reaches = c["iteration"].max() >= PAPER_D_ITERATIONS
        return {
            "log10_decay": float(np.log10(norm[0]) - np.log10(norm[-1])),
            "log10_decay_4000": float(np.log10(norm[0]) - np.log10(norm[upto][-1]))
            if reaches
            else float("nan"),
            "log10_decay_from_peak": float(np.log10(norm[peak]) - np.log10(norm[-1])),
            "loss_slope": loglog_slope(c["fake_loss"].to_numpy()[peak:], norm[peak:]),
            "fake_loss_final": float(c["fake_loss"].iloc[-1]),
            "final_accuracy": float(c["accuracy"].iloc[-1]),
            "final_train_accuracy": float(c["train_accuracy"].iloc[-1]),
        }

    snaps = _per_snapshot(curves, summary)
    table = seed_table(
        seeds,
        snaps,
        {
            "log10_decay_largest": ("log10_decay", _at_largest(snaps, "log10_decay")),
            "log10_decay_from_peak_largest": (
                "log10_decay_from_peak",
                _at_largest(snaps, "log10_decay"),
            ),
            "log10_decay_4000_largest": ("log10_decay_4000", _at_largest(snaps, "log10_decay")),
            "fake_loss_final_largest": ("fake_loss_final", _at_largest(snaps, "log10_decay")),
            "log10_decay_earliest": ("log10_decay", _earliest(snaps)),
            "log10_decay_from_peak_earliest": ("log10_decay_from_peak", _earliest(snaps)),
            "fake_loss_final_earliest": ("fake_loss_final", _earliest(snaps)),
            "loss_slope": ("loss_slope", "median"),
            "log10_decay_worst": ("log10_decay", "min"),
            "final_accuracy": ("final_accuracy", "min"),
            "final_train_accuracy": ("final_train_accuracy", "min"),
        },
    )
    return {"seeds": table, "curves": curves, "snapshots": snaps, "setup": setup(params)}


def fig_vanishing(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Fig. 2 of the paper: the original cost's gradient norm against D iterations (log y)."""
    fig, ax = _figure(width=6.0, height=4.0)
    _norm_panel(
        ax,
        tables["curves"],
        "grad_norm_minimax",
        r"$\|\nabla_\theta\, \mathbb{E}_z \log(1 - D(G_\theta(z)))\|$",
        f"original cost: gradient norm ({_title(params)})",
    )
    return fig


def _norm_panel(ax, curves: pd.DataFrame, column: str, ylabel: str, title: str) -> None:
    """Gradient norm against fresh-D iterations (log y), one median band per generator."""
    curves = curves[curves["d_index"] == 0]
    for i, (ep, c) in enumerate(curves.groupby("epochs")):
        _median_band(ax, c, "iteration", column, i, _epoch_label(ep))
    ax.set(yscale="log", xlabel="fresh D iterations (G frozen)", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)


def fig_norm_vs_loss(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Thm 2.4's mechanism: gradient norm against D's held-out loss on fakes (log-log)."""
    fig, ax = _figure(width=6.0, height=4.0)
    curves = tables["curves"]
    curves = curves[curves["d_index"] == 0]
    for i, (ep, c) in enumerate(curves.groupby("epochs")):
        st = _style(i)
        for j, (_, cs) in enumerate(c.groupby("seed")):
            cs = cs.sort_values("iteration")
            ax.plot(
                cs["fake_loss"],
                cs["grad_norm_minimax"],
                color=st["color"],
                ls=st["ls"],
                lw=0.8,
                alpha=0.7,
                label=_epoch_label(ep) if j == 0 else None,
            )
    lo, hi = curves["fake_loss"].min(), curves["fake_loss"].max()
    ref_y = curves["grad_norm_minimax"].median()
    ref_x = curves["fake_loss"].median()
    xs = np.geomspace(lo, hi, 10)
    ax.plot(xs, ref_y * xs / ref_x, color="k", ls="--", lw=0.8, label="slope 1")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"held-out loss on fakes $-\mathbb{E}_z \log(1 - D(G(z)))$",
        ylabel=r"$\|\nabla_\theta\, \mathbb{E}_z \log(1 - D(G_\theta(z)))\|$",
        title=f"gradient norm against D's error ({_title(params)})",
    )
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------
# Fig. 3 / Thm 2.6: the -log D cost


def per_d_gradients(
    G: nn.Module, D: nn.Module, z: torch.Tensor, n_ds: int, coords: torch.Tensor
) -> torch.Tensor:
    """grad_theta E_z[-log D_j(G(z))] for every D copy, at coordinates ``coords`` (K, J).

    One forward pass of G on z (K, B, z_dim); the input gradient of each D copy's loss; then for
    each D index j one vector-Jacobian product through G. The Ds see the same z, so their gradients
    differ only through D. Returns (n_ds, K, J) on the CPU, float64.
    """
    params = list(G.parameters())
    k = z.shape[0]
    D.requires_grad_(False)
    try:
        x = G(z)
        xr = repeat_copies(x.detach(), n_ds).requires_grad_(True)
        loss = non_saturating_g_loss(D(xr))  # (n_ds * K,)
        (gx,) = torch.autograd.grad(loss.sum(), xr)
        out = []
        for j in range(n_ds):
            grads = torch.autograd.grad(
                x, params, grad_outputs=gx[j * k : (j + 1) * k], retain_graph=j < n_ds - 1
            )
            flat = torch.cat([g.reshape(k, -1) for g in grads], dim=1)  # (K, P)
            out.append(flat.gather(1, coords).double().cpu())
    finally:
        D.requires_grad_(True)
    return torch.stack(out)


def minibatch_norms(
    G: nn.Module,
    D: nn.Module,
    gens: Sequence[torch.Generator],
    n_ds: int,
    *,
    z_dim: int,
    batch_size: int,
    n_batches: int,
    device: Any,
) -> torch.Tensor:
    """Norm of grad_theta -E log D_0(G(z)) on each of ``n_batches`` minibatches of fresh z:
    (n_batches, K), for the Ds with index 0."""
    params = list(G.parameters())
    norms = []
    D.requires_grad_(False)
    try:
        for _ in range(n_batches):
            z = sample_normal(gens, batch_size, z_dim, device=device)
            x = G(z)
            k = x.shape[0]
            loss = non_saturating_g_loss(D(repeat_copies(x, n_ds))[:k])
            norms.append(per_seed_grad_norm(loss, params).double().cpu())
    finally:
        D.requires_grad_(True)
    return torch.stack(norms)


def _cv(norms: torch.Tensor) -> torch.Tensor:
    return norms.std(0) / norms.mean(0)


def run_instability(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """The -log D cost against fresh Ds (Fig. 3) and Thm 2.6 across Ds and in its own model.

    Per seed, worst G over the snapshots: ``log10_norm_growth`` and ``log10_cv_growth`` (mean and
    coefficient of variation of the minibatch gradient norm, trained D vs fresh D);
    ``tail_ratio_across_ds`` (median over Gs of the pooled tail ratio across the n_ds trained
    Ds); ``analytic_tail_ratio`` (the theorem's model); ``final_accuracy`` (premise: worst G, median
    over its Ds).
    """
    p = params
    epochs, n_ds = p["g_epochs"], p["n_ds"]
    G = stack_snapshots(p, seeds, train_snapshots(p, seeds, device), device)
    D = fresh_discriminators(p, G, n_ds, device)
    k = len(G.seeds)
    state = copy.deepcopy(G.state_dict())
    mb = dict(
        z_dim=p["z_dim"], batch_size=p["batch_size"], n_batches=p["tail_batches"], device=device
    )
    start = minibatch_norms(G, D, seed_generators(G.seeds, STREAM_MINIBATCH), n_ds, **mb)
    G.load_state_dict(state)
    curves = run_fresh_d(p, G, D, n_ds, ("non_saturating",), device)
    end = minibatch_norms(G, D, seed_generators(G.seeds, STREAM_MINIBATCH), n_ds, **mb)
    G.load_state_dict(state)
    # Thm 2.6 across Ds: each D's gradient on eval_size z shared by the Ds of a G copy
    gens = seed_generators(G.seeds, STREAM_MINIBATCH + 100)
    n_params = sum(q[0].numel() for q in G.parameters())
    coords = torch.stack(
        [torch.randint(n_params, (p["tail_coords"],), generator=g) for g in gens]
    ).to(device)
    z = sample_normal(gens, p["eval_size"], p["z_dim"], device=device)
    grads = per_d_gradients(G, D, z, n_ds, coords)  # (n_ds, K, J)
    G.load_state_dict(state)
    G.zero_grad(set_to_none=True)
    require(
        bool(torch.isfinite(grads).all()),
        f"non-finite -log D gradients ({int((~torch.isfinite(grads)).sum())})",
    )
    ratio = [pooled_tail_ratio(grads[:, c]) for c in range(k)]
    per_copy = label_copies(
        pd.DataFrame(
            {
                "copy": range(k),
                "norm_mean_start": start.mean(0).numpy(),
                "norm_mean_end": end.mean(0).numpy(),
                "cv_start": _cv(start).numpy(),
                "cv_end": _cv(end).numpy(),
                "tail_ratio_across_ds": ratio,
            }
        ),
        seeds,
        epochs,
    )
    last = curves[curves["iteration"] == curves["iteration"].max()]
    acc = label_copies(last, seeds, epochs).groupby(["seed", "epochs"])["accuracy"].median()
    per_copy["final_accuracy"] = [
        acc.loc[(s, e)] for s, e in zip(per_copy["seed"], per_copy["epochs"], strict=True)
    ]
    per_copy["log10_norm_growth"] = np.log10(
        per_copy["norm_mean_end"] / per_copy["norm_mean_start"]
    )
    per_copy["log10_cv_growth"] = np.log10(per_copy["cv_end"] / per_copy["cv_start"])
    table = seed_table(
        seeds,
        per_copy,
        {
            "log10_norm_growth": ("log10_norm_growth", "min"),
            "log10_cv_growth": ("log10_cv_growth", "min"),
            "tail_ratio_across_ds": ("tail_ratio_across_ds", "median"),
            "final_accuracy": ("final_accuracy", "min"),
        },
    )
    # Thm 2.6 in its own model, per seed; and the noise sweep for the figure
    theorem = []
    for noise in sorted(set(THEOREM_NOISE_GRID) | {p["analytic_noise_std"]}):
        g = theorem_model_gradients(
            seed_generators(seeds, STREAM_THEOREM),
            p["analytic_draws"],
            p["analytic_gap"],
            noise,
            p["analytic_points"],
        )
        for s, r in zip(seeds, tail_ratio(g, dim=1).tolist(), strict=True):
            theorem.append(
                {
                    "seed": int(s),
                    "noise_std": noise,
                    "tail_ratio": r,
                    "registered": noise == p["analytic_noise_std"],
                }
            )
    theorem = pd.DataFrame(theorem)
    reg = theorem[theorem["registered"]].set_index("seed")["tail_ratio"]
    table["analytic_tail_ratio"] = [float(reg.loc[int(s)]) for s in seeds]
    require_theorem_model_heavy(theorem, p["analytic_draws"])
    qq = _qq_table(grads, seeds, epochs)
    return {
        "seeds": table,
        "curves": label_copies(curves, seeds, epochs),
        "snapshots": per_copy,
        "theorem": theorem,
        "qq": qq,
        "setup": setup(p),
    }


QQ_PROBS = stats.norm.cdf(np.linspace(-3.0, 3.0, 25))  # normal-quantile-spaced probabilities


def _qq_table(grads: torch.Tensor, seeds: Sequence[int], epochs: Sequence[int]) -> pd.DataFrame:
    """Quantiles of the pooled, robustly standardised coordinates across Ds, per G copy."""
    rows = []
    for c in range(grads.shape[1]):
        z = robust_standardise(grads[:, c], dim=0).reshape(-1).numpy()
        z = z[np.isfinite(z)]
        if z.size == 0:
            continue
        for prob, q in zip(QQ_PROBS, np.quantile(z, QQ_PROBS), strict=True):
            rows.append(
                {
                    "copy": c,
                    "prob": float(prob),
                    "normal_quantile": float(stats.norm.ppf(prob)),
                    "value": float(q),
                }
            )
    return (
        label_copies(pd.DataFrame(rows), seeds, epochs)
        if rows
        else pd.DataFrame(
            columns=["copy", "prob", "normal_quantile", "value", "epochs", "seed", "d_index"]
        )
    )


def fig_instability(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Fig. 3 of the paper (norm vs D iterations) and the relative noise across minibatches."""
    fig, axes = _figure(2, width=5.0, height=3.8)
    _norm_panel(
        axes[0],
        tables["curves"],
        "grad_norm_non_saturating",
        r"$\|\nabla_\theta\, \mathbb{E}_z[-\log D(G_\theta(z))]\|$",
        r"$-\log D$ cost: gradient norm",
    )
    ax = axes[1]
    snaps = tables["snapshots"]
    for i, (ep, c) in enumerate(snaps.groupby("epochs")):
        st = _style(i)
        jitter = (i - 1) * 0.08
        for x0, col in ((0, "cv_start"), (1, "cv_end")):
            ax.scatter(
                np.full(len(c), x0 + jitter),
                c[col],
                color=st["color"],
                marker=st["marker"],
                s=18,
                label=_epoch_label(ep) if x0 == 0 else None,
            )
        for _, r in c.iterrows():
            ax.plot(
                [jitter, 1 + jitter],
                [r["cv_start"], r["cv_end"]],
                color=st["color"],
                lw=0.6,
                alpha=0.5,
            )
    ax.set_xticks([0, 1], ["fresh D", f"trained D ({params['d_iterations']} it.)"])
    ax.set(
        yscale="log",
        xlim=(-0.4, 1.4),
        ylabel=r"$\mathrm{std}/\mathrm{mean}$ of the norm across minibatches",
        title=f"relative noise, {params['tail_batches']} minibatches of {params['batch_size']} z",
    )
    ax.legend(fontsize=8)
    axes[0].set_title(f"{axes[0].get_title()} ({_title(params)})", fontsize=9)
    return fig


def fig_tails(tables: Tables, params: Mapping[str, Any], reported: Mapping[str, Any]):
    """Thm 2.6: QQ plot of coordinates across Ds; tail ratio in the theorem's model vs noise."""
    fig, axes = _figure(2, width=5.0, height=3.8)
    ax, qq = axes[0], tables["qq"]
    lim = 8.0
    for i, (ep, c) in enumerate(qq.groupby("epochs")):
        m = c.groupby("normal_quantile")["value"].median()
        st = _style(i)
        ax.plot(
            m.index,
            m.values.clip(-lim, lim),
            color=st["color"],
            marker=st["marker"],
            ms=3,
            ls=st["ls"],
            label=f"{_epoch_label(ep)}, {params['n_ds']} Ds",
        )
    u = np.linspace(-3, 3, 201)
    ax.plot(u, u, color="k", lw=1, label="Gaussian")
    # a Cauchy's IQR is 2; robust_standardise maps the IQR to the Gaussian's 2 * 0.674
    cauchy = stats.cauchy.ppf(stats.norm.cdf(u)) * stats.norm.ppf(0.75)
    inside = np.abs(cauchy) <= lim
    ax.plot(u[inside], cauchy[inside], color="k", lw=1, ls="--", label="Cauchy")
    ax.set(
        xlabel="Gaussian quantile",
        ylabel="standardised gradient coordinate",
        title="across independently trained Ds",
        ylim=(-lim, lim),
        xlim=(-3.2, 3.2),
    )
    ax.legend(fontsize=7, loc="upper left")
    ax = axes[1]
    th = tables["theorem"]
    g = th.groupby("noise_std")["tail_ratio"]
    med, lo, hi = g.median(), g.min(), g.max()
    ax.plot(med.index, med.values, color="C0", marker="o", label="median over seeds")
    ax.fill_between(med.index, lo.values, hi.values, color="C0", alpha=0.2, lw=0)
    ax.axhline(GAUSSIAN_TAIL_RATIO, color="k", lw=1, label=f"Gaussian {GAUSSIAN_TAIL_RATIO:.2f}")
    ax.axhline(CAUCHY_TAIL_RATIO, color="k", lw=1, ls="--", label=f"Cauchy {CAUCHY_TAIL_RATIO:.1f}")
    ax.axhline(HEAVY_TAIL_THRESHOLD, color="grey", lw=0.8, ls=":", label="threshold 10.47")
    ax.axvline(params["analytic_noise_std"], color="C3", lw=0.8, ls="-.", label="registered noise")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"std of D's error $\sigma_\epsilon$",
        ylabel=r"$(q_{99} - q_{01}) / (q_{75} - q_{25})$",
        title=rf"Thm 2.6 model: $D = D^* + \epsilon$, gap {params['analytic_gap']}",
    )
    ax.legend(fontsize=7)
    axes[0].set_title(f"{axes[0].get_title()} ({_title(params)})", fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# the experiments

D_PERFECT = Experiment(
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

VANISHING_GRADIENTS = Experiment(
    run=run_vanishing,
    params=PROTOCOL_PARAMS,
    metrics=(
        "log10_decay_largest",
        "log10_decay_from_peak_largest",
        "log10_decay_4000_largest",
        "fake_loss_final_largest",
        "log10_decay_earliest",
        "log10_decay_from_peak_earliest",
        "loss_slope",
        "fake_loss_final_earliest",
        "log10_decay_worst",
        "final_accuracy",
        "final_train_accuracy",
    ),
    figures={"grad_norm": fig_vanishing, "norm_vs_loss": fig_norm_vs_loss},
    positive_metrics=("fake_loss_final_largest", "fake_loss_final_earliest"),
    doc="Arjovsky & Bottou 2017, Fig. 2 / Thm 2.4: the original G cost's gradient vanishes.",
)

MINUS_LOG_D_INSTABILITY = Experiment(
    run=run_instability,
    params=PROTOCOL_PARAMS
    + (
        "n_ds",
        "tail_batches",
        "tail_coords",
        "analytic_gap",
        "analytic_noise_std",
        "analytic_points",
        "analytic_draws",
    ),
    metrics=(
        "log10_norm_growth",
        "log10_cv_growth",
        "tail_ratio_across_ds",
        "analytic_tail_ratio",
        "final_accuracy",
    ),
    figures={"grad_norm": fig_instability, "tails": fig_tails},
    positive_metrics=("tail_ratio_across_ds", "analytic_tail_ratio"),
    doc="Arjovsky & Bottou 2017, Fig. 3 / Thm 2.6: the -log D gradient grows, noisier; Cauchy.",
)
