"""Claim specs: the :class:`Spec`, and loading and validating ``claims/<id>.yaml``.

A spec is checked in two passes before anything trains:

1. structure, against ``claims/schema/claim.schema.yaml`` (JSON Schema);
2. meaning: the experiment exists, every check names a metric the experiment reports, every
   scale gives exactly the experiment's parameters, figures exist, the paper is in refs.bib,
   every check and premise has a ``basis:``, one check per metric.

Any failure raises :class:`SpecError`, whose message names the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from repro import experiments

ROOT = Path(__file__).resolve().parent.parent.parent
CLAIMS_DIR = ROOT / "claims"
SCHEMA_PATH = CLAIMS_DIR / "schema" / "claim.schema.yaml"
REFS_PATH = ROOT / "report" / "refs.bib"
LOCK_PATH = CLAIMS_DIR / "checks.lock"

SCALES = ("smoke", "quick", "full")
VERDICTS = ("reproduced", "partial", "not reproduced", "inconclusive", "error")
KINDS = ("identity", "empirical")
VARIANT_SEP = "@"  # a variant's run id: <claim>@<variant>
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
        """Seeds first..first+n-1: n from the spec's scale unless the config overrides it, first
        from the scale's ``first_seed`` (default 0; fresh seeds for a re-registration)."""
        n = n_override if n_override is not None else self.data["scales"][scale]["seeds"]
        first = int(self.data["scales"][scale].get("first_seed", 0))
        return list(range(first, first + int(n)))

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
