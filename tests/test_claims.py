"""Claim specs: errors name the file and the field; verdicts follow the checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from repro import claims
from repro.claims import SpecError, aggregate, evaluate_checks, load_spec, verdict

from .conftest import FIXTURES


def toy_spec() -> dict:
    return yaml.safe_load((FIXTURES / "toy-mean.yaml").read_text())


def write(tmp_path, data: dict, name: str = "toy-mean.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_fixture_spec_is_valid(toy_env):
    spec = load_spec(FIXTURES / "toy-mean.yaml")
    assert spec.id == "toy-mean"
    assert spec.seeds("quick") == [0, 1, 2]
    assert spec.seeds("quick", n_override=5) == [0, 1, 2, 3, 4]
    assert spec.params("smoke") == {"mu": 1.0, "n": 100}


@pytest.mark.parametrize("path", claims.spec_paths(), ids=lambda p: p.stem)
def test_every_claim_in_the_repo_validates(path):
    spec = load_spec(path)
    assert spec.id == path.stem


def mutate(data: dict, dotted: str, value) -> dict:
    """Set (or, with value=DELETE, remove) a nested field given as 'a.b.0.c'."""
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is DELETE:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return data


DELETE = object()
BAD_SPECS = [
    # (field to change, new value, field named in the error, words the message must contain)
    ("statement", DELETE, "statement", ["required"]),
    ("scales.quick.seeds", "three", "scales.quick.seeds", ["not of type 'integer'"]),
    ("scales.full", DELETE, "scales.full", ["required"]),
    ("experiment", "no_such_experiment", "experiment", ["unknown experiment", "toy"]),
    ("checks.0.metric", "accuracy", "checks[0].metric", ["unknown metric", "abs_error"]),
    ("checks.0.op", "=>", "checks[0].op", ["not allowed", "'<='"]),
    ("checks.0.aggregate", "average", "checks[0].aggregate", ["not allowed", "'median'"]),
    ("checks.0.value", "small", "checks[0].value", ["not of type 'number'"]),
    ("scales.quick.params.n", DELETE, "scales.quick.params", ["missing ['n']"]),
    ("scales.smoke.params.lr", 0.1, "scales.smoke.params", ["unknown ['lr']"]),
    ("id", "other-id", "id", ["must equal the file name"]),
    ("paper", "nobody2099", "paper", ["not in refs.bib"]),
    ("figures.0.name", "nope", "figures[0].name", ["unknown figure", "curve"]),
    ("colour", "blue", "colour", ["Additional properties", "allowed fields"]),
    ("checks.1.id", "close", "checks[1].id", ["duplicate check id"]),
]


@pytest.mark.parametrize("dotted,value,field,words", BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_malformed_spec_names_file_and_field(tmp_path, toy_env, dotted, value, field, words):
    path = write(tmp_path, mutate(toy_spec(), dotted, value))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert err.value.field == field
    message = str(err.value)
    assert message.startswith(f"{path}: field '{field}'")
    for word in words:
        assert word in message


def test_yaml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("id: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken.yaml: field '<yaml>': not valid YAML"):
        load_spec(path)


def test_unknown_claim_id_lists_valid_ids():
    specs = {"a-claim": None, "b-claim": None}
    with pytest.raises(claims.UnknownClaimError) as err:
        claims.resolve_ids(["a-claim", "zzz"], specs)
    assert str(err.value) == "unknown claim id(s): zzz; valid ids: a-claim, b-claim"


# ---------------------------------------------------------------- aggregation and verdicts


def test_aggregates_match_numpy_and_scipy():
    v = np.array([0.3, 0.1, 0.7, 0.4])
    assert aggregate(v, "mean") == pytest.approx(0.375)
    assert aggregate(v, "median") == pytest.approx(0.35)
    assert aggregate(v, "min") == pytest.approx(0.1)
    assert aggregate(v, "max") == pytest.approx(0.7)
    half = stats.t.ppf(0.975, 3) * v.std(ddof=1) / 2.0
    assert aggregate(v, "ci_low") == pytest.approx(0.375 - half)
    assert aggregate(v, "ci_high") == pytest.approx(0.375 + half)


def test_aggregate_of_nan_is_nan_and_unknown_aggregate_raises():
    assert math.isnan(aggregate(np.array([0.1, np.nan]), "mean"))
    assert math.isnan(aggregate(np.array([0.1]), "ci_low"))  # one seed has no interval
    with pytest.raises(ValueError, match="valid: mean, median, min, max, ci_low, ci_high"):
        aggregate(np.array([1.0]), "average")


@pytest.fixture
def spec(toy_env):
    return load_spec(FIXTURES / "toy-mean.yaml")  # checks: max abs_error < 0.04, < 0.0


def seeds_table(errors):
    return pd.DataFrame({"seed": range(len(errors)), "mean": 1.0, "abs_error": errors})


def test_some_checks_hold_is_partial(spec):
    checks = evaluate_checks(spec, seeds_table([0.01, 0.02, 0.03]))
    assert [c["passed"] for c in checks] == [True, False]
    assert checks[0]["measured"] == pytest.approx(0.03)
    assert verdict(spec, "quick", checks) == ("partial", "1 of 2 checks hold")


def test_no_check_holds_is_not_reproduced(spec):
    checks = evaluate_checks(spec, seeds_table([0.01, 0.02, 0.05]))
    assert verdict(spec, "full", checks)[0] == "not reproduced"


def test_every_check_holds_is_reproduced(spec):
    data = dict(spec.data, checks=spec.checks[:1])
    one_check = claims.Spec(path=spec.path, data=data)
    checks = evaluate_checks(one_check, seeds_table([0.01, 0.02, 0.03]))
    assert verdict(one_check, "quick", checks) == ("reproduced", "all 1 checks hold")


def test_smoke_scale_is_always_inconclusive(spec):
    data = dict(spec.data, checks=spec.checks[:1])
    one_check = claims.Spec(path=spec.path, data=data)
    checks = evaluate_checks(one_check, seeds_table([0.01, 0.02, 0.03]))
    assert checks[0]["passed"] is True
    assert verdict(one_check, "smoke", checks)[0] == "inconclusive"


def test_too_few_valid_seeds_or_nan_is_inconclusive(spec):
    checks = evaluate_checks(spec, seeds_table([0.01, 0.02]))
    assert verdict(spec, "quick", checks) == (
        "inconclusive",
        "2 valid seed(s), fewer than min_seeds=3",
    )
    checks = evaluate_checks(spec, seeds_table([0.01, 0.02, 0.03, np.nan]))
    assert checks[0]["passed"] is None
    assert verdict(spec, "quick", checks)[0] == "inconclusive"
