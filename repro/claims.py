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
- ``inconclusive``: smoke scale, a NaN measurement, or fewer valid seeds than ``min_seeds``.
  A seed is valid when it meets every premise (``premises:``, e.g. "D became near-optimal":
  without it the checks say nothing about the theory). Premises are judged **per seed**
  (``op value`` on that seed's value); a seed that misses any premise votes in no check, and
  with fewer than ``min_seeds`` valid seeds the verdict is ``inconclusive (premise not met:
  <premise id>: k of n seeds met it; per-seed values ...)``;
- ``error``: the experiment raised (the traceback is in the run record and the log), an
  invariant included (:mod:`repro.invariants`).

A check is either ``aggregate op value`` (e.g. the median over the valid seeds is >= 3;
``op: within`` with ``tolerance``: |aggregate - value| <= tolerance) or a one-sided test across
the valid seeds (``test: {name: t|wilcoxon|sign, alternative, alpha}``, H0: the metric's
location equals ``value``; it holds when H0 is rejected at ``alpha``). A spec has at most one
check per metric (two checks on one metric vote twice on one measurement). Every check and
premise has a ``basis:`` (the paper's words it tests, quoted, or the derivation of its
threshold); every empirical spec lists its ``departures:`` from the paper's setup.

Pre-registration: ``claims/checks.lock`` holds a hash of every claim's checks and premises
(:func:`checks_hash`; ``basis`` is documentation and is left out of the hash, so writing or
improving one is not a re-registration); a spec whose checks differ from the lock needs a
``revisions:`` entry naming the new hash (tests/test_claims.py enforces it; ``repro lock``
records it).
"""

from __future__ import annotations

import hashlib
import json
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
from repro.stats import one_sided_test, t_interval

ROOT = Path(__file__).resolve().parent.parent
CLAIMS_DIR = ROOT / "claims"
SCHEMA_PATH = CLAIMS_DIR / "schema" / "claim.schema.yaml"
REFS_PATH = ROOT / "report" / "refs.bib"
LOCK_PATH = CLAIMS_DIR / "checks.lock"

SCALES = ("smoke", "quick", "full")
VERDICTS = ("reproduced", "partial", "not reproduced", "inconclusive", "error")
KINDS = ("identity", "empirical")
VARIANT_SEP = "@"  # a variant's run id: <claim>@<variant>
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
# fields of a check or premise that document it and do not enter its checks hash
UNHASHED_FIELDS = ("basis",)


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
    def premises(self) -> list[dict[str, Any]]:
        return list(self.data.get("premises", []))

    @property
    def kind(self) -> str:
        return self.data["kind"]

    @property
    def variants(self) -> dict[str, dict[str, Any]]:
        return dict(self.data.get("variants", {}))

    def variants_at(self, scale: str) -> list[str]:
        """The variants that run at ``scale``."""
        return [name for name, v in self.variants.items() if scale in v["scales"]]

    @property
    def checks_hash(self) -> str:
        return checks_hash(self.data)

    @property
    def figures(self) -> list[dict[str, str]]:
        return list(self.data["figures"])

    @property
    def min_seeds(self) -> int:
        return int(self.data.get("min_seeds", 3))

    def params(self, scale: str, variant: str | None = None) -> dict[str, Any]:
        """The scale's params, with a variant's overrides on top."""
        params = dict(self.data["scales"][scale]["params"])
        if variant is not None:
            if variant not in self.variants:
                known = ", ".join(sorted(self.variants)) or "none"
                raise KeyError(f"{self.id}: unknown variant {variant!r}; known: {known}")
            params.update(self.variants[variant]["params"])
        return params

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


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice is an error (YAML keeps the last one
    silently, which would let a second ``checks:`` hide the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _hashed(check: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in check.items() if k not in UNHASHED_FIELDS}


# YAML 1.1 (PyYAML) reads 5e-2 or 1e3 as strings (it wants a dot: 5.0e-2); a threshold written
# so is meant as a number (YAML 1.2 reads it so). Only these fields are converted: an unquoted hash
# such as 0935e5177270 elsewhere stays a string.
_EXPONENT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")


def _numbers_in_exponent_form(data: Any) -> Any:
    """Checks' and premises' ``value`` and ``test.alpha`` written as 5e-2: read as floats."""
    if not isinstance(data, dict):
        return data
    for group in ("checks", "premises"):
        for check in data.get(group) or []:
            if not isinstance(check, dict):
                continue
            for holder, key in ((check, "value"), (check.get("test"), "alpha")):
                if isinstance(holder, dict) and isinstance(holder.get(key), str):
                    if _EXPONENT.match(holder[key].strip()):
                        holder[key] = float(holder[key])
    return data


def checks_hash(data: Mapping[str, Any]) -> str:
    """12 hex digits of SHA-256 over the checks and premises (canonical JSON).

    ``basis`` (documentation: the paper's words or the threshold's derivation) is left out, so
    adding or rewording one is not a re-registration; everything else of a check is hashed.
    """
    payload = {
        "checks": [_hashed(c) for c in data.get("checks", [])],
        "premises": [_hashed(p) for p in data.get("premises", [])],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


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
    path = [p for p in error.absolute_path if isinstance(p, str)]
    if error.validator == "required" and "'basis'" in error.message:
        return (
            f"{error.message}: every check and premise needs the paper's words it tests, "
            "quoted ('paraphrase:' if not verbatim), or the derivation of its threshold"
        )
    if error.validator == "required" and "'departures'" in error.message:
        return (
            f"{error.message} for kind: empirical: list every difference from the paper's "
            "setup (what, paper, here, why), or [] if there is none"
        )
    if error.validator == "additionalProperties" and path[:1] == ["premises"]:
        return (
            f"{error.message}; a premise is judged per seed ('op' and 'value' on each seed's "
            f"value, no 'aggregate' or 'test'); allowed fields: "
            + ", ".join(sorted(error.schema.get("properties", {})))
        )
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
    _validate_min_seeds(data, path)
    seen: set[str] = set()
    for group in ("checks", "premises"):
        for i, check in enumerate(data.get(group, [])):
            _validate_check(check, f"{group}[{i}]", seen, exp, path, premise=group == "premises")
    by_metric: dict[str, str] = {}
    for i, check in enumerate(data["checks"]):
        other = by_metric.setdefault(check["metric"], check["id"])
        if other != check["id"]:
            raise SpecError(
                path,
                f"checks[{i}].metric",
                f"{check['metric']!r} is already checked by {other!r}: one check per metric "
                "(two checks on one measurement vote twice); keep one and record the choice in "
                "'revisions:'",
            )
    for name, variant in data.get("variants", {}).items():
        unknown = sorted(set(variant["params"]) - set(exp.params))
        if unknown:
            raise SpecError(
                path,
                f"variants.{name}.params",
                f"unknown {unknown}; the experiment takes {sorted(exp.params)}",
            )
    for i, fig in enumerate(data["figures"]):
        if fig["name"] not in exp.figures:
            raise SpecError(
                path,
                f"figures[{i}].name",
                f"unknown figure {fig['name']!r}; the experiment draws {sorted(exp.figures)}",
            )


def _validate_min_seeds(data: Mapping[str, Any], path: Path) -> None:
    """The scales that compute a verdict (quick, full) run at least ``min_seeds`` seeds: with
    fewer, every verdict would be inconclusive by construction."""
    need = int(data.get("min_seeds", 3))
    for scale in ("quick", "full"):
        n = data["scales"][scale]["seeds"]
        if n < need:
            raise SpecError(
                path, f"scales.{scale}.seeds", f"{n} is below the spec's min_seeds={need}"
            )


def _validate_check(
    check: Mapping[str, Any], field: str, seen: set[str], exp, path: Path, premise: bool = False
) -> None:
    """One check or premise: a unique id, a known metric, one form, a finite threshold, a basis.

    A premise is judged per seed (``op value``), so it has neither ``aggregate`` nor ``test``.
    """
    if not str(check.get("basis", "")).strip():
        raise SpecError(
            path,
            f"{field}.basis",
            "required: the paper's words this tests (quoted; 'paraphrase:' if not verbatim) "
            "or the derivation of its threshold",
        )
    if check["id"] in seen:
        raise SpecError(path, f"{field}.id", f"duplicate check id {check['id']!r}")
    seen.add(check["id"])
    if check["metric"] not in exp.metrics:
        raise SpecError(
            path,
            f"{field}.metric",
            f"unknown metric {check['metric']!r}; the experiment reports {sorted(exp.metrics)}",
        )
    if premise:
        if "aggregate" in check or "test" in check or "op" not in check:
            raise SpecError(
                path,
                field,
                "a premise is judged per seed: give 'op' and 'value' only (no 'aggregate', "
                "no 'test'); a seed that misses it does not vote",
            )
        if check["op"] == "within":
            raise SpecError(
                path, f"{field}.op", "'within' is for checks; a premise takes <, <=, >, >="
            )
    has_rule = "aggregate" in check or "op" in check
    if not premise and (
        has_rule == ("test" in check) or (has_rule and not {"aggregate", "op"} <= set(check))
    ):
        raise SpecError(
            path,
            field,
            "give either 'aggregate' and 'op' (compare an aggregate over seeds with value) "
            "or 'test' (a one-sided test across seeds), not both and not neither",
        )
    if isinstance(check["value"], bool) or not math.isfinite(check["value"]):
        raise SpecError(path, f"{field}.value", f"{check['value']!r}: must be a finite number")
    if (check.get("op") == "within") != ("tolerance" in check):
        raise SpecError(
            path,
            f"{field}.tolerance",
            "'op: within' needs 'tolerance' (|aggregate - value| <= tolerance), and only it",
        )


def load_spec(path: str | Path) -> Spec:
    """Read and fully validate one spec file."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        raise SpecError(path, "<yaml>", f"not valid YAML: {e}") from None
    except OSError as e:
        raise SpecError(path, "<file>", f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise SpecError(
            path, "<file>", f"not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})"
        ) from None
    data = _numbers_in_exponent_form(data)
    validate_structure(data, path)
    validate_meaning(data, path)
    return Spec(path=path, data=data)


def spec_paths(claims_dir: str | Path = CLAIMS_DIR) -> list[Path]:
    """The spec files in ``claims_dir``; a missing folder or a ``.yml`` spec is an error."""
    claims_dir = Path(claims_dir)
    if not claims_dir.is_dir():
        raise SpecError(claims_dir, "claims_dir", "no such folder (set claims_dir in the config)")
    misnamed = sorted(claims_dir.glob("*.yml"))
    if misnamed:
        raise SpecError(misnamed[0], "<file>", "specs end in .yaml; rename it to end in .yaml")
    return sorted(claims_dir.glob("*.yaml"))


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


# ---------------------------------------------------------------- pre-registration lock


def read_lock(path: Path = LOCK_PATH) -> dict[str, str]:
    """claim id -> registered checks hash (empty when there is no lock file)."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SpecError(path, "<yaml>", f"not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict) or not isinstance(data.get("claims", {}), dict):
        raise SpecError(path, "claims", "must map claim ids to checks hashes; see `repro lock`")
    return {str(k): str(v) for k, v in data.get("claims", {}).items()}


def lock_problems(specs: Mapping[str, Spec], lock: Mapping[str, str]) -> list[str]:
    """What disagrees with the lock: unregistered claims, checks changed with no revision."""
    problems = []
    for cid, spec in sorted(specs.items()):
        current = spec.checks_hash
        revised = {r["checks_hash"] for r in spec.data.get("revisions", [])}
        if cid not in lock:
            problems.append(f"{spec.path}: not registered in {LOCK_PATH.name} (run `repro lock`)")
        elif current != lock[cid] and current not in revised:
            problems.append(
                f"{spec.path}: field 'checks': checks/premises hash {current} differs from the "
                f"registered {lock[cid]}; add a 'revisions:' entry with checks_hash: {current} "
                "(date, what changed, why, citing the paper), then `repro lock`"
            )
    return problems


def write_lock(specs: Mapping[str, Spec], path: Path = LOCK_PATH) -> dict[str, str]:
    """Record every claim's current checks hash, refusing a change that has no revision entry."""
    from repro import io

    lock = {**committed_lock(path), **read_lock(path)}
    problems = [p for p in lock_problems(specs, lock) if "not registered" not in p]
    if problems:
        raise SpecError(path, "claims", "; ".join(problems))
    new = {cid: spec.checks_hash for cid, spec in sorted(specs.items())}
    header = (
        "# Registered checks: claim id -> 12 hex digits of SHA-256 over its checks and premises.\n"
        "# Written by `repro lock`; a change needs a `revisions:` entry in the spec (see README).\n"
    )
    io.write_text(path, header + yaml.safe_dump({"claims": new}, sort_keys=True))
    return new


def committed_lock(path: Path = LOCK_PATH, max_commits: int = 200) -> dict[str, str]:
    """claim id -> the hash that the lock file last registered for it in git history (the
    newest commit holding the claim), so a deleted or truncated lock cannot register a changed
    hash without a revision entry. Empty outside git."""
    import subprocess

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", "-C", str(Path(path).resolve().parent), *args],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode:
            return {}
        rel = Path(path).resolve().relative_to(Path(top.stdout.strip()).resolve()).as_posix()
        commits = git("log", f"-{max_commits}", "--format=%H", "--", f":(top){rel}").stdout.split()
        found: dict[str, str] = {}
        for commit in commits:  # newest first
            shown = git("show", f"{commit}:{rel}")
            if shown.returncode:
                continue  # the commit deleted it
            try:
                data = yaml.safe_load(shown.stdout) or {}
            except yaml.YAMLError:
                continue
            for cid, h in (data.get("claims") or {}).items():
                found.setdefault(str(cid), str(h))
        return found
    except (OSError, ValueError, subprocess.SubprocessError):
        return {}


def registration_problems(specs: Mapping[str, Spec], path: Path = LOCK_PATH) -> list[str]:
    """:func:`lock_problems` against the lock file and against the lock as last committed, so a
    hand-edited or deleted lock cannot pre-register a change that has no revision entry."""
    problems = lock_problems(specs, read_lock(path))
    committed = committed_lock(path)
    known = {cid: spec for cid, spec in specs.items() if cid in committed}
    for problem in lock_problems(known, committed):
        problem = problem.replace("the registered", "the committed")
        if problem not in problems and not any(p.split(":")[0] == problem.split(":")[0]
                                               for p in problems):  # fmt: skip
            problems.append(f"{problem} (in git history of {path.name})")
    return problems
