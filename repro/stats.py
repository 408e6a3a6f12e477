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


def log_t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Geometric mean and the t-interval of log(values), mapped back: for positive, skewed
    quantities (iteration counts, ratios), whose plain t-interval can reach below zero.

    Returns (geometric mean, low, high); NaN unless every finite value is positive.

    Example:
        >>> [round(v, 6) for v in log_t_interval([1.0, 10.0, 100.0])][0]
        10.0
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0 or np.any(v <= 0):
        return float("nan"), float("nan"), float("nan")
    mean, low, high = t_interval(np.log(v), level)
    return float(np.exp(mean)), float(np.exp(low)), float(np.exp(high))


def interval(
    values, positive: bool = False, level: float = 0.95
) -> tuple[str, float, float, float]:
    """The interval that fits the quantity: ``("t", mean, low, high)``, or, for a quantity that
    is ``positive`` by nature (a count, a ratio) and whose t-interval would reach zero or below,
    ``("log-t", geometric mean, low, high)``.
    """
    mean, low, high = t_interval(values, level)
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if positive and v.size > 1 and np.all(v > 0) and low <= 0:
        return ("log-t", *log_t_interval(v, level))
    return ("t", mean, low, high)


def one_sided_test(values, h0: float, name: str, alternative: str) -> float:
    """p-value of a one-sided test across seeds of H0 "the location of ``values`` is ``h0``".

    ``name``: ``t`` (one-sample Student t on the mean), ``wilcoxon`` (signed-rank on the median;
    zero differences dropped), ``sign`` (binomial on the signs; zeros dropped). ``alternative``:
    ``greater`` or ``less``. NaN with fewer than two finite values, or when every difference is 0
    (no test can say anything). Note the smallest attainable p: with n seeds the exact Wilcoxon and
    sign tests cannot go below 2**-n (0.125 for 3 seeds).

    Example:
        >>> round(one_sided_test([1.0, 2.0, 3.0, 4.0], 0.0, "sign", "greater"), 4)
        0.0625
    """
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less'; got {alternative!r}")
    d = np.asarray(values, dtype=float)
    d = d[np.isfinite(d)] - h0
    if d.size < 2 or not np.any(d != 0):
        return float("nan")
    if name == "t":
        if np.all(d == d[0]):  # zero variance: the t statistic is undefined
            return 0.0 if (d[0] > 0) == (alternative == "greater") else 1.0
        return float(stats.ttest_1samp(d, 0.0, alternative=alternative).pvalue)
    if name == "wilcoxon":
        return float(stats.wilcoxon(d, zero_method="wilcox", alternative=alternative).pvalue)
    if name == "sign":
        d = d[d != 0]
        k = int((d > 0).sum()) if alternative == "greater" else int((d < 0).sum())
        return float(stats.binomtest(k, d.size, 0.5, alternative="greater").pvalue)
    raise ValueError(f"unknown test {name!r}; valid: t, wilcoxon, sign")
