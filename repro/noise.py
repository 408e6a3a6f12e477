"""Instance noise: the one input transform shared by every D that sees noisy inputs.

Arjovsky & Bottou 2017 (Sec. 3, Thm 3.1) add eps ~ N(0, std^2 I) to both the real and the fake
samples before D: the noisy distributions are absolutely continuous, their supports overlap, and
the optimal D is P_{r+eps} / (P_{r+eps} + P_{g+eps}). Sonderby et al. 2016 anneal the noise std
towards 0 during training. The schedule is a parameter (a small dict), so every claim that uses
noise reads it the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from repro.engine.streams import Stream

SCHEDULES = ("constant", "linear", "geometric")


def noise_std_at(step: int, total: int, schedule: Mapping[str, Any]) -> float:
    """The noise std after ``step`` of ``total`` steps under ``schedule``.

    ``schedule``: ``{"kind": "constant", "std": s}``, ``{"kind": "linear", "start_std": s0,
    "end_std": s1}`` (straight line from s0 at step 0 to s1 at ``total``) or ``{"kind":
    "geometric", "start_std": s0, "end_std": s1}`` (log-linear, s1 > 0). Steps past ``total``
    keep the end value.

    Example:
        >>> noise_std_at(5, 10, {"kind": "linear", "start_std": 1.0, "end_std": 0.0})
        0.5
    """
    kind = schedule.get("kind")
    if kind not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
    if kind == "constant":
        return float(schedule["std"])
    frac = min(max(step / max(total, 1), 0.0), 1.0)
    s0, s1 = float(schedule["start_std"]), float(schedule["end_std"])
    if kind == "linear":
        return s0 + (s1 - s0) * frac
    if s0 <= 0 or s1 <= 0:
        raise ValueError(f"a geometric schedule needs positive stds; got {s0}, {s1}")
    return math.exp(math.log(s0) + (math.log(s1) - math.log(s0)) * frac)


def add_instance_noise(x: torch.Tensor, std: float, gens: Stream) -> torch.Tensor:
    """``x + std * eps``, eps ~ N(0, I), drawn from the copies' random stream.

    ``x``: (S, B, ...) with a leading copy dimension; ``gens``: a ``repro.engine.streams.Stream``
    of S copies (copy i's noise depends on its seed alone, so S batched runs equal S separate
    runs). ``std == 0`` returns ``x`` unchanged and draws nothing.
    """
    if std < 0:
        raise ValueError(f"noise std must be >= 0; got {std}")
    if std == 0:
        return x
    if len(gens) != x.shape[0]:
        raise ValueError(f"a stream of {len(gens)} copies for {x.shape[0]} seeds")
    return x + std * gens.normal(*x.shape[1:], dtype=x.dtype).to(x.device)
