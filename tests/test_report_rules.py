"""Issue 14 in the report: departures, per-seed premises, outdated results without numbers."""

from __future__ import annotations

import yaml

from repro import pipeline, report

from .conftest import FIXTURES

DEPARTURES = [
    {"what": "lr", "paper": "Adam 1e-4", "here": "Adam 1e-3", "why": "CPU budget"},
    {"what": "steps", "paper": "400k steps", "here": "600 steps", "why": "CPU budget"},
]


def _claims_dir(tmp_path, **changes):
    data = yaml.safe_load((FIXTURES / "toy-mean.yaml").read_text())
    data["departures"] = DEPARTURES
    data["premises"] = [{"id": "mean_positive", "metric": "mean", "op": ">", "value": 0.5,
                         "description": "d", "basis": "b"}]  # fmt: skip
    data.update(changes)
    folder = tmp_path / "claims"
    folder.mkdir(exist_ok=True)
    path = folder / "toy-mean.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return folder, path


def _claims_row(md: str, cid: str) -> str:
    (row,) = [line for line in md.splitlines() if line.startswith(f"| [`{cid}`](#{cid})")]
    return row


def test_report_shows_departures_premise_counts_and_hides_outdated_numbers(tmp_path, toy_env):
    folder, path = _claims_dir(tmp_path)
    results, figures = tmp_path / "results", tmp_path / "figures"
    pipeline.run_claim(path, "quick", results / "quick" / "toy-mean")
    summary = pipeline.summarise_claim(path, results / "quick" / "toy-mean" / "run.json")
    assert summary["verdict"] == "partial"
    out = tmp_path / "report"
    md = report.build_report("quick", out, results, figures, folder).read_text()
    # the claims table counts the departures and says how many seeds met each premise
    assert "| departures |" in md
    row = _claims_row(md, "toy-mean")
    assert "| 2 |" in row
    assert "premise mean_positive: 3 of 3 seeds met it" in row
    measured = report.fmt(summary["checks"][0]["measured"])
    assert f"abs_error max = {measured}" in row
    # the claim's section lists every departure and the per-seed premise table
    assert "*Departures from the paper's setup* (2;" in md
    assert "| lr | Adam 1e-4 | Adam 1e-3 | CPU budget |" in md
    assert "| steps | 400k steps | 600 steps | CPU budget |" in md
    assert "| mean_positive | mean | per seed: > 0.5 | 3 of 3 |" in md
    assert "`close`: derivation: 4 standard errors" in md  # the basis of each check
    # the checks change: the old result is outdated and its number leaves the claims table
    checks = yaml.safe_load(path.read_text())["checks"]
    checks[0]["value"] = 0.03
    _claims_dir(tmp_path, checks=checks)
    md = report.build_report("quick", out, results, figures, folder).read_text()
    row = _claims_row(md, "toy-mean")
    assert "outdated" in row and "rerun" in row
    assert measured not in row and "abs_error max" not in row
    frame = report.claims_frame(report.collect("quick", results, {}), {})
    assert frame.empty  # no specs, no rows (claims_frame reads only what it is given)


def test_identity_claim_has_no_departure_count(tmp_path, toy_env):
    folder, path = _claims_dir(tmp_path, kind="identity")
    results = tmp_path / "results"
    md = report.build_report("quick", tmp_path / "r", results, tmp_path / "f", folder).read_text()
    assert "| — | — |" in _claims_row(md, "toy-mean")  # departures and variants: none
    assert "Departures from the paper's setup" not in md
