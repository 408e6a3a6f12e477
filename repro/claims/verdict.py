"""Verdicts: per-seed values of a claim's metrics -> premises, checks, and the verdict.

Premises are judged **per seed** (``op value`` on that seed's value); a seed that misses any
premise votes in no check. A check is either ``aggregate op value`` over the voting seeds (e.g.
the median is >= 3; ``op: within`` with ``tolerance``: |aggregate - value| <= tolerance) or a
one-sided test across them (``test: {name, alternative, alpha}``, H0: the metric's location equals
``value``; it holds when H0 is rejected at ``alpha``). :func:`verdict` turns the evaluated premises
and checks into ``reproduced`` / ``partial`` / ``not reproduced`` / ``inconclusive``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from repro.stats import one_sided_test, t_interval

if TYPE_CHECKING:
    from repro.claims.spec import Spec

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def aggregate(values: np.ndarray, how: str) -> float:
    """Reduce per-seed values: mean, median, min, max, or a bound of the 95% t-interval."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or not np.all(np.isfinite(v)):
        return float("nan")
    if how in ("mean", "median", "min", "max"):
        return float(getattr(np, how)(v))
    if how in ("ci_low", "ci_high"):
        _, low, high = t_interval(v)
        return low if how == "ci_low" else high
    raise ValueError(f"unknown aggregate {how!r}; valid: mean, median, min, max, ci_low, ci_high")


def _compare(check: Mapping[str, Any], measured: float) -> bool:
    if check["op"] == "within":
        return bool(abs(measured - check["value"]) <= check["tolerance"])
    return bool(OPS[check["op"]](measured, check["value"]))


def evaluate_check(check: Mapping[str, Any], seeds_table: pd.DataFrame) -> dict[str, Any]:
    """One check with its measured value and whether it holds (None when unmeasurable).

    For an ``aggregate op value`` check, ``measured`` is the aggregate; for a test check it is the
    one-sided p-value, and the check holds when p < alpha. ``seeds_table`` holds the seeds that
    vote (those that met every premise: :func:`evaluate_checks`).
    """
    values = seeds_table[check["metric"]].to_numpy(dtype=float)
    if "test" in check:
        test = check["test"]
        measured = one_sided_test(values, check["value"], test["name"], test["alternative"])
        holds = None if math.isnan(measured) else bool(measured < test["alpha"])
    else:
        measured = aggregate(values, check["aggregate"])
        holds = None if math.isnan(measured) else _compare(check, measured)
    mean, low, high = t_interval(values)
    return {
        **check,
        "rule": check_rule(check),
        "measured": measured,
        "passed": holds,
        "n_seeds": int(np.isfinite(values).sum()),
        "mean": mean,
        "ci95": [low, high],
        "per_seed": values.tolist(),
        "seeds": _seed_ids(seeds_table),
    }


def _seed_ids(seeds_table: pd.DataFrame) -> list[int]:
    if "seed" in seeds_table:
        return [int(s) for s in seeds_table["seed"]]
    return list(range(len(seeds_table)))


def check_rule(check: Mapping[str, Any]) -> str:
    """The rule in words: ``median >= 3``, ``mean within 1 +- 0.1``, ``per seed: <= 0.01`` (a
    premise) or ``t-test (greater) vs 0: p < 0.05``."""
    if "test" in check:
        t = check["test"]
        return f"{t['name']}-test ({t['alternative']}) vs {check['value']:g}: p < {t['alpha']:g}"
    if check["op"] == "within":
        return f"{check['aggregate']} within {check['value']:g} +- {check['tolerance']:g}"
    if "aggregate" not in check:
        return f"per seed: {check['op']} {check['value']:g}"
    return f"{check['aggregate']} {check['op']} {check['value']:g}"


def evaluate_premise(premise: Mapping[str, Any], seeds_table: pd.DataFrame) -> dict[str, Any]:
    """One premise judged per seed: which seeds meet ``op value`` (a NaN value does not).

    ``measured`` is the number of seeds that met it, ``met`` the per-seed flags, and ``passed``
    whether every seed met it (None with no seeds).
    """
    values = seeds_table[premise["metric"]].to_numpy(dtype=float)
    met = [bool(math.isfinite(v) and OPS[premise["op"]](v, premise["value"])) for v in values]
    mean, low, high = t_interval(values)
    return {
        **premise,
        "rule": check_rule(premise),
        "measured": int(sum(met)),
        "passed": (all(met) if met else None),
        "n_seeds": len(values),
        "n_met": int(sum(met)),
        "met": met,
        "mean": mean,
        "ci95": [low, high],
        "per_seed": values.tolist(),
        "seeds": _seed_ids(seeds_table),
    }


def valid_seeds_mask(spec: Spec, seeds_table: pd.DataFrame) -> np.ndarray:
    """True for each seed (row) that meets every premise of ``spec``."""
    mask = np.ones(len(seeds_table), dtype=bool)
    for p in spec.premises:
        mask &= np.array(evaluate_premise(p, seeds_table)["met"], dtype=bool)
    return mask


def evaluate_checks(spec: Spec, seeds_table: pd.DataFrame) -> list[dict[str, Any]]:
    """Each check on the seeds that met every premise, with its measured value and whether it
    holds (None when unmeasurable). A seed that misses a premise votes in no check."""
    voting = seeds_table[valid_seeds_mask(spec, seeds_table)].reset_index(drop=True)
    return [evaluate_check(c, voting) for c in spec.checks]


def evaluate_premises(spec: Spec, seeds_table: pd.DataFrame) -> list[dict[str, Any]]:
    """Each premise, judged per seed (:func:`evaluate_premise`)."""
    return [evaluate_premise(p, seeds_table) for p in spec.premises]


def voting_seeds(premises: list[dict[str, Any]], seeds: list[int]) -> list[int] | None:
    """The seeds that met every evaluated premise (:func:`evaluate_premise`): those that vote in
    the checks. All ``seeds`` when there is no premise; None when a premise was not judged per
    seed (a summary from before per-seed premises)."""
    if any("met" not in p for p in premises):
        return None
    voting = list(seeds)
    for p in premises:
        met = {int(s) for s, m in zip(p.get("seeds") or seeds, p["met"], strict=True) if m}
        voting = [s for s in voting if s in met]
    return voting


def _fmt_values(values) -> str:
    return ", ".join("nan" if not math.isfinite(v) else f"{v:.4g}" for v in values)


def verdict(
    spec: Spec,
    scale: str,
    checks: list[dict[str, Any]],
    premises: list[dict[str, Any]] | None = None,
) -> tuple[str, str]:
    """(verdict, reason) from evaluated premises and checks alone.

    Premises are per seed: a seed votes only if it met all of them; the checks (from
    :func:`evaluate_checks`) were measured on those seeds. Fewer than ``min_seeds`` of them make
    the verdict inconclusive, naming each premise some seed missed and how many seeds met it.
    """
    if scale == "smoke":
        return "inconclusive", "smoke scale: a pipeline test, too small to support a verdict"
    premises = premises or []
    if premises:
        n_total = premises[0]["n_seeds"]
        valid = np.ones(n_total, dtype=bool)
        for p in premises:
            valid &= np.array(p["met"], dtype=bool)
        n_valid = int(valid.sum())
        if n_valid < spec.min_seeds:
            said = "; ".join(
                f"{p['id']} ({p['rule']}): {p['n_met']} of {p['n_seeds']} seeds met it; "
                f"per-seed values {_fmt_values(p['per_seed'])}"
                for p in premises
                if p["n_met"] < p["n_seeds"]
            )
            return (
                "inconclusive",
                f"premise not met: {said} ({n_valid} valid seed(s), fewer than "
                f"min_seeds={spec.min_seeds})",
            )
    n_valid = min((c["n_seeds"] for c in checks), default=0)
    if n_valid < spec.min_seeds:
        return "inconclusive", f"{n_valid} valid seed(s), fewer than min_seeds={spec.min_seeds}"
    if any(c["passed"] is None for c in checks):
        return "inconclusive", "a checked metric is NaN or infinite"
    n_pass = sum(c["passed"] for c in checks)
    dropped = ""
    if premises and n_valid < premises[0]["n_seeds"]:
        dropped = f" (on the {n_valid} of {premises[0]['n_seeds']} seeds that met every premise)"
    if n_pass == len(checks):
        return "reproduced", f"all {len(checks)} checks hold{dropped}"
    if n_pass == 0:
        return "not reproduced", f"none of the {len(checks)} checks hold{dropped}"
    return "partial", f"{n_pass} of {len(checks)} checks hold{dropped}"
