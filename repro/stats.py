"""Small statistics over seeds."""

from __future__ import annotations

import numpy as np
from scipy import stats


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval of the finite ``values``.

    Returns (mean, low, high); the bounds are NaN with fewer than two finite values.

    Example:
        >>> t_interval([1.0, 2.0, 3.0])[0]
        2.0
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return mean, mean - half, mean + half
