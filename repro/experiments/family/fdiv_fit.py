"""f-GAN Section 4: fitting one Gaussian to a 1-D mixture by f-GAN training (shared science).

P is a fixed 1-D Gaussian mixture, the model Q_theta = N(mu, std^2) with x = mu + std z,
z ~ N(0, 1) (f-GAN Sec. 4: a linear generator with two scalar parameters). For a divergence
D_f this module computes

- theta* = argmin_theta D_f(P || Q_theta) exactly: D_f by quadrature on a wide grid
  (``repro.divergences.f_divergence``), minimised by Nelder-Mead over (mu, log std) from several
  starts (the moment-matched Gaussian and one Gaussian per mixture component), and
- theta-hat by f-GAN training (Nowozin et al. 2016, Eq. 6 and Algorithm 1): a variational
  function T = g_f(V(x)) with V a 2 x 64 tanh MLP, and the saddle point
  min_theta max_V E_P[g_f(V)] - E_Q[f*(g_f(V))], one simultaneous Adam step for V (ascent) and
  theta (descent) per minibatch, as in the paper's single-step gradient method.

Every (divergence, seed) pair is one copy of the batched V and of theta; the seed's copy of the
``data`` stream draws one data batch and one z batch per step that all of that seed's divergences
share, so a run over any subset of divergences or seeds gives the same numbers for the copies it
holds.

Used by the claims ``fgan-gaussian-fit`` (six divergences on an asymmetric mixture) and
``kl-covers-reverse-kl-seeks`` (KL covers, reverse KL seeks, on two separated modes).

References: Nowozin, Cseke & Tomioka 2016, f-GAN, Sec. 4 and Table 2 (conjugates, g_f).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import optimize

from repro import divergences as dv
from repro.data import mixture_1d
from repro.engine import STREAMS, Copies, Stream, cosine, fit, generators, optim, use_graphs
from repro.nets import BatchedMLP

# A 1-D Gaussian mixture: (weights, means, stds).
Mixture = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]

MIXTURES: dict[str, Mixture] = {
    # fgan-gaussian-fit: an asymmetric three-component mixture (ours; see the spec's notes)
    "asymmetric": ((0.5, 0.3, 0.2), (-2.0, 1.0, 3.5), (0.5, 0.5, 0.7)),
    # kl-covers-reverse-kl-seeks: two equal, well-separated modes (gap / std = 12)
    "bimodal": ((0.5, 0.5), (-3.0, 3.0), (0.5, 0.5)),
}
# f-GAN Table 3's divergences (it has no squared Hellinger row)
FIT_DIVERGENCES = ("kl", "reverse_kl", "js", "jeffrey", "pearson")
GRID = (-20.0, 20.0)
# smallest model density the quadrature uses (p <= 1 here, so p / q stays below 1e290 and f(p / q)
# finite for every row); a Gaussian below it contributes q f(p / q) ~ 1e-290 * 700 per point
Q_FLOOR = 1e-290


def mixture_moments(mix: Mixture) -> tuple[float, float]:
    """Mean and std of a 1-D Gaussian mixture (the KL fit: KL(P || N) is minimised by them)."""
    w, m, s = (np.asarray(v, dtype=float) for v in mix)
    mean = float(w @ m)
    return mean, float(math.sqrt(w @ (s**2 + m**2) - mean**2))


def divergence_to_gaussian(
    name: str, p: np.ndarray, x: np.ndarray, mean: float, std: float
) -> float:
    """D_f(P || N(mean, std^2)) by quadrature on ``x`` (P given by its density ``p`` on x).

    Q's density is set to 0 where it is below ``Q_FLOOR``, so that the quadrature treats those
    points as q = 0 < p (the perspective term of ``repro.divergences.f_divergence``, as it already
    does where q underflows to exactly 0). Without it, a narrow Q's denormal tail makes p / q
    overflow to inf and f(inf) * q gives -inf for reverse KL (or inf - inf = nan for JS): a
    narrow fit would read as D = -inf, the best of all models.
    """
    q = dv.gaussian_pdf(x, mean, std)
    return dv.f_divergence(name, p, np.where(q < Q_FLOOR, 0.0, q), x)


def exact_fit(name: str, mix: Mixture, x: np.ndarray) -> tuple[float, float, float]:
    """theta* = argmin_(mu, std) D_f(P || N(mu, std^2)): (mu*, std*, D_f at theta*).

    Nelder-Mead over (mu, log std), started from the moment-matched Gaussian and from every
    mixture component (reverse KL and its relatives have one local minimum per mode); the best
    of the local minima is returned. Infinite values (a chi^2 that diverges) are rejected.
    """
    p = dv.mixture_pdf(x, *mix)

    def objective(v: np.ndarray) -> float:
        value = divergence_to_gaussian(name, p, x, float(v[0]), float(math.exp(v[1])))
        return value if math.isfinite(value) else 1e12

    starts = [mixture_moments(mix), *zip(mix[1], mix[2], strict=True)]
    best = None
    for mean0, std0 in starts:
        res = optimize.minimize(
            objective,
            np.array([mean0, math.log(std0)]),
            method="Nelder-Mead",
            options={"xatol": 1e-7, "fatol": 1e-12, "maxiter": 4000},
        )
        if best is None or res.fun < best.fun:
            best = res
    return float(best.x[0]), float(math.exp(best.x[1])), float(best.fun)


def cross_matrix(
    mix: Mixture, x: np.ndarray, thetas: Mapping[str, tuple[float, float]], names: Sequence[str]
) -> np.ndarray:
    """M[i, j] = D_{names[i]}(P || Q_{theta_j}) for the model ``thetas[names[j]]``: (F, F)."""
    p = dv.mixture_pdf(x, *mix)
    return np.array([[divergence_to_gaussian(a, p, x, *thetas[b]) for b in names] for a in names])


# ---------------------------------------------------------------------------------------------
# f-GAN training


def fgan_bound(v_real: torch.Tensor, v_fake: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """Per-copy F = E_P[g_f(V)] - E_Q[f*(g_f(V))] (f-GAN Eq. 6): (C, B, 1) each -> (C,).

    Copies are divergence-major (copy = f * S + seed), so each f acts on one contiguous slice.
    """
    per_f = v_real.shape[0] // len(names)
    out = []
    for i, name in enumerate(names):
        row, sl = dv.get_f(name), slice(i * per_f, (i + 1) * per_f)
        out.append(row.g_f(v_real[sl]).mean((1, 2)) - row.f_star_g(v_fake[sl]).mean((1, 2)))
    return torch.cat(out)


class GaussianGenerator(torch.nn.Module):
    """x = mu + std z per copy, std = exp(log_std): the f-GAN Sec. 4 model, (C,) parameters."""

    def __init__(self, mean0: torch.Tensor, std0: torch.Tensor):
        super().__init__()
        self.mean = torch.nn.Parameter(mean0.clone())
        self.log_std = torch.nn.Parameter(std0.log())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # z (C, B, 1) -> (C, B, 1)
        return self.mean[:, None, None] + self.log_std.exp()[:, None, None] * z


def initial_thetas(
    params: Mapping[str, Any], seeds: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each seed's starting (mu, std), float64 (S,) each: mu = init_mean + init_jitter_std eps
    with eps ~ N(0, 1) from the seed's ``g_init`` stream, std = init_std (all divergences of a
    seed start from the same Gaussian)."""
    init = generators(seeds, "g_init")
    jitter = torch.stack([torch.randn((), generator=g, dtype=torch.float64) for g in init])
    mean0 = float(params["init_mean"]) + float(params["init_jitter_std"]) * jitter
    return mean0, torch.full((len(seeds),), float(params["init_std"]), dtype=torch.float64)


def train_fits(
    params: Mapping[str, Any], mix: Mixture, names: Sequence[str], seeds: Sequence[int], device
) -> tuple[GaussianGenerator, pd.DataFrame]:
    """f-GAN training of every (divergence, seed) copy; returns G and the (mu, std) trajectory.

    Per step each seed draws one real and one z batch (shared by its divergences); V takes an
    ascent step and theta a descent step on the same F (simultaneous, f-GAN Algorithm 1), both
    with Adam and the learning rate cosine-decayed to 0 so that the last iterates settle.
    """
    n_f, batch, steps = len(names), int(params["batch_size"]), int(params["steps"])
    copies = Copies.grid(seeds, divergence=list(names))  # copy (f, s) is initialised from seed s
    sizes = (1, *[int(params["hidden"])] * int(params["depth"]), 1)
    critic = BatchedMLP(sizes, copies.seeds, activation="tanh", stream=STREAMS["d_init"])
    critic = critic.to(device)
    mean0, std0 = (v.repeat(n_f) for v in initial_thetas(params, seeds))
    gen = GaussianGenerator(
        mean0.to(torch.get_default_dtype()), std0.to(torch.get_default_dtype())
    ).to(device)
    lr_v, lr_g = float(params["lr_critic"]), float(params["lr_generator"])
    graphs = use_graphs(device)  # each update a captured CUDA graph on CUDA
    opts = optim.Chain(
        optim.make("adam", critic.parameters(), lr_v, betas=(0.5, 0.999), capturable=graphs),
        optim.make("adam", gen.parameters(), lr_g, betas=(0.5, 0.999), capturable=graphs),
    )
    gens = Stream(seeds, "data", device, static=graphs)
    data = mixture_1d(*mix).prepare(device)  # its device tables made before the first step

    def per_copy_bound(step: int) -> torch.Tensor:
        real = data.sample(gens, batch, dtype=torch.float64)[..., 0]  # (S, B)
        z = gens.normal(batch)  # (S, B)
        real = real.to(torch.get_default_dtype()).repeat(n_f, 1).unsqueeze(-1)  # (F*S, B, 1)
        z = z.repeat(n_f, 1).unsqueeze(-1)
        return fgan_bound(critic(real), critic(gen(z)), names)  # (F*S,)

    def ascend_v() -> None:
        for p in critic.parameters():  # V ascends F, theta descends it
            p.grad.neg_()

    def thetas(step: int) -> dict[str, torch.Tensor]:
        return {"mean": gen.mean, "std": gen.log_std.detach().double().exp()}

    log_every = max(1, steps // 50)
    cos_v, cos_g = cosine(lr_v, steps), cosine(lr_g, steps)
    result = fit(
        opts,
        per_copy_bound,
        steps,
        schedule=lambda step: (cos_v(step), cos_g(step)),
        before_step=ascend_v,
        evaluate=thetas,
        eval_at=[t + 1 for t in range(steps) if t % log_every == 0 or t == steps - 1],
        copies=copies,
        graphs=graphs,
    )
    return gen, result.curves[["step", "divergence", "seed", "mean", "std"]]


def learned_thetas(gen: GaussianGenerator, n_f: int, n_s: int) -> tuple[np.ndarray, np.ndarray]:
    """(mu-hat, std-hat), each (F, S)."""
    mean = gen.mean.detach().double().cpu().numpy().reshape(n_f, n_s)
    std = gen.log_std.detach().double().exp().cpu().numpy().reshape(n_f, n_s)
    return mean, std


def exact_table(mix: Mixture, names: Sequence[str], x: np.ndarray) -> pd.DataFrame:
    """theta* and D_f(P || Q_theta*) for every divergence."""
    rows = []
    for name in names:
        mean, std, value = exact_fit(name, mix, x)
        rows.append({"divergence": name, "mean": mean, "std": std, "value": value})
    return pd.DataFrame(rows)


# the f-GAN fit's settings, shared by both claims of this family
TRAINING_PARAMS = (
    "hidden",
    "depth",
    "steps",
    "batch_size",
    "lr_critic",
    "lr_generator",
    "init_mean",
    "init_std",
    "init_jitter_std",
    "grid_points",
)


# ---------------------------------------------------------------------------------------------
# convergence of a trained fit: is theta-hat a stationary point of the divergence it trains on?

# central-difference step in (mu, log std); the quadrature grid stays fixed while theta moves
FD_STEP = 1e-4
# A fit has converged when the exact gradient norm at theta-hat is at most this fraction of the
# norm at its start (one order of magnitude; the specs' premises, revision 2026-12-06).
CONVERGED_GRAD_RATIO = 0.1


def exact_grad(name: str, mix: Mixture, x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """grad_(mu, log std) D_f(P || N(mean, std^2)) by central differences of the quadrature: (2,).

    Non-finite entries (a divergence that is infinite or NaN on the grid) stay non-finite."""
    p, theta = dv.mixture_pdf(x, *mix), np.array([mean, math.log(std)])
    grad = np.empty(2)
    for k in range(2):
        e = np.eye(2)[k] * FD_STEP
        hi, lo = theta + e, theta - e
        d_hi = divergence_to_gaussian(name, p, x, float(hi[0]), float(math.exp(hi[1])))
        d_lo = divergence_to_gaussian(name, p, x, float(lo[0]), float(math.exp(lo[1])))
        grad[k] = (d_hi - d_lo) / (2 * FD_STEP)
    return grad


def grad_ratio(
    name: str, mix: Mixture, x: np.ndarray, hat: tuple[float, float], start: tuple[float, float]
) -> float:
    """||grad D_f at theta-hat|| / ||grad D_f at the start||, in (mu, log std).

    ~0 when training reached a stationary point of D_f (a minimum, or a saddle such as a
    symmetric covering fit of reverse KL), ~1 when the fit is still where it started or in
    transit; +inf when the value is not finite (such a fit can not count as converged)."""
    g_hat, g_start = exact_grad(name, mix, x, *hat), exact_grad(name, mix, x, *start)
    ratio = float(np.linalg.norm(g_hat) / np.linalg.norm(g_start))
    return ratio if math.isfinite(ratio) else math.inf
