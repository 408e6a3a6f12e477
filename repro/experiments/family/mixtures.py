"""Mode collapse on 2-D Gaussian mixtures: the science shared by three claims.

Used by ``mode_collapse_mixtures`` (every method under one architecture and one budget,
VEEGAN / PacGAN protocol), ``pacgan_table1`` (PacGAN's own networks, GAN vs PacGAN2/3/4) and
``mode_rotation`` (Unrolled GAN Fig. 1). Here: the data sets (ring, grid), the networks (MLP or
BN G; ReLU or maxout D with packing and minibatch features), the methods (``METHODS``: objective,
D steps, packing, minibatch discrimination, feature matching, unrolling, instance noise) and
their training (``train_method`` trains all seeds of one (method, data set) as one batched
model and returns G, from which ``evaluate`` draws the 2,500 samples of the VEEGAN / PacGAN
protocol, ``repro.metrics.mode_metrics``, plus the exact W1 to data). The tables and figures of
the two table claims are in ``repro.experiments.family.mixture_tables``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call

from repro import remedies
from repro.data import GaussianMixture, grid_means, ring_means, sample_normal
from repro.engine import gan, optim, use_graphs
from repro.engine.streams import Stream
from repro.losses import Objective, get_objective
from repro.metrics import mode_metrics, w1_pool
from repro.nets import STREAM_D, STREAM_G, BatchedLinear, BatchedModule
from repro.train import clip_parameters_

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# data sets: the VEEGAN / PacGAN protocol (ring radius 1, std 0.01; grid -4 + 2i, std 0.05)


@dataclass(frozen=True)
class Mixture:
    name: str
    means: torch.Tensor  # (K, 2)
    mode_std: float

    @functools.cached_property
    def gaussian(self) -> GaussianMixture:
        return GaussianMixture(self.means, self.mode_std)  # device tables made once

    def sample(self, gens, batch, device=None) -> torch.Tensor:
        return self.gaussian.sample(gens, batch, device=device)


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


def _real_sampler(mixture: Mixture, params, seeds, device):
    """Fresh mixture samples every batch, or (params["train_points"] > 0) minibatches drawn with
    replacement from a finite training set of that many points per seed (PacGAN's setup).
    The returned sampler takes the training stream (a ``Stream`` on ``device``) and a batch size."""
    n = int(params.get("train_points", 0))
    if not n:
        return lambda gens, b: mixture.sample(gens, b, device)
    # PacGAN's finite training set, drawn once per seed: (S, N, 2)
    data = mixture.sample(Stream(seeds, "trainset", device), n, device)
    rows = torch.arange(len(seeds), device=data.device)[:, None]

    def draw(gens, b):
        return data[rows, gens.randint(n, b).to(data.device)]  # (S, b, 2)

    return draw


def _noise(
    method: Method, params, step: int, x: torch.Tensor, gens, step_t: torch.Tensor | None = None
) -> torch.Tensor:
    """Instance noise (Sonderby et al. 2016) on D's input, annealed by ``repro.noise``; the std
    from the device step count ``step_t`` when given (static steps), else from ``step``."""
    if not method.instance_noise:
        return x
    from repro import noise  # the suite's one implementation of instance noise

    if step_t is not None:
        std = noise.noise_std_on_device(step_t, params["steps"], params["noise_schedule"])
    else:
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
    steps = params["steps"]
    graphs = use_graphs(device)  # D steps (with clipping) and G steps captured on CUDA
    step_t = None  # instance noise on static steps: the G step count on the device
    if method.instance_noise and graphs:
        from repro import noise

        if noise.noise_on_device(params["noise_schedule"], steps, range(steps)):
            step_t = torch.zeros((), dtype=torch.float64, device=device)  # the G step advances it
        else:  # eager: a std of 0 skips draws (host branch) or the schedule is not exact there
            graphs = False
    opt_g = optim.make(method.optimizer, G.parameters(), lr, betas=betas, capturable=graphs)
    opt_d = optim.make(method.optimizer, D.parameters(), lr_d, betas=betas, capturable=graphs)
    gens = Stream(seeds, "data", device, static=graphs)
    b, z_dim = params["batch_size"] * method.pack, params["z_dim"]

    mixture.gaussian.prepare(device)  # the data's device tables, before the first step
    real = _real_sampler(mixture, params, seeds, device)

    def batch():
        return real(gens, b), sample_normal(gens, b, z_dim, device=device)

    def d_loss(step: int, k: int) -> torch.Tensor:
        x, z = batch()
        with torch.no_grad():
            fake = G(z)
        xr = _noise(method, params, step, x, gens, step_t)
        xf = _noise(method, params, step, fake, gens, step_t)
        loss = _d_loss(obj, D, xr, xf)
        if obj.penalty is not None:
            loss = loss + obj.penalty_weight * obj.penalty(D, xr, xf, gens)
        return loss

    def clip(step: int, k: int) -> None:
        if obj.clip is not None:
            clip_parameters_(D, obj.clip)

    def g_loss(step: int) -> torch.Tensor:
        loss = _g_loss(method, obj, G, D, opt_d, params, step, gens, batch, step_t)
        if step_t is not None:
            step_t.add_(1)  # the next G step's noise std (captured with this step)
        return loss

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
        graphs=graphs,
    )
    snaps = {step: ev["samples"] for step, ev in result.evals}
    D.zero_grad(set_to_none=True)
    return G, snaps


def _g_loss(method, obj, G, D, opt_d, params, step, gens, batch, step_t=None) -> torch.Tensor:
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
        if opt_d.capturable:  # static steps: D's update count on the device (a replay's too)
            t = opt_d.step_t
        unroll_batches = [batch() for _ in range(method.unroll)]

        def d_loss(theta, i):
            xi, zi = unroll_batches[i]
            return _d_loss(obj, lambda v: functional_call(D, theta, (v,)), xi, G(zi))

        theta = remedies.unrolled_params(
            d_loss,
            named,
            state,
            t,
            method.unroll,
            float(params["lr_d"]),
            tuple(params["betas"]),
            flat=True,  # one flat buffer: the same K Adam updates in far fewer kernels
        )
        return obj.g_loss(functional_call(D, theta, (fake,)))
    return obj.g_loss(D(_noise(method, params, step, fake, gens, step_t)))


@torch.no_grad()
def sample_generator(G: nn.Module, params, seeds, device, n: int | None = None) -> torch.Tensor:
    """n (default params["eval_samples"]) samples per seed from G, evaluation stream: (S, n, 2)."""
    n = n or params["eval_samples"]
    z = sample_normal(Stream(seeds, "eval", device), n, params["z_dim"])
    return G(z).cpu().double()


def evaluate(samples: torch.Tensor, mixture: Mixture, seeds, params) -> pd.DataFrame:
    """The VEEGAN / PacGAN metrics and the exact W1 to fresh data, one row per seed."""
    table, pairs = evaluate_deferred(samples, mixture, seeds, params)
    return table.assign(w1=w1_pool(pairs))


def evaluate_deferred(
    samples: torch.Tensor, mixture: Mixture, seeds, params
) -> tuple[pd.DataFrame, list[tuple[np.ndarray, np.ndarray]]]:
    """``evaluate`` without solving: the table with ``w1`` NaN, and the (samples, data) point
    sets, one per seed, to solve later (all methods at once) through ``repro.metrics.w1_pool``."""
    m = mode_metrics(samples, mixture.means, mixture.mode_std)
    n_w1 = params["w1_samples"]
    # drawn on the CPU, where the samples and the W1 solver are
    data = mixture.sample(Stream(seeds, "w1"), n_w1).double()  # fresh data, not the training stream
    pairs = [(samples[i, :n_w1].numpy(), data[i].numpy()) for i in range(len(seeds))]
    rows = []
    for i, seed in enumerate(seeds):
        rows.append(
            {
                "seed": int(seed),
                "modes": float(m["modes_captured"][i]),
                "hq": 100.0 * float(m["high_quality_frac"][i]),
                "rkl": float(m["reverse_kl"][i]),
                "w1": np.nan,
            }
        )
    return pd.DataFrame(rows), pairs
