"""Claim specs: load, validate, and turn per-seed results into a verdict.

A spec (``claims/<id>.yaml``) is checked in two passes before anything trains:

1. structure, against ``claims/schema/claim.schema.yaml`` (JSON Schema);
2. meaning: the experiment exists, every check names a metric the experiment reports, every
   scale gives exactly the experiment's parameters, figures exist, the paper is in refs.bib.

Any failure raises :class:`SpecError`, whose message names the file and the field.

The verdict is computed from the spec's pre-registered checks alone:

- ``reproduced``: every check holds;
- ``partial``: some hold;
- ``not reproduced``: none hold;
- ``inconclusive``: smoke scale, fewer valid seeds than ``min_seeds``, or a NaN measurement;
- ``error``: the experiment raised (the traceback is in the run record and the log).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import yaml

from repro import experiments
from repro.stats import t_interval

ROOT = Path(__file__).resolve().parent.parent
CLAIMS_DIR = ROOT / "claims"
SCHEMA_PATH = CLAIMS_DIR / "schema" / "claim.schema.yaml"
REFS_PATH = ROOT / "report" / "refs.bib"

SCALES = ("smoke", "quick", "full")
VERDICTS = ("reproduced", "partial", "not reproduced", "inconclusive", "error")
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class SpecError(ValueError):
    """A claim spec is malformed; the message names the file and the field."""

    def __init__(self, path: str | Path, field: str, message: str):
        self.path, self.field = str(path), field
        super().__init__(f"{path}: field '{field}': {message}")


class UnknownClaimError(KeyError):
    """A claim id that has no spec; the message lists the valid ids."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


@dataclass(frozen=True)
class Spec:
    """A validated claim spec."""

    path: Path
    data: Mapping[str, Any]

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def checks(self) -> list[dict[str, Any]]:
        return list(self.data["checks"])

    @property
    def figures(self) -> list[dict[str, str]]:
        return list(self.data["figures"])

    @property
    def min_seeds(self) -> int:
        return int(self.data.get("min_seeds", 3))

    def params(self, scale: str) -> dict[str, Any]:
        return dict(self.data["scales"][scale]["params"])

    def seeds(self, scale: str, n_override: int | None = None) -> list[int]:
        """Seeds 0..n-1, n from the spec's scale unless the config overrides it."""
        n = n_override if n_override is not None else self.data["scales"][scale]["seeds"]
        return list(range(int(n)))

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


# ---------------------------------------------------------------- loading and validation


@cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


@cache
def bib_keys(path: Path = REFS_PATH) -> frozenset[str]:
    """The entry keys of a BibTeX file."""
    if not path.exists():
        return frozenset()
    return frozenset(re.findall(r"@\w+\s*\{\s*([^,\s]+)\s*,", path.read_text()))


def _field_name(error: jsonschema.ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    name = "".join(parts).lstrip(".")
    if error.validator == "required":  # point at the missing field itself
        missing = re.match(r"'([^']+)'", error.message)
        name = f"{name}.{missing.group(1)}" if name else missing.group(1)
    elif error.validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message)
        name = f"{name}.{extra[0]}" if name else extra[0]
    return name or "<top>"


def _error_text(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value)
        return f"{error.instance!r} is not allowed; allowed: {allowed}"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"{error.message}; allowed fields: {allowed}"
    return error.message


def validate_structure(data: Any, path: str | Path) -> None:
    """Check ``data`` against the claim schema; raise SpecError on the first problem."""
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise SpecError(path, _field_name(errors[0]), _error_text(errors[0]))


def validate_meaning(data: Mapping[str, Any], path: Path) -> None:
    """Check what a schema cannot: names that must exist elsewhere in the project."""
    if data["id"] != path.stem:
        raise SpecError(path, "id", f"{data['id']!r} must equal the file name {path.stem!r}")
    keys = bib_keys()
    if keys and data["paper"] not in keys:
        raise SpecError(
            path, "paper", f"{data['paper']!r} is not in {REFS_PATH.name}; known: {sorted(keys)}"
        )
    try:
        exp = experiments.get(data["experiment"])
    except KeyError as e:
        raise SpecError(path, "experiment", str(e.args[0])) from None
    for scale in SCALES:
        given, wanted = set(data["scales"][scale]["params"]), set(exp.params)
        if given != wanted:
            problems = []
            if wanted - given:
                problems.append(f"missing {sorted(wanted - given)}")
            if given - wanted:
                problems.append(f"unknown {sorted(given - wanted)}")
            raise SpecError(
                path,
                f"scales.{scale}.params",
                f"{'; '.join(problems)}; the experiment takes {sorted(wanted)}",
            )
    seen: set[str] = set()
    for i, check in enumerate(data["checks"]):
        if check["id"] in seen:
            raise SpecError(path, f"checks[{i}].id", f"duplicate check id {check['id']!r}")
        seen.add(check["id"])
        if check["metric"] not in exp.metrics:
            raise SpecError(
                path,
                f"checks[{i}].metric",
                f"unknown metric {check['metric']!r}; the experiment reports {sorted(exp.metrics)}",
            )
    for i, fig in enumerate(data["figures"]):
        if fig["name"] not in exp.figures:
            raise SpecError(
                path,
                f"figures[{i}].name",
                f"unknown figure {fig['name']!r}; the experiment draws {sorted(exp.figures)}",
            )


def load_spec(path: str | Path) -> Spec:
    """Read and fully validate one spec file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpecError(path, "<yaml>", f"not valid YAML: {e}") from None
    except OSError as e:
        raise SpecError(path, "<file>", f"cannot read: {e.strerror}") from None
    validate_structure(data, path)
    validate_meaning(data, path)
    return Spec(path=path, data=data)


def spec_paths(claims_dir: str | Path = CLAIMS_DIR) -> list[Path]:
    return sorted(Path(claims_dir).glob("*.yaml"))


def load_all(claims_dir: str | Path = CLAIMS_DIR) -> dict[str, Spec]:
    """Every spec in ``claims_dir`` by id, validated; the first bad one raises SpecError."""
    specs = [load_spec(p) for p in spec_paths(claims_dir)]
    return {s.id: s for s in specs}


def resolve_ids(ids: list[str], specs: Mapping[str, Spec]) -> list[str]:
    """``ids`` unchanged if all are known; otherwise an error listing the valid ids."""
    unknown = [i for i in ids if i not in specs]
    if unknown:
        raise UnknownClaimError(
            f"unknown claim id(s): {', '.join(unknown)}; valid ids: {', '.join(sorted(specs))}"
        )
    return ids


# ---------------------------------------------------------------- verdicts


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


def evaluate_checks(spec: Spec, seeds_table: pd.DataFrame) -> list[dict[str, Any]]:
    """Each check with its measured value and whether it holds (None when unmeasurable)."""
    results = []
    for check in spec.checks:
        values = seeds_table[check["metric"]].to_numpy(dtype=float)
        measured = aggregate(values, check["aggregate"])
        holds = None if math.isnan(measured) else bool(OPS[check["op"]](measured, check["value"]))
        mean, low, high = t_interval(values)
        results.append(
            {
                **check,
                "measured": measured,
                "passed": holds,
                "n_seeds": int(np.isfinite(values).sum()),
                "mean": mean,
                "ci95": [low, high],
                "per_seed": values.tolist(),
            }
        )
    return results


def verdict(spec: Spec, scale: str, checks: list[dict[str, Any]]) -> tuple[str, str]:
    """(verdict, reason) from evaluated checks alone."""
    if scale == "smoke":
        return "inconclusive", "smoke scale: a pipeline test, too small to support a verdict"
    n_valid = min((c["n_seeds"] for c in checks), default=0)
    if n_valid < spec.min_seeds:
        return "inconclusive", f"{n_valid} valid seed(s), fewer than min_seeds={spec.min_seeds}"
    if any(c["passed"] is None for c in checks):
        return "inconclusive", "a checked metric is NaN or infinite"
    n_pass = sum(c["passed"] for c in checks)
    if n_pass == len(checks):
        return "reproduced", f"all {len(checks)} checks hold"
    if n_pass == 0:
        return "not reproduced", f"none of the {len(checks)} checks hold"
    return "partial", f"{n_pass} of {len(checks)} checks hold"
