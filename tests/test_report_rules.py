"""Issue 14 in the report: departures (REPORT.md and the HTML report), per-seed premises,
outdated results without numbers, unmet premises as inconclusive."""

from __future__ import annotations

import json

import yaml

from repro import claims, pipeline, report

from .conftest import FIXTURES, ROOT

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


def _run(tmp_path, **changes):
    """toy-mean (2 departures, premise mean > 0.5 unless changed) run and summarised at quick."""
    folder, path = _claims_dir(tmp_path, **changes)
    results = tmp_path / "results"
    out = results / "quick" / "toy-mean"
    pipeline.run_claim(path, "quick", out)
    summary = pipeline.summarise_claim(path, out / "run.json")
    return folder, results, out, summary


def test_result_outdated_by_code_or_params_shows_no_number_in_the_claims_table(tmp_path, toy_env):
    folder, results, out, summary = _run(tmp_path)
    measured = report.fmt(summary["checks"][0]["measured"])
    md = report.build_report("quick", tmp_path / "r", results, tmp_path / "f", folder).read_text()
    assert f"abs_error max = {measured}" in _claims_row(md, "toy-mean")  # current: its numbers
    for field, value, label, said in (
        ("code_hash", "000000000000", "outdated (code changed)", "code changed since"),
        ("params", {"mu": 1.0, "n": 7}, "outdated (params changed)", "params changed since"),
    ):
        edited = json.loads((out / "summary.json").read_text())
        if field == "params":
            edited["params"] = value
        else:
            edited["provenance"][field] = value
        (out / "summary.json").write_text(json.dumps(edited))
        md = report.build_report("quick", tmp_path / "r", results, tmp_path / "f", folder)
        md = md.read_text()
        row = _claims_row(md, "toy-mean")
        assert report.VERDICT_MARK[label] in row and said in row and "rerun" in row
        assert measured not in row and "abs_error max" not in row and "seeds met it" not in row
        # the claim's section keeps the old result as a record, saying why it is outdated
        section = md.split("## toy-mean", 1)[1]
        assert f"| close | abs_error | max < 0.04 | {measured} |" in section
        assert "rerun the claim for a current verdict" in section
        (out / "summary.json").write_text(json.dumps(summary))  # back to the current result


def test_unmet_premise_is_inconclusive_naming_it_with_the_seeds_that_met_it(tmp_path, toy_env):
    premise = {"id": "mean_large", "metric": "mean", "op": ">", "value": 5.0,
               "description": "d", "basis": "b"}  # fmt: skip
    folder, results, _, summary = _run(tmp_path, premises=[premise])
    assert summary["verdict"] == "inconclusive"
    assert summary["reason"].startswith(
        "premise not met: mean_large (per seed: > 5): 0 of 3 seeds met it; per-seed values "
    )
    md = report.build_report("quick", tmp_path / "r", results, tmp_path / "f", folder).read_text()
    row = _claims_row(md, "toy-mean")
    assert "⚪ inconclusive" in row and "premise mean_large: 0 of 3 seeds met it" in row
    assert "*Verdict:* **inconclusive** (premise not met: mean_large (per seed: > 5): 0 of 3" in md
    assert "| mean_large | mean | per seed: > 5 | 0 of 3 |" in md


def test_html_report_shows_departures_in_the_claims_table_and_the_claims_section(tmp_path, toy_env):
    folder, results, _, _ = _run(tmp_path)
    spec = claims.load_all(folder)["toy-mean"]
    # the landing page's claims table: a departures column with the count
    landing = report.landing_rst("quick", results, folder)
    report.check_rst(landing, "landing")
    head = landing.split(".. list-table:: Empirical claims", 1)[1]
    header = [line.strip() for line in head.splitlines()[4:11]]
    assert header[:4] == ["* - claim", "- paper, where", "- verdict", "- departures"]
    row = head.split("* - toy-mean", 1)[1].splitlines()
    assert row[2].strip() == "- partial" and row[3].strip() == "- 2"
    # the claim's section (the caption of its metric table) lists each departure
    caption = report.departures_rst(spec)
    report.check_rst(caption, "caption")
    assert caption.startswith(".. list-table:: Departures from the paper's setup (2; ")
    for d in DEPARTURES:
        cells = "\n".join(f"     - {d[k]}" for k in ("paper", "here", "why"))
        assert f"   * - {d['what']}\n{cells}\n" in caption
    html = docutils_html(caption)
    assert "<td>Adam 1e-3</td>" in html.replace("<p>", "").replace("</p>", "")
    # the template Snakemake renders the caption from (report/claim_table.rst) reads it
    template = (ROOT / "report" / "claim_table.rst").read_text()
    assert "{{ snakemake.params.departures }}" in template
    rules = (ROOT / "rules" / "claims.smk").read_text()
    assert "departures=claim_departures" in rules.split("rule summarise_claim:", 1)[1]
    none = claims.Spec(path=spec.path, data=dict(spec.data, departures=[]))
    assert report.departures_rst(none) == "**Departures from the paper's setup:** none declared."
    identity = claims.Spec(path=spec.path, data=dict(spec.data, kind="identity"))
    assert report.departures_rst(identity) == ""


def docutils_html(text: str) -> str:
    from docutils.core import publish_parts

    return publish_parts(text, writer="html")["body"]
