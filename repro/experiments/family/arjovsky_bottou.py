"""The Arjovsky & Bottou 2017 protocol shared by d-perfect, vanishing-gradients and
minus-log-d-instability: one DCGAN run gives G snapshots; fresh Ds are trained against them.

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
through the one copy of G (``minus_log_d_instability.per_d_gradients``).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from repro import plots
from repro.data import (
    DIGITS_TEST_SIZE,
    EpochSampler,
    digits_split_indices,
    image_size,
    sample_normal,
)
from repro.engine import fit, optim
from repro.engine.streams import Stream
from repro.experiments import setup_table
from repro.experiments.family.arjovsky_bottou_gan import (  # the shared GAN run (re-exported)
    CHECKPOINT_DIR_ENV,  # noqa: F401
    load_split,
    make_generator,
    snapshot_checkpoint,  # noqa: F401
    train_snapshots,
)
from repro.experiments.family.shared_runs import GAN_PARAMS
from repro.losses import gan_d_loss, minimax_g_loss, non_saturating_g_loss
from repro.metrics import d_accuracy, per_seed_grad_norm
from repro.nets import (
    STREAM_EVAL,
    STREAM_FRESH_D,
    ConvDiscriminator,
    ConvGenerator,
    stream_seed,
)

log = logging.getLogger(__name__)


# Random streams beyond repro.nets' 0-4: minibatch gradient samples, the quality classifier,
# the theorem's noise model, the fresh Ds' initial weights (per D index).
STREAM_MINIBATCH, STREAM_CLASSIFIER, STREAM_THEOREM, STREAM_D_INDEX = 7, 8, 9, 10


COSTS = {"minimax": minimax_g_loss, "non_saturating": non_saturating_g_loss}


# the GAN run's settings (shared_runs.GAN_PARAMS, which key its file) and the fresh-D protocol's
PROTOCOL_PARAMS = GAN_PARAMS + (
    "d_norm",
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


def eval_schedule(iterations: int, every: int, every_early: int, early_until: int) -> list[int]:
    """Iterations at which D is evaluated: 0, every ``every_early`` up to ``early_until``, then
    every ``every``, and the last one."""
    early = range(0, min(early_until, iterations) + 1, every_early)
    return sorted(set(early) | set(range(0, iterations + 1, every)) | {iterations})


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


class HeldOutEval:
    """Held-out evaluation: real test images (per-copy passes) and fresh z, own random stream
    (STREAM_EVAL, drawn on ``device``)."""

    def __init__(self, params: Mapping[str, Any], G: ConvGenerator, device: Any):
        self.test = EpochSampler(load_split(params, "test", device))
        self.n_real = min(params["eval_size"], len(self.test.data))
        self.n_fake = params["eval_size"]
        self.gens = Stream(G.seeds, STREAM_EVAL, device)
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
    from stream STREAM_FRESH_D drawn on ``device`` (shared by the copy's n_ds Ds). Returns one
    row per (evaluation, D copy): iteration, copy, accuracy (held-out), train_accuracy (mean over
    the D steps since the previous evaluation, before each update; NaN at 0), fake_loss,
    real_loss, grad_norm_<cost> (NaN for Ds with index > 0).
    """
    p = params
    frozen = copy.deepcopy(G.state_dict())  # batch-norm statistics move in train mode
    k, b = len(G.seeds), p["batch_size"]
    train = EpochSampler(load_split(p, "train", device))
    gens = Stream(G.seeds, STREAM_FRESH_D, device)
    ev = HeldOutEval(p, G, device)
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

    # eager: EpochSampler's reshuffles and the Python train-accuracy count are host state that
    # a replayed graph would skip
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


def per_snapshot(curves: pd.DataFrame, fn) -> pd.DataFrame:
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


def wide_figure(ncols: int = 1, width: float = 6.0, height: float = 4.0, width_px: int = 1400):
    """``plots.figure`` with the dpi set so the PNG is ``width_px`` wide (issue 9: >= ~1,000 px;
    the dpi must be given at creation: savefig uses the figure's original dpi)."""
    return plots.figure(ncols, width=width, height=height, dpi=width_px / (width * ncols))


def epoch_label(ep: int) -> str:
    return "untrained G" if ep < 0 else f"G after {ep} epoch" + ("" if ep == 1 else "s")


SERIES = {
    "color": ["C0", "C1", "C2", "C3"],
    "marker": ["o", "s", "^", "D"],
    "ls": ["-", "--", "-.", ":"],
}


def series_style(i: int) -> dict[str, Any]:
    return {k: v[i % len(v)] for k, v in SERIES.items()}


def median_band(ax, df: pd.DataFrame, x: str, y: str, i: int, label: str, markevery=None):
    g = df.groupby(x)[y]
    med, lo, hi = g.median(), g.min(), g.max()
    st = series_style(i)
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


def data_title(params: Mapping[str, Any]) -> str:
    return DATA_LABEL.get(params["dataset"], params["dataset"])


def norm_panel(ax, curves: pd.DataFrame, column: str, ylabel: str, title: str) -> None:
    """Gradient norm against fresh-D iterations (log y), one median band per generator."""
    curves = curves[curves["d_index"] == 0]
    for i, (ep, c) in enumerate(curves.groupby("epochs")):
        median_band(ax, c, "iteration", column, i, epoch_label(ep))
    ax.set(yscale="log", xlabel="fresh D iterations (G frozen)", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
