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


# schedules whose std ``noise_std_on_device`` computes exactly as ``noise_std_at`` does (IEEE
# float64 division, product and sum in the same order); a geometric one's exp / log may differ
# from the host's libm in the last bit
DEVICE_SCHEDULES = ("constant", "linear")


def noise_on_device(schedule: Mapping[str, Any], total: int, steps: range) -> bool:
    """Whether a graph-captured step may compute the std from a device step count: the schedule
    is in ``DEVICE_SCHEDULES`` and its std is > 0 at every step of ``steps`` (monotone: checked
    at both ends), so the host path draws noise at every step as the device path always does
    (``add_instance_noise`` draws nothing at std 0)."""
    if schedule.get("kind") not in DEVICE_SCHEDULES or len(steps) == 0:
        return False
    return (
        min(noise_std_at(steps[0], total, schedule), noise_std_at(steps[-1], total, schedule)) > 0
    )


def noise_std_on_device(
    step: torch.Tensor, total: int, schedule: Mapping[str, Any]
) -> float | torch.Tensor:
    """``noise_std_at(step, total, schedule)`` for a 0-d float64 step count on the device (which
    the caller advances in place): a float for a constant schedule, else a 0-d float64 tensor
    with the host's value bit for bit (no host read: graph-safe). Schedules outside
    ``DEVICE_SCHEDULES`` -> ValueError.

    Example:
        >>> float(noise_std_on_device(torch.tensor(5.0, dtype=torch.float64), 10,
        ...                           {"kind": "linear", "start_std": 1.0, "end_std": 0.0}))
        0.5
    """
    kind = schedule.get("kind")
    if kind not in DEVICE_SCHEDULES:
        raise ValueError(
            f"noise schedule {kind!r} is not computed on the device; valid: "
            f"{', '.join(DEVICE_SCHEDULES)}"
        )
    if kind == "constant":
        return float(schedule["std"])
    s0, s1 = float(schedule["start_std"]), float(schedule["end_std"])
    frac = (step / max(total, 1)).clamp(0.0, 1.0)
    return frac * (s1 - s0) + s0  # s0 + (s1 - s0) frac, as noise_std_at


def add_instance_noise(x: torch.Tensor, std: float | torch.Tensor, gens: Stream) -> torch.Tensor:
    """``x + std * eps``, eps ~ N(0, I), drawn from the copies' random stream.

    ``x``: (S, B, ...) with a leading copy dimension; ``gens``: a ``repro.engine.streams.Stream``
    of S copies (copy i's noise depends on its seed alone, so S batched runs equal S separate
    runs). ``std == 0`` returns ``x`` unchanged and draws nothing. A 0-d tensor ``std`` (a
    schedule on the device, ``noise_std_on_device``) always draws and is not checked (a check
    would read it on the host).
    """
    if isinstance(std, torch.Tensor):
        if len(gens) != x.shape[0]:
            raise ValueError(f"a stream of {len(gens)} copies for {x.shape[0]} seeds")
        return x + std * gens.normal(*x.shape[1:], dtype=x.dtype).to(x.device)
    if std < 0:
        raise ValueError(f"noise std must be >= 0; got {std}")
    if std == 0:
        return x
    if len(gens) != x.shape[0]:
        raise ValueError(f"a stream of {len(gens)} copies for {x.shape[0]} seeds")
    return x + std * gens.normal(*x.shape[1:], dtype=x.dtype).to(x.device)
