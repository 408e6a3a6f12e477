"""The one-module-per-claim contract (issue 15), for every spec in claims/.

``claims/<id>.yaml`` is run by ``repro/experiments/<id with - as _>.py``, whose module-level
``EXPERIMENT`` is an :class:`Experiment`; the spec's ``experiment:`` names that module; every
scale takes exactly the experiment's params; every metric a check or premise names is one the
experiment reports, every figure one it draws; and every claim module has a spec.
"""

from __future__ import annotations

import importlib

import pytest

from repro import claims, experiments
from repro.experiments import Experiment

SPEC_PATHS = claims.spec_paths()
METRIC_GROUPS = ("checks", "premises", "invariants")


def module_name(claim_id: str) -> str:
    return claim_id.replace("-", "_")


@pytest.fixture(scope="module")
def specs():
    return claims.load_all()


@pytest.mark.parametrize("path", SPEC_PATHS, ids=lambda p: p.stem)
def test_claim_module_defines_the_experiment_its_spec_names(path, specs):
    spec = specs[path.stem]
    name = module_name(spec.id)
    module = importlib.import_module(f"repro.experiments.{name}")
    assert isinstance(module.EXPERIMENT, Experiment), f"{module.__name__}.EXPERIMENT"
    assert spec["experiment"] == name, f"{spec.id}: experiment: must be {name!r}"
    assert experiments.get(name) is module.EXPERIMENT


@pytest.mark.parametrize("path", SPEC_PATHS, ids=lambda p: p.stem)
def test_scales_take_the_experiments_params_and_checks_name_its_metrics(path, specs):
    spec = specs[path.stem]
    exp = experiments.get(spec["experiment"])
    for scale, body in spec["scales"].items():
        assert set(body["params"]) == set(exp.params), scale
    for variant, body in spec.data.get("variants", {}).items():
        assert set(body.get("params", {})) <= set(exp.params), variant
    assert {f["name"] for f in spec["figures"]} <= set(exp.figures)
    for group in METRIC_GROUPS:
        for item in spec.data.get(group, []):
            assert item["metric"] in exp.metrics, f"{spec.id} {group} {item['id']}"


def test_every_claim_module_has_a_spec_and_names_are_the_modules(monkeypatch):
    monkeypatch.delenv(experiments.EXTRA_ENV, raising=False)
    ids = {module_name(p.stem) for p in SPEC_PATHS}
    modules = set(experiments._modules())
    assert modules <= ids, f"modules without a spec: {sorted(modules - ids)}"
    assert set(experiments.names()) == ids  # plus GAN_CLAIMS_EXTRA_EXPERIMENTS, unset here
    assert "family" not in experiments.names()


def test_unknown_experiment_lists_the_valid_names():
    with pytest.raises(KeyError, match="unknown experiment 'nope'; valid: .*optimal_discriminator"):
        experiments.get("nope")


def test_a_module_whose_experiment_is_not_an_experiment_is_a_type_error(monkeypatch):
    monkeypatch.setenv(experiments.EXTRA_ENV, "bad=repro.experiments:ATTRIBUTE")
    with pytest.raises(TypeError, match="is not an Experiment"):
        experiments.get("bad")
