"""One table of random streams, and a counter-based draw keyed by (seed, stream, step).

Every random number of an experiment belongs to a named stream. Draws after initialisation
(batches, latent z, noise, penalty weights, evaluation sets) come from a ``Stream``: numbers
computed on the copies' device by ``draw``, an integer hash of (seed, stream, call, position), so
a copy's numbers cannot depend on which other copies share the batch, and a CPU and a GPU draw the
same numbers (uniforms bit for bit; normals to float32 rounding, see ``draw``). Network weights
are still initialised once from CPU ``torch.Generator`` s seeded with
``repro.nets.stream_seed(seed, id)`` (``generators``; no host work inside a training step). The
ids below are the ones the experiments used before this table existed. Names are what new code
should use.

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
 108  classifier_extra        gradients: the real images of d-perfect's quality measure
 4/t  eval, substream t       noise (annealed): evaluation batches drawn afresh at step t
==== ======================= ============================================================

Two names with one id never meet in one experiment, so no two streams of a run coincide; the
clash is a reading hazard only. An id may serve a net's initialisation (a CPU generator) and a
``Stream`` in one experiment (classifier, quality_classifier): the two compute unrelated
numbers. New experiments take a fresh id from ``STREAMS``.

The switch from per-seed CPU generators to ``Stream`` (issue 15, item 3) changed every random
number after initialisation once, in one commit; the checks did not change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
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
# counter-based draws: integer arithmetic on int32 tensors, so they run on any device

_M32 = 0xFFFFFFFF


def _i32(v: int) -> int:
    """The int32 with the bits of the unsigned 32-bit ``v``."""
    return v - (1 << 32) if v >= (1 << 31) else v


_K1, _K2 = 0x7FEB352D, 0x846CA68B  # lowbias32's multipliers
# start words of the two independent key chains (for the seed part, then the (stream, step) part)
_SEED_START = (0x9E3779B9, 0x85EBCA6B)
_STEP_START = (0xC2B2AE35, 0x27D4EB2F)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 (C. Wellons' hash prospector), a bijection of the 32-bit words, in place on an
    int32 tensor: products wrap mod 2^32 (two's complement), right shifts are made logical."""
    x ^= (x >> 16) & 0xFFFF
    x *= _i32(_K1)
    x ^= (x >> 15) & 0x1FFFF
    x *= _i32(_K2)
    x ^= (x >> 16) & 0xFFFF
    return x


def _mix32_int(x: int) -> int:
    """lowbias32 on a Python int in [0, 2^32): the same bijection, computed on the host."""
    x ^= x >> 16
    x = (x * _K1) & _M32
    x ^= x >> 15
    x = (x * _K2) & _M32
    return x ^ (x >> 16)


def _wrap32(x: torch.Tensor) -> torch.Tensor:
    """int64 values in [0, 2^32) to the int32 with the same bits (explicit, no overflowing cast)."""
    x = x.to(torch.int64)
    return torch.where(x >= 1 << 31, x - (1 << 32), x).to(torch.int32)


def _seed_keys(seeds: torch.Tensor) -> torch.Tensor:
    """(2, C, 1) int32: chain j of copy c = mix(mix(start_j ^ lo(seed_c)) ^ hi(seed_c))."""
    s = seeds.to(torch.int64).reshape(-1, 1)
    lo, hi = _wrap32(s & _M32), _wrap32((s >> 32) & _M32)
    return torch.stack([_mix32(_mix32(lo ^ _i32(a)) ^ hi) for a in _SEED_START])


def _step_keys(stream: int, step: int | torch.Tensor) -> tuple:
    """(K1, K2): chain j = mix(mix(mix(start_j ^ stream) ^ lo(step)) ^ hi(step)), as int32 values
    (Python ints for an int step: no device work; 0-d tensors for a device step, graph-safe)."""
    if isinstance(step, torch.Tensor):
        t = step.to(torch.int64)
        lo, hi = _wrap32(t & _M32), _wrap32((t >> 32) & _M32)
        starts = [_i32(_mix32_int(a ^ stream)) for a in _STEP_START]
        return tuple(_mix32(_mix32(torch.full_like(lo, h) ^ lo) ^ hi) for h in starts)
    if not 0 <= step < 2**64:
        raise ValueError(f"step must be in [0, 2^64), got {step}")
    lo, hi = step & _M32, step >> 32
    chains = (_mix32_int(_mix32_int(_mix32_int(a ^ stream) ^ lo) ^ hi) for a in _STEP_START)
    return tuple(_i32(k) for k in chains)


def _words(seed_keys: torch.Tensor, step_keys: tuple, counter: torch.Tensor) -> torch.Tensor:
    """(C, n) int32 words: word i of copy c = mix(mix(i ^ k1) ^ k2), k_j = seed chain j of c
    XOR step chain j. Two independent 32-bit chains make a 64-bit key: two (copy, call) pairs
    share a key with probability 2^-64, and copies whose k1 differ in low bits (k1 ^ k1' < n)
    still get unrelated words, not the same words at permuted positions."""
    x = counter ^ (seed_keys[0] ^ step_keys[0])
    x = _mix32(x)
    x ^= seed_keys[1] ^ step_keys[1]
    return _mix32(x)


def _mix32_np(x: np.ndarray) -> np.ndarray:
    """lowbias32 in place on a uint32 array: the same bijection as ``_mix32`` (numpy's uint32
    products wrap and its shifts are logical, so no masks are needed)."""
    x ^= x >> np.uint32(16)
    x *= np.uint32(_K1)
    x ^= x >> np.uint32(15)
    x *= np.uint32(_K2)
    x ^= x >> np.uint32(16)
    return x


def _words_host(seed_keys: np.ndarray, step_keys: tuple, n: int) -> torch.Tensor:
    """``_words`` for CPU tensors, in numpy: the same integers (the hash is exact integer
    arithmetic), in a third of the operations and without torch's per-op overhead, which
    dominates the many small draws of a training step. (C, n) int32 sharing numpy's memory."""
    k1 = seed_keys[0] ^ np.uint32(step_keys[0] & _M32)  # (C, 1)
    k2 = seed_keys[1] ^ np.uint32(step_keys[1] & _M32)
    x = np.arange(n, dtype=np.uint32) ^ k1
    _mix32_np(x)
    x ^= k2
    return torch.from_numpy(_mix32_np(x).view(np.int32))


def _unsigned(words: torch.Tensor, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """int32 words as their unsigned values, [0, 2^32), in int64 or float64 (exact: 2^32 <
    2^53). On the CPU one numpy pass through a uint32 view, without an int64 temporary."""
    if words.device.type == "cpu":
        np_dtype = np.int64 if dtype == torch.int64 else np.float64
        return torch.from_numpy(words.numpy().view(np.uint32).astype(np_dtype))
    return (words.to(torch.int64) & _M32).to(dtype)


def _as(words: torch.Tensor, shape: Sequence[int], dist: str, dtype: torch.dtype) -> torch.Tensor:
    """The (C, n) words as numbers of ``dist`` (see ``draw``), shaped (C, *shape)."""
    if dist == "uniform":
        if dtype == torch.float64:
            u = _unsigned(words, torch.float64).mul_(2.0**-32)
        else:
            u = ((words >> 8) & 0xFFFFFF).to(torch.float32) * 2.0**-24  # exact in float32
        return u.to(dtype).reshape(-1, *shape)
    # Box-Muller in float64; r cos and r sin are rounded to dtype as they are stored
    c, n = len(words), math.prod(shape)
    w = _unsigned(words, torch.float64).view(c, -1, 2)
    r = (w[..., 0] + 1.0).mul_(2.0**-32).log_().mul_(-2.0).sqrt_()
    a = w[..., 1] * (2.0 * math.pi * 2.0**-32)
    z = torch.empty(c, w.shape[1], 2, dtype=dtype, device=words.device)
    torch.mul(r, torch.cos(a), out=z[..., 0])
    torch.mul(r, a.sin_(), out=z[..., 1])
    z = z.view(c, -1)
    return (z if z.shape[1] == n else z[:, :n]).reshape(-1, *shape)


def _n_words(shape: Sequence[int], dist: str) -> int:
    n = math.prod(shape)
    if dist == "normal":
        return n + n % 2  # Box-Muller uses words in pairs
    if dist == "uniform":
        return n
    raise ValueError(f"unknown dist {dist!r}; valid: normal, uniform")


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
    the same whatever other copies share the call (batched equals separate by construction).

    Args:
        seeds: (C,) integer seeds (any device; the draw happens there).
        stream: a name of ``STREAMS`` or an id.
        step: the training step (or any counter); an int or a 0-d integer tensor, which keeps a
            captured CUDA graph valid across steps.
        shape: per-copy shape.
        dist: "uniform" on [0, 1): u = k 2^-24 from the word's top 24 bits in float32 (exact),
            k 2^-32 from all 32 in float64; "normal" by Box-Muller, one word per number: words
            (2j, 2j+1) give u1 = (k + 1) 2^-32 in (0, 1] and u2 = k' 2^-32, and numbers 2j, 2j+1
            are r cos(2 pi u2), r sin(2 pi u2), r = sqrt(-2 log u1), computed in float64 and
            rounded to ``dtype``. The float64 log / cos / sin of different CPUs (or a vectorised
            loop's tail) may differ by one float64 ulp, which changes a float32 result only when
            it lies within 2^-29 of a rounding boundary.
        dtype: result dtype.

    Example:
        >>> u = draw(torch.tensor([0, 1, 2]), "data", 7, (4, 2))
        >>> u.shape, bool(((u >= 0) & (u < 1)).all())
        (torch.Size([3, 4, 2]), True)
    """
    n = _n_words(shape, dist)
    counter = torch.arange(n, dtype=torch.int32, device=seeds.device)
    words = _words(_seed_keys(seeds), _step_keys(stream_id(stream), step), counter)
    return _as(words, shape, dist, dtype)


class Stream:
    """The random numbers of one named stream for C copies, drawn on the device, call by call.

    ``Stream(seeds, "data", device)`` stands where a list of one ``torch.Generator`` per seed
    used to: ``len`` is the number of copies, and every draw returns (C, *shape), row c a
    function of (seeds[c], stream, call number, position) alone (``draw``). Each call takes the
    next counter value, so a run makes the same sequence of calls and gets the same numbers
    whether its copies are batched or not, on any device. Copies that share a seed share their
    numbers (as equal generators did). ``substream`` t gives an independent sequence of the same
    stream (e.g. the evaluation batches drawn afresh at step t): call k of it is keyed by the
    64-bit counter t 2^32 + k.

    The counter is a host int by default: the key of a call is then computed on the host and a
    CPU draw runs in numpy (``_words_host``: the same integers, without torch's per-op cost).
    ``static=True`` keeps it in a 0-d int64 tensor on the device, which every call reads and
    increments in place: the form a captured CUDA graph needs (``repro.engine.graph``), where a
    host int would be baked into the graph and every replay would redraw the first numbers. Both
    forms draw the same numbers (tests/test_engine.py).

    Example:
        >>> s = Stream([0, 1], "data")
        >>> s.normal(3, 2).shape, s.counter
        (torch.Size([2, 3, 2]), 1)
    """

    def __init__(
        self,
        seeds: Sequence[int] | torch.Tensor,
        stream: str | int,
        device=None,
        substream: int = 0,
        static: bool = False,
    ):
        seeds = torch.as_tensor(seeds, dtype=torch.int64)
        self.seeds = seeds.reshape(-1).to(device if device is not None else seeds.device)
        self.stream = stream_id(stream)
        if not 0 <= substream < 2**31:
            raise ValueError(f"substream must be in [0, 2^31), got {substream}")
        self.base = int(substream) << 32
        self._seed_keys = _seed_keys(self.seeds)  # the per-copy half of every key: once
        self._host = self.device.type == "cpu" and not static
        if self._host:
            self._seed_keys_np = self._seed_keys.numpy().view(np.uint32)
        self._count = 0  # calls so far (host form)
        self._step = (
            torch.full((), self.base, dtype=torch.int64, device=self.device) if static else None
        )
        self._counters: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.seeds)

    @property
    def device(self) -> torch.device:
        return self.seeds.device

    @property
    def static(self) -> bool:
        return self._step is not None

    @property
    def counter(self) -> int:
        """Calls drawn so far (a static stream reads its device counter: a sync)."""
        return self._count if self._step is None else int(self._step) - self.base

    def _words(self, n: int) -> torch.Tensor:
        """(C, n) words of the next call (the counter moves by one)."""
        if self._step is not None:  # device counter: graph-safe, no host value
            keys = _step_keys(self.stream, self._step)
            self._step.add_(1)
        else:
            keys = _step_keys(self.stream, self.base + self._count)
            self._count += 1
            if self._host:
                return _words_host(self._seed_keys_np, keys, n)
        if n not in self._counters:
            self._counters[n] = torch.arange(n, dtype=torch.int32, device=self.device)
        return _words(self._seed_keys, keys, self._counters[n])

    def _draw(self, shape: Sequence[int], dist: str, dtype: torch.dtype) -> torch.Tensor:
        return _as(self._words(_n_words(shape, dist)), shape, dist, dtype)

    def uniform(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """U[0, 1) numbers, (C, *shape)."""
        return self._draw(shape, "uniform", dtype)

    def normal(self, *shape: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        """N(0, 1) numbers, (C, *shape), in ``dtype`` (default: torch's default dtype)."""
        dtype = dtype or torch.get_default_dtype()
        return self._draw(shape, "normal", dtype)

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        """Integers uniform on {0, ..., high - 1}, (C, *shape) int64: floor(word high / 2^32)
        (bias < high / 2^32)."""
        words = _unsigned(self._words(math.prod(shape)))
        return ((words * high) >> 32).reshape(-1, *shape)

    def categorical(self, probs: torch.Tensor, *shape: int) -> torch.Tensor:
        """Indices k with probability probs[k] (normalised here), (C, *shape) int64, by the
        inverse CDF of a float64 uniform (``inverse_cdf``). Pass ``probs`` on the stream's
        device (made once per sampler) to keep host-device copies out of a step."""
        return inverse_cdf(cdf(probs).to(self.device), self.uniform(*shape, dtype=torch.float64))

    def permutation(self, n: int) -> torch.Tensor:
        """One random permutation of range(n) per copy, (C, n) int64: a stable argsort of n
        32-bit words (the same on every device)."""
        words = _unsigned(self._words(n))
        return torch.argsort(words, dim=1, stable=True)

    def state_dict(self) -> dict[str, int]:
        return {"counter": self.counter}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._count = int(state["counter"])
        if self._step is not None:
            self._step.fill_(self.base + self._count)


def cdf(probs: torch.Tensor) -> torch.Tensor:
    """The float64 CDF of the weights ``probs`` (normalised here), on their device."""
    return torch.cumsum(probs.to(torch.float64) / probs.sum(), 0)


def inverse_cdf(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Component indices of float64 uniforms ``u`` (any shape) by the inverse of ``cdf`` (K,):
    the first k with u < cdf[k], clamped to K - 1 against rounding in the last CDF value."""
    k = torch.searchsorted(cdf, u.reshape(-1).contiguous(), right=True)
    return k.clamp_(max=len(cdf) - 1).reshape(u.shape)
