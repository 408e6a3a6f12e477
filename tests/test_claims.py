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
    ("scales.quick.first_seed", -1, "scales.quick.first_seed", ["less than the minimum of 0"]),
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
    ("kind", "theorem", "kind", ["not allowed", "'identity'", "'empirical'"]),
    ("quote", DELETE, "quote", ["required"]),
    ("quote.verbatim", DELETE, "quote.verbatim", ["required"]),
    ("checks.0.value", float("nan"), "checks[0].value", ["must be a finite number"]),
    ("checks.0.value", float("inf"), "checks[0].value", ["must be a finite number"]),
    ("checks.0.op", DELETE, "checks[0]", ["either 'aggregate' and 'op'", "or 'test'"]),
    (
        "checks.0.test",
        {"name": "t", "alternative": "greater", "alpha": 0.05},
        "checks[0]",
        ["not both"],
    ),  # fmt: skip
    (
        "checks.0.test",
        {"name": "z", "alternative": "greater", "alpha": 0.05},
        "checks[0].test.name",
        ["not allowed", "'wilcoxon'"],
    ),  # fmt: skip
    (
        "premises",
        [
            {
                "id": "p",
                "metric": "nope",
                "op": "<",
                "value": 1,
                "description": "d",
                "basis": "b",
            }
        ],
        "premises[0].metric",
        ["unknown metric"],
    ),  # fmt: skip
    (
        "variants",
        {"big": {"description": "d", "scales": ["full"], "params": {"lr": 1}}},
        "variants.big.params",
        ["unknown ['lr']", "the experiment takes"],
    ),  # fmt: skip
    (
        "variants",
        {"big": {"description": "d", "scales": ["huge"], "params": {"n": 1}}},
        "variants.big.scales[0]",
        ["not allowed", "'full'"],
    ),  # fmt: skip
    (
        "revisions",
        [{"date": "yesterday", "checks_hash": "0" * 12, "change": "c", "reason": "r"}],
        "revisions[0].date",
        ["does not match"],
    ),  # fmt: skip
    # issue 14: every check and premise has a basis; one check per metric; premises per seed;
    # departures in every empirical spec
    ("checks.0.basis", DELETE, "checks[0].basis", ["required", "the paper's words it tests"]),
    ("checks.1.basis", "", "checks[1].basis", ["should be non-empty"]),
    (
        "premises",
        [{"id": "p", "metric": "mean", "op": "<", "value": 2, "description": "d"}],
        "premises[0].basis",
        ["required"],
    ),  # fmt: skip
    (
        "checks.1.metric",
        "abs_error",
        "checks[1].metric",
        ["'abs_error' is already checked by 'close'", "one check per metric"],
    ),  # fmt: skip
    (
        "premises",
        [
            {
                "id": "p",
                "metric": "mean",
                "aggregate": "median",
                "op": "<",
                "value": 2,
                "description": "d",
                "basis": "b",
            }
        ],
        "premises[0].aggregate",
        ["Additional properties", "judged per seed", "allowed fields"],
    ),  # fmt: skip
    ("checks.0.op", "within", "checks[0].tolerance", ["'op: within' needs 'tolerance'"]),
    ("checks.0.tolerance", 0.1, "checks[0].tolerance", ["'op: within' needs 'tolerance'"]),
    (
        "departures",
        DELETE,
        "departures",
        ["required", "kind: empirical", "(what, paper, here, why)"],
    ),
    (
        "departures",
        [{"what": "colour", "paper": "p", "here": "h", "why": "w"}],
        "departures[0].what",
        ["not allowed", "'optimiser'"],
    ),  # fmt: skip
    (
        "departures",
        [{"what": "lr", "paper": "1e-4", "here": "1e-3"}],
        "departures[0].why",
        ["required"],
    ),  # fmt: skip
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


def test_yaml_key_given_twice_is_an_error(tmp_path, toy_env):
    text = (FIXTURES / "toy-mean.yaml").read_text()
    path = tmp_path / "toy-mean.yaml"
    path.write_text(text + "checks: []\n")  # a second `checks:` would silently replace the first
    with pytest.raises(SpecError, match=r"toy-mean.yaml: field '<yaml>'.*duplicate key 'checks'"):
        load_spec(path)


def test_claims_dir_missing_or_a_yml_spec_is_an_error(tmp_path):
    with pytest.raises(SpecError, match=r"no-such-dir: field 'claims_dir': no such folder"):
        claims.spec_paths(tmp_path / "no-such-dir")
    (tmp_path / "x.yml").write_text("id: x\n")
    with pytest.raises(SpecError, match=r"x.yml: field '<file>': specs end in .yaml"):
        claims.spec_paths(tmp_path)


# ---------------------------------------------------------------- premises, tests, variants


def premise_spec(spec, op, value, min_seeds=3):
    premise = {"id": "small_mean", "metric": "mean", "op": op, "value": value,
               "description": "the setting the claim speaks about", "basis": "b"}  # fmt: skip
    data = dict(spec.data, premises=[premise], min_seeds=min_seeds)
    return claims.Spec(path=spec.path, data=data)


def test_unmet_premise_makes_the_verdict_inconclusive_not_a_failure(spec):
    table = seeds_table([0.01, 0.02, 0.05])  # both checks fail: 'not reproduced' without premises
    unmet = premise_spec(spec, "<", 0.5)  # the mean is 1.0: premise not met
    label, reason = verdict(unmet, "quick", evaluate_checks(unmet, table),
                            claims.evaluate_premises(unmet, table))  # fmt: skip
    assert label == "inconclusive"
    assert reason == (
        "premise not met: small_mean (per seed: < 0.5): 0 of 3 seeds met it; per-seed values "
        "1, 1, 1 (0 valid seed(s), fewer than min_seeds=3)"
    )
    met = premise_spec(spec, "<", 2.0)
    label, _ = verdict(met, "quick", evaluate_checks(met, table),
                       claims.evaluate_premises(met, table))  # fmt: skip
    assert label == "not reproduced"


def test_test_check_holds_when_the_one_sided_test_rejects(spec):
    check = {"id": "gain", "metric": "abs_error", "value": 0.0, "description": "d",
             "test": {"name": "t", "alternative": "greater", "alpha": 0.05}}  # fmt: skip
    values = [0.5, 0.7, 0.6, 0.8, 0.4]
    done = claims.evaluate_check(check, seeds_table(values))
    p = stats.ttest_1samp(values, 0.0, alternative="greater").pvalue
    assert done["measured"] == pytest.approx(p) and done["passed"] is True
    assert done["rule"] == "t-test (greater) vs 0: p < 0.05"
    mixed = claims.evaluate_check(check, seeds_table([0.5, -0.7, 0.1, -0.3]))
    assert mixed["passed"] is False


def test_one_sided_tests_against_scipy_and_exact_binomial():
    from repro.stats import one_sided_test

    x = [1.2, 0.4, 2.2, 0.9, 1.7, -0.1]
    ref = stats.wilcoxon(x, alternative="greater").pvalue
    assert one_sided_test(x, 0.0, "wilcoxon", "greater") == pytest.approx(ref)
    # sign test: 5 of 6 positive -> P(K >= 5 | n=6, 1/2) = 7/64
    assert one_sided_test(x, 0.0, "sign", "greater") == pytest.approx(7 / 64)
    assert one_sided_test(x, 0.0, "sign", "less") == pytest.approx(63 / 64)
    # H0's location shifts the data: the same test of x - 3 against 0
    ref = stats.ttest_1samp(np.array(x) - 3.0, 0.0, alternative="less").pvalue
    assert one_sided_test(x, 3.0, "t", "less") == pytest.approx(ref)
    assert math.isnan(one_sided_test([2.0, 2.0], 2.0, "t", "greater"))  # all differences 0
    with pytest.raises(ValueError, match="valid: t, wilcoxon, sign"):
        one_sided_test(x, 0.0, "z", "greater")


def test_variant_params_override_the_scale(spec):
    big = {"description": "more draws", "scales": ["quick", "full"], "params": {"n": 7}}
    data = dict(spec.data, variants={"big-n": big})
    v = claims.Spec(path=spec.path, data=data)
    assert v.params("quick", "big-n") == {"mu": 1.0, "n": 7}
    assert v.params("quick") == {"mu": 1.0, "n": 10000}
    assert v.variants_at("smoke") == [] and v.variants_at("full") == ["big-n"]
    with pytest.raises(KeyError, match="unknown variant 'nope'; known: big-n"):
        v.params("quick", "nope")


# ---------------------------------------------------------------- the pre-registration lock


def test_every_claims_checks_match_the_lock_or_a_recorded_revision():
    """claims/checks.lock registers each claim's checks; a change needs a `revisions:` entry."""
    problems = claims.lock_problems(claims.load_all(), claims.read_lock())
    assert problems == [], "\n".join(problems)


def test_changed_checks_without_a_revision_are_refused(spec, tmp_path):
    lock = claims.write_lock({spec.id: spec}, tmp_path / "checks.lock")  # registers a new claim
    assert lock == {spec.id: spec.checks_hash} == claims.read_lock(tmp_path / "checks.lock")
    assert claims.lock_problems({spec.id: spec}, lock) == []
    changed = dict(spec.data, checks=[dict(spec.checks[0], value=0.08)])  # loosened
    changed_spec = claims.Spec(path=spec.path, data=changed)
    (problem,) = claims.lock_problems({spec.id: changed_spec}, lock)
    assert f"field 'checks': checks/premises hash {changed_spec.checks_hash} differs" in problem
    with pytest.raises(SpecError, match="add a 'revisions:' entry"):
        claims.write_lock({spec.id: changed_spec}, tmp_path / "checks.lock")
    revision = {"date": "2026-11-22", "checks_hash": changed_spec.checks_hash,
                "change": "0.04 -> 0.08", "reason": "the paper says ..."}  # fmt: skip
    revised = claims.Spec(path=spec.path, data=dict(changed, revisions=[revision]))
    assert claims.lock_problems({spec.id: revised}, lock) == []
    assert claims.write_lock({spec.id: revised}, tmp_path / "checks.lock") == {
        spec.id: revised.checks_hash
    }
    # a description edit changes the hash too: the registered text is what was pre-registered
    reworded = dict(spec.data, checks=[dict(spec.checks[0], description="x")] + spec.checks[1:])
    assert claims.Spec(path=spec.path, data=reworded).checks_hash != spec.checks_hash


def test_invariant_raises_with_its_message():
    from repro.invariants import InvariantError, require

    require(True, "fine")
    with pytest.raises(InvariantError, match="invariant violated: V = 0.3 > C = 0.2"):
        require(0.3 <= 0.2, "V = 0.3 > C = 0.2")


def test_broken_invariant_makes_the_claim_an_error(tmp_path, toy_env):
    from repro import pipeline

    data = toy_spec()
    data.update(id="toy-inv", experiment="invariant")
    path = write(tmp_path, data, "toy-inv.yaml")
    record = pipeline.run_claim(path, "quick", tmp_path / "out")
    assert record["status"] == "error"
    assert "invariant violated: mu = 1.0 should be negative" in record["error"]
    summary = pipeline.summarise_claim(path, tmp_path / "out" / "run.json")
    assert summary["verdict"] == "error" and summary["checks"] == []


def test_the_record_says_whether_updates_took_the_static_step_path(tmp_path, toy_env, monkeypatch):
    from repro import pipeline
    from repro.report.markdown import graphs_note

    path = write(tmp_path, toy_spec())
    monkeypatch.delenv("REPRO_GRAPHS", raising=False)
    assert pipeline.run_claim(path, "quick", tmp_path / "a", device="cpu")["graphs"] is False
    monkeypatch.setenv("REPRO_GRAPHS", "1")
    record = pipeline.run_claim(path, "quick", tmp_path / "b", device="cpu")
    assert record["graphs"] is True
    assert graphs_note(record) == " (updates on the static-step path, eager)"
    assert graphs_note(record | {"device": "cuda"}) == " (updates as CUDA graphs)"
    assert graphs_note({"device": "cuda"}) == ""  # records from before the field: eager


def test_summary_tables_carry_test_checks_and_premises(tmp_path, toy_env):
    from repro import pipeline

    data = toy_spec()
    test = {"name": "t", "alternative": "greater", "alpha": 0.05}
    data["checks"][1] = {"id": "gain", "metric": "mean", "value": 0.0, "description": "d",
                         "test": test, "basis": "b"}  # fmt: skip
    data["premises"] = [{"id": "p", "metric": "abs_error", "op": "<", "value": 1.0,
                         "description": "d", "basis": "b"}]  # fmt: skip
    path = write(tmp_path, data)
    pipeline.run_claim(path, "quick", tmp_path / "out")
    summary = pipeline.summarise_claim(path, tmp_path / "out" / "run.json")
    assert summary["verdict"] == "reproduced"  # mean ~1 > 0 on 3 seeds; error < 0.04
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "t-test (greater) vs 0: p < 0.05" in md and "| premise | p |" in md
    assert "3 of 3 seeds met it" in md  # how many seeds met each premise
    assert summary["premises"][0]["n_met"] == 3 and summary["premises"][0]["met"] == [True] * 3


# ---------------------------------------------------------------- issue 14: verdict rules


def premise_table(means, errors):
    return pd.DataFrame({"seed": range(len(means)), "mean": means, "abs_error": errors})


def test_a_seed_that_misses_a_premise_does_not_vote(spec):
    """Seed 3 misses the premise (mean >= 0.5) and has a large error: with a median premise it
    would vote and break the check; judged per seed it is left out of every check."""
    one_check = claims.Spec(path=spec.path, data=dict(spec.data, checks=spec.checks[:1]))
    p = premise_spec(one_check, "<", 0.5)
    table = premise_table([0.1, 0.2, 0.3, 0.9], [0.01, 0.02, 0.03, 0.5])
    premises = claims.evaluate_premises(p, table)
    assert premises[0]["met"] == [True, True, True, False]
    assert premises[0]["n_met"] == 3 and premises[0]["passed"] is False
    checks = evaluate_checks(p, table)
    assert checks[0]["seeds"] == [0, 1, 2] and checks[0]["per_seed"] == [0.01, 0.02, 0.03]
    assert checks[0]["measured"] == pytest.approx(0.03) and checks[0]["passed"] is True
    label, reason = verdict(p, "quick", checks, premises)
    assert label == "reproduced"
    assert reason == "all 1 checks hold (on the 3 of 4 seeds that met every premise)"
    # the same data judged with every seed voting would not reproduce: the rule matters
    assert evaluate_checks(one_check, table)[0]["passed"] is False


def test_fewer_valid_seeds_than_min_seeds_is_inconclusive_naming_the_premise(spec):
    p = premise_spec(spec, "<", 0.5)  # min_seeds 3
    table = premise_table([0.1, 0.9, 0.2, 0.7], [0.01, 0.02, 0.03, 0.04])
    label, reason = verdict(
        p, "full", evaluate_checks(p, table), claims.evaluate_premises(p, table)
    )
    assert label == "inconclusive"
    assert reason.startswith("premise not met: small_mean (per seed: < 0.5): 2 of 4 seeds met it")
    assert "per-seed values 0.1, 0.9, 0.2, 0.7" in reason
    assert "(2 valid seed(s), fewer than min_seeds=3)" in reason
    # with min_seeds 2 the two valid seeds decide
    p2 = premise_spec(spec, "<", 0.5, min_seeds=2)
    label, _ = verdict(p2, "full", evaluate_checks(p2, table), claims.evaluate_premises(p2, table))
    assert label == "partial"  # close holds on seeds 0 and 2, impossible does not


def test_a_nan_premise_value_means_the_seed_did_not_meet_it(spec):
    p = premise_spec(spec, "<", 0.5, min_seeds=2)
    table = premise_table([0.1, np.nan, 0.2], [0.01, 0.02, 0.03])
    (done,) = claims.evaluate_premises(p, table)
    assert done["met"] == [True, False, True] and done["n_met"] == 2


def test_two_premises_a_seed_must_meet_both(spec):
    second = {"id": "small_error", "metric": "abs_error", "op": "<", "value": 0.035,
              "description": "d", "basis": "b"}  # fmt: skip
    p = premise_spec(spec, "<", 0.5, min_seeds=2)
    p = claims.Spec(path=p.path, data=dict(p.data, premises=[*p.premises, second]))
    table = premise_table([0.1, 0.9, 0.2, 0.3], [0.01, 0.02, 0.05, 0.03])
    checks = evaluate_checks(p, table)
    assert checks[0]["seeds"] == [0, 3]  # seed 1 misses the first, seed 2 the second
    # what `repro show` reads from a summary names the same voting seeds as the checks used
    premises = claims.evaluate_premises(p, table)
    assert claims.voting_seeds(premises, [0, 1, 2, 3]) == [0, 3]
    assert list(np.flatnonzero(claims.valid_seeds_mask(p, table))) == [0, 3]
    assert claims.voting_seeds([], [0, 1, 2]) == [0, 1, 2]  # no premise: every seed votes
    aggregate_premise = {"id": "old", "metric": "mean", "measured": 0.2, "passed": True}
    assert claims.voting_seeds([aggregate_premise], [0, 1]) is None  # judged before per seed


def test_within_check_is_two_sided(spec):
    check = {"id": "slope", "metric": "abs_error", "aggregate": "mean", "op": "within",
             "value": 1.0, "tolerance": 0.1, "description": "d", "basis": "b"}  # fmt: skip
    assert claims.evaluate_check(check, seeds_table([0.95, 1.05, 1.0]))["passed"] is True
    assert claims.evaluate_check(check, seeds_table([1.2, 1.2, 1.2]))["passed"] is False
    assert claims.evaluate_check(check, seeds_table([0.8, 0.8, 0.8]))["passed"] is False
    assert claims.check_rule(check) == "mean within 1 +- 0.1"


def test_basis_is_documentation_and_not_hashed(spec):
    edited = [dict(c, basis="another wording of the paper's words") for c in spec.checks]
    assert claims.Spec(path=spec.path, data=dict(spec.data, checks=edited)).checks_hash == (
        spec.checks_hash
    )
    tighter = [dict(spec.checks[0], value=0.03), *spec.checks[1:]]
    assert claims.Spec(path=spec.path, data=dict(spec.data, checks=tighter)).checks_hash != (
        spec.checks_hash
    )


def test_identity_spec_needs_no_departures(tmp_path, toy_env):
    data = toy_spec()
    data["kind"] = "identity"
    del data["departures"]
    assert load_spec(write(tmp_path, data)).kind == "identity"


def test_every_repo_check_and_premise_has_a_basis_and_every_empirical_spec_departures():
    for spec in claims.load_all().values():
        for c in spec.checks + spec.premises:
            assert str(c.get("basis", "")).strip(), f"{spec.id}: {c['id']} has no basis"
        if spec.kind == "empirical":
            assert "departures" in spec.data, spec.id
        metrics = [c["metric"] for c in spec.checks]
        assert len(metrics) == len(set(metrics)), f"{spec.id}: two checks on one metric"


def test_checks_on_fewer_voting_seeds_than_min_seeds_are_not_judged(tmp_path, toy_env):
    """A check measured on fewer voting seeds than min_seeds decides nothing: its 'passed' is
    None with the reason, and no table says it holds (critic-tracks-quality's full record showed
    'holds: yes' for a t-test on the 2 seeds that met every premise)."""
    from repro import pipeline
    from repro.report.claims_table import measured_text

    data = toy_spec()
    data["min_seeds"] = 3
    # one seed's mean is the smallest of the three: a premise that keeps the other two
    pipeline.run_claim(write(tmp_path, data), "quick", tmp_path / "pilot")
    means = sorted(pd.read_csv(tmp_path / "pilot" / "seeds.csv")["mean"])
    data["premises"] = [{"id": "p", "metric": "mean", "op": ">", "value": means[0],
                         "description": "d", "basis": "b"}]  # fmt: skip
    path = write(tmp_path, data)
    pipeline.run_claim(path, "quick", tmp_path / "out")
    summary = pipeline.summarise_claim(path, tmp_path / "out" / "run.json")
    assert summary["verdict"] == "inconclusive"
    assert "2 valid seed(s), fewer than min_seeds=3" in summary["reason"]
    close = summary["checks"][0]
    assert close["n_seeds"] == 2 and close["passed"] is None  # measured, but not judged
    assert close["not_judged"] == "2 voting seed(s), fewer than min_seeds=3"
    assert "abs_error: not judged (2 voting seed(s), fewer than min_seeds=3)" in measured_text(
        summary
    )
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "not judged" in md and "| yes |" not in md.split("Pre-registered")[-1]
