"""Data for the GAN claims: toy samplers and the 8x8 digits, drawn per seed.

Every sampler takes ``gens``, one ``torch.Generator`` per seed (see ``repro.nets.seed_generators``),
and returns a batch of shape (S, B, d): row s is drawn from ``gens[s]`` alone, so a batched run
over seeds [a, b] sees exactly the data of two single-seed runs. Draws happen on the CPU (cheap
for these sizes, and the same numbers on every device); pass ``device`` to move the batch.

Public API:
    SAMPLERS, get_sampler(name, **params) -> Sampler   toy samplers by name (partial application)
    ring_means(n_modes, radius) -> (K, 2)              ring of Gaussians, angles 2 pi k / K, k < K
    grid_means(n_per_side, spacing) -> (K, 2)          square grid centred on 0
    sample_mixture(gens, batch, means, mode_std, weights)   isotropic Gaussian mixture in R^d
    sample_ring / sample_grid / sample_mixture_1d / sample_parallel_lines
    sample_normal(gens, batch, dim)                    latent noise z ~ N(0, I)
    load_digits_images() -> (1797, 1, 8, 8)            scikit-learn digits scaled to [-1, 1]
    EpochSampler(data)                                 minibatches without replacement, per-seed
                                                       shuffles; state_dict() for resuming,
                                                       fresh() for an independent pass
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

Sampler = Callable[..., torch.Tensor]  # sampler(gens, batch, device=None) -> (S, B, ...)

# VEEGAN / PacGAN protocol (PAPERS.md): ring radius 1, std 0.01; grid means -4 + 2i, std 0.05
RING_RADIUS, RING_MODE_STD = 1.0, 0.01
GRID_SPACING, GRID_MODE_STD = 2.0, 0.05


def _stack(draws: list[torch.Tensor], device: Any) -> torch.Tensor:
    out = torch.stack(draws)
    return out if device is None else out.to(device, non_blocking=True)


def ring_means(n_modes: int = 8, radius: float = RING_RADIUS) -> torch.Tensor:
    """Means radius * (cos a_k, sin a_k), a_k = 2 pi k / K for k = 0..K-1 (no endpoint).

    The endpoint matters: linspace(0, 2 pi, K) repeats angle 0 and leaves K - 1 distinct modes.
    Returns (K, 2) float64.
    """
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    return radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


def grid_means(n_per_side: int = 5, spacing: float = GRID_SPACING) -> torch.Tensor:
    """Means spacing * (i, j) - offset for i, j = 0..n-1, centred on the origin: (n^2, 2) float64.

    With n = 5, spacing = 2 these are (-4 + 2i, -4 + 2j), the VEEGAN grid.
    """
    axis = spacing * (torch.arange(n_per_side, dtype=torch.float64) - (n_per_side - 1) / 2)
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def sample_mixture(
    gens: Sequence[torch.Generator],
    batch: int,
    means: torch.Tensor,
    mode_std: float | Sequence[float],
    weights: Sequence[float] | None = None,
    device: Any = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """x = mu_c + std_c * eps with c ~ Categorical(weights), eps ~ N(0, I_d), per seed.

    Args:
        gens: one generator per seed.
        batch: samples per seed B.
        means: (K, d) component means.
        mode_std: one std for every component, or one per component.
        weights: mixture weights (normalised here); uniform when None.

    Returns:
        (S, B, d) samples; per seed the component indices are drawn first, then the noise.
    """
    means = torch.as_tensor(means, dtype=torch.float64)
    k, d = means.shape
    stds = torch.as_tensor(mode_std, dtype=torch.float64).expand(k)
    probs = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    if probs is not None and (probs.shape != (k,) or (probs < 0).any()):
        raise ValueError(f"weights must be {k} non-negative numbers, got {weights}")
    draws = []
    for g in gens:
        if probs is None:
            comp = torch.randint(k, (batch,), generator=g)
        else:
            comp = torch.multinomial(probs, batch, replacement=True, generator=g)
        eps = torch.randn(batch, d, generator=g, dtype=torch.float64)
        draws.append((means[comp] + stds[comp, None] * eps).to(dtype))
    return _stack(draws, device)  # (S, B, d)


def sample_ring(
    gens: Sequence[torch.Generator],
    batch: int,
    n_modes: int = 8,
    radius: float = RING_RADIUS,
    mode_std: float = RING_MODE_STD,
    device: Any = None,
) -> torch.Tensor:
    """Uniform mixture of K isotropic Gaussians on a circle (``ring_means``): (S, B, 2)."""
    return sample_mixture(gens, batch, ring_means(n_modes, radius), mode_std, device=device)


def sample_grid(
    gens: Sequence[torch.Generator],
    batch: int,
    n_per_side: int = 5,
    spacing: float = GRID_SPACING,
    mode_std: float = GRID_MODE_STD,
    device: Any = None,
) -> torch.Tensor:
    """Uniform mixture of n^2 isotropic Gaussians on a grid (``grid_means``): (S, B, 2)."""
    return sample_mixture(gens, batch, grid_means(n_per_side, spacing), mode_std, device=device)


def sample_mixture_1d(
    gens: Sequence[torch.Generator],
    batch: int,
    means: Sequence[float],
    mode_std: float | Sequence[float],
    weights: Sequence[float] | None = None,
    device: Any = None,
) -> torch.Tensor:
    """1-D Gaussian mixture sum_k w_k N(mean_k, std_k^2): (S, B, 1)."""
    mu = torch.as_tensor(means, dtype=torch.float64).reshape(-1, 1)
    return sample_mixture(gens, batch, mu, mode_std, weights, device=device)


def sample_parallel_lines(
    gens: Sequence[torch.Generator], batch: int, theta: float = 0.0, device: Any = None
) -> torch.Tensor:
    """(theta, Z) with Z ~ U[0, 1]: the distribution P_theta of WGAN Example 1. (S, B, 2)."""
    draws = []
    for g in gens:
        z = torch.rand(batch, generator=g)
        draws.append(torch.stack([torch.full_like(z, float(theta)), z], dim=1))
    return _stack(draws, device)


def sample_normal(
    gens: Sequence[torch.Generator],
    batch: int,
    dim: int,
    device: Any = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Latent noise z ~ N(0, I_dim) per seed: (S, B, dim)."""
    return _stack([torch.randn(batch, dim, generator=g, dtype=dtype) for g in gens], device)


SAMPLERS: dict[str, Sampler] = {
    "ring": sample_ring,
    "grid": sample_grid,
    "mixture_1d": sample_mixture_1d,
    "parallel_lines": sample_parallel_lines,
}


def get_sampler(name: str, **params: Any) -> Sampler:
    """The toy sampler ``name`` with its parameters bound: ``get_sampler("ring", mode_std=0.02)``.

    The result is called as ``sampler(gens, batch, device=None)``. Unknown name -> ValueError.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(sorted(SAMPLERS))}")
    return functools.partial(SAMPLERS[name], **params)


@functools.lru_cache(maxsize=1)
def _digits_array() -> np.ndarray:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    return load_digits().images.astype(np.float32)  # (1797, 8, 8), values 0..16


def load_digits_images(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """scikit-learn's 8x8 digits as (1797, 1, 8, 8), pixel values v in 0..16 mapped to v/8 - 1.

    The range [-1, 1] matches a tanh generator output.
    """
    x = torch.from_numpy(_digits_array().copy()).to(dtype)
    return (x / 8.0 - 1.0).unsqueeze(1)


class EpochSampler:
    """Minibatches of a finite data set without replacement, reshuffled per seed each epoch.

    Seed s shuffles with ``gens[s]`` (``torch.randperm``) whenever fewer than ``batch`` unseen
    items remain (the remainder is dropped, like ``drop_last``), so every seed makes an
    independent pass over the data and a batched run equals separate runs. The state (current
    permutations, position) goes into checkpoints via ``state_dict``.

    Example:
        >>> from repro.nets import seed_generators
        >>> sampler = EpochSampler(load_digits_images())
        >>> sampler(seed_generators([0, 1]), 64).shape
        torch.Size([2, 64, 1, 8, 8])
    """

    def __init__(self, data: torch.Tensor):
        self.data = data  # (N, ...) on the device the batches should live on
        self.perms: torch.Tensor | None = None  # (S, N) long, CPU
        self.pos = 0

    def steps_per_epoch(self, batch: int) -> int:
        """Minibatches per epoch: floor(N / batch)."""
        return len(self.data) // batch

    def __call__(
        self, gens: Sequence[torch.Generator], batch: int, device: Any = None
    ) -> torch.Tensor:
        n = len(self.data)
        if batch > n:
            raise ValueError(f"batch {batch} exceeds the data set size {n}")
        if self.perms is None or self.pos + batch > n:
            self.perms = torch.stack([torch.randperm(n, generator=g) for g in gens])
            self.pos = 0
        if len(self.perms) != len(gens):
            raise ValueError(f"sampler holds {len(self.perms)} seeds, got {len(gens)} generators")
        idx = self.perms[:, self.pos : self.pos + batch]  # (S, B)
        self.pos += batch
        out = self.data[idx.to(self.data.device)]  # (S, B, ...)
        return out if device is None else out.to(device)

    def fresh(self) -> EpochSampler:
        """A new sampler over the same data (shared, not copied) with no epoch in progress."""
        return EpochSampler(self.data)

    def state_dict(self) -> dict[str, Any]:
        return {"perms": self.perms, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.perms, self.pos = state["perms"], int(state["pos"])
