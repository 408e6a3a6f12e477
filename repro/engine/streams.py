"""One table of random streams, and a counter-based draw keyed by (seed, stream, step).

Every random number of an experiment belongs to a named stream. Today each stream is a CPU
``torch.Generator`` per seed, seeded with ``repro.nets.stream_seed(seed, id)``; the ids below are
the ones the experiments used before this table existed, kept so that every number stays
bit-identical while code moves (issue 15's gate). Names are what new code should use.

Stream ids as found in main at 77cd570 (id 5 meant four things, 8 and 9 two each):

==== ======================= ============================================================
 id   name                    used by
==== ======================= ============================================================
 0    g_init                  G's initial weights (nets.STREAM_G; stream 0 = manual_seed)
 1    d_init                  D's initial weights (nets.STREAM_D), every experiment
 2    data                    training batches, latent z, penalty weights (STREAM_DATA)
 3    fresh_d                 a fresh D against a frozen G: init and batches (gradients)
 4    eval                    held-out evaluation batches (STREAM_EVAL)
 5    critic_init             critic weights: supports, critic, clipping
 5    classifier              stacked's digit classifier (init and minibatches)
 7    minibatch               gradients: minibatch gradient samples
 8    quality_classifier      gradients: the Fashion quality classifier
 8    w1                      mixtures: fresh data for the W1 evaluation
 9    theorem                 gradients: the analytic Theorem 2.6 draws
 9    trainset                mixtures: PacGAN's finite training set
 10+j d_index                gradients: init integer of D j (j >= 1) of one copy
 104  eval_extra              gradients: quality evaluation z (STREAM_EVAL + 100)
 107  minibatch_extra         gradients: minibatch tail samples (STREAM_MINIBATCH + 100)
 108  classifier_extra        gradients: classifier batches (STREAM_CLASSIFIER + 100)
 -    eval(s + 7919 t)        noise (annealed): eval generators re-seeded per step t
==== ======================= ============================================================

Two names with one id never meet in one experiment, so no two streams of a run coincide; the
clash is a reading hazard only. New experiments take a fresh id from ``STREAMS``.

The target (issue 15, item 3) is ``draw``: random numbers computed on the device from
(seed, stream, step, position) by an integer hash, so a copy's numbers cannot depend on which
other copies share the batch. No experiment uses it yet: switching changes every number and is a
separate commit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from repro.nets import seed_generators

# name -> id. Ids 0-4 are repro.nets' STREAM_*; the rest as tabulated in the module docstring.
STREAMS: dict[str, int] = {
    "g_init": 0,
    "d_init": 1,
    "data": 2,
    "fresh_d": 3,
    "eval": 4,
    "critic_init": 5,
    "classifier": 5,
    "minibatch": 7,
    "quality_classifier": 8,
    "w1": 8,
    "theorem": 9,
    "trainset": 9,
    "d_index": 10,
    "eval_extra": 104,
    "minibatch_extra": 107,
    "classifier_extra": 108,
}


def stream_id(name: str | int) -> int:
    """The id of stream ``name`` (an int passes through); unknown name -> KeyError listing all."""
    if isinstance(name, int):
        return name
    if name not in STREAMS:
        raise KeyError(f"unknown stream {name!r}; valid: {', '.join(sorted(STREAMS))}")
    return STREAMS[name]


def generators(seeds: Sequence[int], stream: str | int) -> list[torch.Generator]:
    """One CPU generator per seed on stream ``stream`` (= ``repro.nets.seed_generators``)."""
    return seed_generators(seeds, stream_id(stream))


# ---------------------------------------------------------------------------------------------
# counter-based draws: pure integer arithmetic in int64 tensors, so they run on any device

_M32 = 0xFFFFFFFF


def _mulmod32(x: torch.Tensor, a: int) -> torch.Tensor:
    """(x * a) mod 2^32 for 0 <= x < 2^32 without int64 overflow: split x into 16-bit halves."""
    hi = ((x >> 16) * a) & 0xFFFF
    return ((hi << 16) + (x & 0xFFFF) * a) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 (C. Wellons' hash prospector): a bijection of [0, 2^32) with good avalanche."""
    x = x ^ (x >> 16)
    x = _mulmod32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mulmod32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _bits(seeds: torch.Tensor, stream: int, step: int | torch.Tensor, n: int) -> torch.Tensor:
    """(C, n) 32-bit words: word i of copy c = H(seed_c, stream, step, i), H chained lowbias32."""
    seeds = seeds.to(torch.int64).reshape(-1, 1)
    step = torch.as_tensor(step, dtype=torch.int64, device=seeds.device)
    counter = torch.arange(n, dtype=torch.int64, device=seeds.device).reshape(1, -1)
    h = _mix32((seeds & _M32) ^ 0x9E3779B9)
    h = _mix32(h ^ ((seeds >> 32) & _M32))
    h = _mix32(h ^ (stream & _M32))
    h = _mix32(h ^ (step & _M32))
    h = _mix32(h ^ ((step >> 32) & _M32))
    return _mix32(_mix32(h ^ counter) ^ 0x85EBCA6B)


def draw(
    seeds: torch.Tensor,
    stream: str | int,
    step: int | torch.Tensor,
    shape: Sequence[int],
    dist: str = "uniform",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Random numbers for every copy from its (seed, stream, step): (C, *shape).

    Element i of copy c is a function of (seeds[c], stream, step, i) alone, computed with integer
    tensor ops on ``seeds``' device: no generator state, no host work, and copy c's numbers are
    the same bits whatever other copies share the call (batched equals separate by construction
    for ``uniform``; see ``normal`` below).

    Args:
        seeds: (C,) integer seeds (any device; the draw happens there).
        stream: a name of ``STREAMS`` or an id.
        step: the training step (or any counter); an int or a 0-d integer tensor, which keeps a
            captured CUDA graph valid across steps.
        shape: per-copy shape.
        dist: "uniform" on [0, 1) with 24 random bits (u = k 2^-24), or "normal" by Box-Muller
            from two uniforms with 53 random bits, computed in float64 and rounded to ``dtype``.
            The float64 log / cos are elementwise, but PyTorch's CPU kernels take a vectorised
            path for most elements and a scalar one for the tail of a tensor; the two may differ
            by one float64 ulp, which changes the float32 result only when it lies within 2^-29
            of a rounding boundary (tests: bitwise equal on the sizes they try).
        dtype: result dtype.

    Example:
        >>> u = draw(torch.tensor([0, 1, 2]), "data", 7, (4, 2))
        >>> u.shape, bool(((u >= 0) & (u < 1)).all())
        (torch.Size([3, 4, 2]), True)
    """
    n = math.prod(shape)
    sid = stream_id(stream)
    if dist == "uniform":
        words = _bits(seeds, sid, step, n)
        u = (words >> 8).to(torch.float64) * 2.0**-24  # exact: 24 bits into float64
        return u.to(dtype).reshape(-1, *shape)
    if dist == "normal":
        words = _bits(seeds, sid, step, 4 * n).reshape(-1, n, 4)
        k1 = ((words[..., 0] >> 5) << 26) + (words[..., 1] >> 6)  # 53 bits
        k2 = ((words[..., 2] >> 5) << 26) + (words[..., 3] >> 6)
        u1 = (k1.to(torch.float64) + 1.0) * 2.0**-53  # (0, 1]: log is finite
        u2 = k2.to(torch.float64) * 2.0**-53
        z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
        return z.to(dtype).reshape(-1, *shape)
    raise ValueError(f"unknown dist {dist!r}; valid: normal, uniform")
