"""Metrics for batched GAN runs: pure tensor functions returning one value per seed, shape (S,).

Public API:
    d_accuracy(real_logits, fake_logits) -> (S,)        balanced accuracy of D at threshold 1/2
    per_seed_grad_norm(loss, params) -> (S,)            ||grad of loss[s] wrt seed s's parameters||
    nearest_mode(samples, means) -> (index, distance)   (S, N) each
    mode_counts(samples, means, mode_std, n_std) -> (S, K)   high-quality samples per mode
    mode_metrics(samples, means, mode_std, n_std) -> dict of (S,): modes_captured,
        high_quality_frac, reverse_kl (VEEGAN / PacGAN protocol, 2,500 samples: EVAL_SAMPLES)
    reverse_kl_uniform(counts) -> (S,)                  KL(mode histogram || uniform)
    frechet_distance(m1, C1, m2, C2), feature_gaussian(f)   FD between fitted Gaussians (FID)
    w1_pool(pairs, workers=None) -> list[float]         exact W1 of many point-set pairs, solved
        after training in a process pool (issue 15, item 3)
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

EVAL_SAMPLES = 2500  # samples per mode evaluation (VEEGAN Table 1, PacGAN Table 1)
HIGH_QUALITY_STDS = 3.0  # "high quality": within 3 std of the nearest mode


def d_accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Balanced accuracy of D per seed: (P(l_real > 0) + P(l_fake <= 0)) / 2 over the batch.

    D(x) = sigmoid(l) > 1/2 means "real". Averaging the two rates (rather than pooling) keeps
    unequal real / fake batch sizes from weighting one side more. 1 for a perfect D
    (Arjovsky & Bottou 2017, Thm. 2.1-2.2 and Fig. 1), 1/2 for a coin flip.

    Args:
        real_logits: (S, B_r[, 1]) D's logits on real samples.
        fake_logits: (S, B_f[, 1]) D's logits on generated samples.

    Returns:
        (S,) accuracies in [0, 1], in the logits' floating dtype.
    """
    s = real_logits.shape[0]
    on_real = (real_logits.reshape(s, -1) > 0).to(real_logits.dtype).mean(dim=1)
    on_fake = (fake_logits.reshape(s, -1) <= 0).to(fake_logits.dtype).mean(dim=1)
    return 0.5 * (on_real + on_fake)


def per_seed_grad_norm(
    loss: torch.Tensor, params: Sequence[torch.Tensor], retain_graph: bool = False
) -> torch.Tensor:
    """||grad_{theta_s} loss_s||_2 for every seed s, theta_s all of seed s's parameters.

    Every parameter of a batched model has a leading seed dimension and loss_s depends on
    theta_s only, so one backward pass of sum_s loss_s gives each seed's gradient in slice
    [s]; the norm runs over all parameters' slices together:
        norm_s = sqrt(sum_p sum_i (d loss_s / d p[s, i])^2).
    This is the quantity of Arjovsky & Bottou 2017, Fig. 2-3 (generator gradient norms).

    Args:
        loss: (S,) per-seed losses (attached to the graph).
        params: parameters, each (S, ...).
        retain_graph: keep the graph for another call (e.g. a second cost on the same batch).

    Returns:
        (S,) gradient norms, detached. Parameters the loss does not reach contribute 0.
    """
    params = list(params)
    grads = torch.autograd.grad(loss.sum(), params, retain_graph=retain_graph, allow_unused=True)
    sq = torch.zeros(loss.shape[0], dtype=loss.dtype, device=loss.device)
    for p, g in zip(params, grads, strict=True):
        if p.shape[0] != loss.shape[0]:
            raise ValueError(f"parameter of shape {tuple(p.shape)} has no seed dim {loss.shape[0]}")
        if g is not None:
            sq = sq + g.detach().reshape(g.shape[0], -1).pow(2).sum(dim=1).to(sq.dtype)
    return sq.sqrt()


def nearest_mode(samples: torch.Tensor, means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of, and Euclidean distance to, the nearest mode of every sample.

    Args:
        samples: (S, N, d).
        means: (K, d) mode centres.

    Returns:
        index (S, N) long in 0..K-1, distance (S, N).
    """
    means = means.to(device=samples.device, dtype=samples.dtype)
    dist = torch.cdist(samples, means.expand(samples.shape[0], *means.shape))  # (S, N, K)
    distance, index = dist.min(dim=2)
    return index, distance


def mode_counts(
    samples: torch.Tensor,
    means: torch.Tensor,
    mode_std: float,
    n_std: float = HIGH_QUALITY_STDS,
) -> torch.Tensor:
    """Number of high-quality samples whose nearest mode is k, per seed: (S, K).

    A sample is high quality when its distance to the nearest mode is at most n_std * mode_std
    (the protocol behind VEEGAN's Table 1, Srivastava et al. 2017, and PacGAN's Table 1, Lin et
    al. 2018: 3 std).
    """
    index, distance = nearest_mode(samples, means)
    good = (distance <= n_std * mode_std).to(samples.dtype)  # (S, N)
    counts = torch.zeros(
        samples.shape[0], means.shape[0], dtype=samples.dtype, device=samples.device
    )
    return counts.scatter_add_(1, index, good)


def reverse_kl_uniform(counts: torch.Tensor) -> torch.Tensor:
    """KL(p || u) = sum_k p_k log(p_k K) for the histogram p = counts / sum(counts), u uniform.

    The reverse KL of PacGAN's Table 1 (generated mode distribution against the uniform true
    one), with 0 log 0 = 0: 0 for a uniform histogram, log K when one mode holds everything.
    NaN for a seed with no counted samples (the histogram is undefined).

    Args:
        counts: (S, K) non-negative counts.

    Returns:
        (S,) KL in nats.
    """
    total = counts.sum(dim=1, keepdim=True)
    p = counts / total  # NaN rows where total == 0
    return torch.xlogy(p, p).sum(dim=1) + math.log(counts.shape[1])


def mode_metrics(
    samples: torch.Tensor,
    means: torch.Tensor,
    mode_std: float,
    n_std: float = HIGH_QUALITY_STDS,
) -> dict[str, torch.Tensor]:
    """Mode-collapse metrics of generated samples on a Gaussian mixture, per seed.

    Protocol of VEEGAN (Srivastava et al. 2017, Table 1) and PacGAN (Lin et al. 2018, Table 1),
    evaluated on ``EVAL_SAMPLES`` = 2,500 samples:
        high_quality_frac: fraction of samples within n_std * mode_std of their nearest mode;
        modes_captured: number of modes that are the nearest mode of >= 1 high-quality sample;
        reverse_kl: KL(histogram of high-quality samples over modes || uniform) (PacGAN).

    Args:
        samples: (S, N, d) generated samples.
        means: (K, d) mode centres (e.g. ``repro.data.ring_means()``).
        mode_std: the modes' standard deviation.

    Returns:
        dict of (S,) tensors: modes_captured, high_quality_frac, reverse_kl.
    """
    counts = mode_counts(samples, means, mode_std, n_std)  # (S, K)
    return {
        "modes_captured": (counts > 0).sum(dim=1).to(samples.dtype),
        "high_quality_frac": counts.sum(dim=1) / samples.shape[1],
        "reverse_kl": reverse_kl_uniform(counts),
    }


def frechet_distance(
    mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor, cov2: torch.Tensor
) -> float:
    """Frechet distance between Gaussians N(m1, C1) and N(m2, C2) (Heusel et al. 2017, FID):

        ||m1 - m2||^2 + tr(C1 + C2 - 2 (C1^(1/2) C2 C1^(1/2))^(1/2)).

    Computed in float64 through the symmetric square root of C1 and the eigenvalues of
    C1^(1/2) C2 C1^(1/2) (clipped at 0), so it is real and >= 0 up to rounding. For diagonal
    covariances it equals ||m1 - m2||^2 + sum_i (sqrt(c1_i) - sqrt(c2_i))^2.
    """
    m1, m2 = mean1.double(), mean2.double()
    c1, c2 = cov1.double(), cov2.double()

    def sqrt_psd(c: torch.Tensor) -> torch.Tensor:
        w, v = torch.linalg.eigh((c + c.T) / 2)
        return (v * w.clamp(min=0).sqrt()) @ v.T

    r1 = sqrt_psd(c1)
    cross = torch.linalg.eigvalsh(r1 @ c2 @ r1).clamp(min=0).sqrt().sum()
    return float((m1 - m2).pow(2).sum() + torch.trace(c1) + torch.trace(c2) - 2 * cross)


def feature_gaussian(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (F,) and covariance (F, F) (ddof = 1) of features (N, F), in float64."""
    f = features.double()
    return f.mean(0), torch.cov(f.T)


# ---------------------------------------------------------------------------------------------
# exact W1 of many pairs, in a process pool


def _w1_job(x: np.ndarray, y: np.ndarray) -> float:
    """One exact W1 (a worker's task; module level so that the pool can pickle it)."""
    from repro.divergences import w1_samples  # preloaded in the forkserver

    return w1_samples(x, y)


def _pool_context():
    """forkserver where available: workers fork from a clean server process (not from this
    multi-threaded torch one) that has imported POT once (its import takes seconds), not once
    per worker; else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["repro.metrics", "repro.divergences", "ot"])
    return ctx


def _pair_error(index: int, err: BaseException) -> RuntimeError:
    return RuntimeError(f"exact W1 of pair {index} failed: {type(err).__name__}: {err}")


# The one place the pool's size comes from (document changes in README's pipeline section).
W1_WORKERS_ENV = "GAN_CLAIMS_W1_WORKERS"


def w1_workers() -> int:
    """How many processes ``w1_pool`` uses by default: ``$GAN_CLAIMS_W1_WORKERS`` if set, else
    torch's intra-op thread count, which ``repro.pipeline run --threads`` sets to the cores
    Snakemake gives the claim's job (the rule's ``threads``, config ``threads``). A job never
    takes more cores for its W1 solves than for its training."""
    env = os.environ.get(W1_WORKERS_ENV)
    if env:
        return max(1, int(env))
    return max(1, torch.get_num_threads())


def w1_pool(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], workers: int | None = None
) -> list[float]:
    """Exact W1 of every (x, y) pair: ``repro.divergences.w1_samples`` (POT's network simplex),
    the pairs solved in parallel in a process pool.

    Returns exactly what ``[w1_samples(x, y) for x, y in pairs]`` returns (same solver, same
    inputs: bit-identical floats), in the order of ``pairs``. Meant for after training: hand it
    the samples an evaluation kept (``repro.engine.Result.evals``) as numpy arrays.

    Args:
        pairs: (x, y) point sets, each (n, d) (1-D read as d = 1), numpy arrays or CPU tensors.
        workers: processes; None -> ``w1_workers()`` (at most one per pair). 1 (or a single
            pair) solves in this process, no pool.

    Raises:
        RuntimeError naming the index of the first pair (in order) whose solve failed, chained
        to the worker's exception (``__cause__``).
    """
    pairs = [(_numpy(x), _numpy(y)) for x, y in pairs]
    if _dry_run is not None:  # the budget counts the solves instead (``w1_dry_run``)
        _dry_run.extend((_points(x).shape, _points(y).shape) for x, y in pairs)
        return [0.0] * len(pairs)
    if workers is None:
        workers = w1_workers()
    workers = max(1, min(int(workers), len(pairs) or 1))
    if workers == 1:
        out = []
        for i, (x, y) in enumerate(pairs):
            try:
                out.append(_w1_job(x, y))
            except Exception as err:
                raise _pair_error(i, err) from err
        return out
    with ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
        futures = [pool.submit(_w1_job, x, y) for x, y in pairs]
        out = []
        for i, fut in enumerate(futures):
            try:
                out.append(fut.result())
            except Exception as err:
                for f in futures[i + 1 :]:
                    f.cancel()
                raise _pair_error(i, err) from err
        return out


_dry_run: list | None = None


@contextlib.contextmanager
def w1_dry_run():
    """Within this context ``w1_pool`` solves nothing: it records each pair's shapes
    ((n, d), (m, d)) in the yielded list and returns 0.0 per pair. For bench/budget.py, which
    runs experiments on the meta device (no data) and prices the solves from timings."""
    global _dry_run
    saved, _dry_run = _dry_run, []
    try:
        yield _dry_run
    finally:
        _dry_run = saved


def _points(a: np.ndarray) -> np.ndarray:
    return a.reshape(len(a), -1)


def _numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)
