"""Tables, citations, README block, and atomic writes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from repro import claims, io, report

from .conftest import ROOT


def test_fmt_numbers_for_humans():
    assert report.fmt(0.123456) == "0.1235"
    assert report.fmt(float("nan")) == "—"
    assert report.fmt(None) == "—"
    assert report.fmt(7) == "7"
    assert report.fmt("log 2") == "log 2"


def test_markdown_and_latex_tables_hold_every_cell():
    df = pd.DataFrame({"metric": ["a_b", "c"], "mean": [0.5, math.nan]})
    md = report.to_markdown(df).splitlines()
    assert md == ["| metric | mean |", "|---|---|", "| a_b | 0.5 |", "| c | — |"]
    tex = report.to_latex(df, "caption 95%", "tab:x")
    assert r"a\_b & 0.5 \\" in tex
    assert r"\caption{caption 95\%}" in tex
    assert tex.count(r"\toprule") == tex.count(r"\bottomrule") == 1


def test_short_citations_from_refs_bib():
    entries = report.bib_entries()
    assert report.short_cite("goodfellow2014generative", entries) == "Goodfellow et al. 2014"
    assert report.short_cite("arjovsky2017towards", entries) == "Arjovsky & Bottou 2017"
    assert report.short_cite("sonderby2016amortised", entries) == "Sønderby et al. 2016"
    assert report.short_cite("unknown2000", entries) == "unknown2000"


def test_readme_block_is_regenerated_from_results(tmp_path):
    ids = sorted(claims.load_all())
    results = tmp_path / "results"
    (results / "full").mkdir(parents=True)
    row = {"id": ids[0], "paper": "x", "where": "y", "verdict": "partial"}
    row |= {"device": "cpu: AMD EPYC (1 threads)", "wall_time_s": 388.7}
    pd.DataFrame([row]).to_csv(results / "full" / "claims.csv", index=False)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_START}\nstale\n{report.README_END}\noutro\n")
    assert report.update_readme(readme, results) is True
    text = readme.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert f"| [`{ids[0]}`](results/full/REPORT.md#{ids[0]}) |" in text
    n_departures = len(claims.load_all()[ids[0]].data["departures"])  # an empirical claim
    assert f"| 🟡 partial | {n_departures} | cpu: AMD EPYC (1 threads), 389 s |" in text
    assert f"| `{ids[1]}` |" in text and "not run at full scale yet" in text  # every claim listed
    assert report.update_readme(readme, results) is False  # idempotent


def test_readme_shows_a_result_judged_by_other_checks_as_outdated(tmp_path):
    specs = claims.load_all()
    cid = "fenchel-conjugates"
    results = tmp_path / "results"
    (results / "full").mkdir(parents=True)
    row = {"id": cid, "verdict": "reproduced", "device": "cpu", "wall_time_s": 1.0}
    pd.DataFrame([dict(row, checks_hash=specs[cid].checks_hash)]).to_csv(
        results / "full" / "claims.csv", index=False
    )
    assert "| ✅ reproduced |" in report.readme_table(results)
    pd.DataFrame([dict(row, checks_hash="0" * 12)]).to_csv(
        results / "full" / "claims.csv", index=False
    )
    table = report.readme_table(results)
    assert "| ✅ reproduced |" not in table and "⏳ outdated" in table


def test_readme_without_markers_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        report.update_readme(readme, tmp_path)


def test_committed_readme_table_matches_committed_full_results():
    """README's claims table is generated; it must not drift from results/full."""
    text = (report.ROOT_README).read_text()
    block = text.split(report.README_START)[1].split(report.README_END)[0]
    assert block.strip() == report.readme_table(report.ROOT_RESULTS).strip()


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.csv"
    io.write_text(target, "old\n")

    def failing_writer(path):
        path.write_text("half a fi")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        io.write_with(target, failing_writer)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temp file left


def test_json_is_strict_nan_and_inf_become_null_numpy_scalars_plain(tmp_path):
    import json

    import numpy as np

    obj = {"x": np.float64(0.5), "y": float("nan"), "n": np.int64(3), "l": [np.inf, -1.0]}
    io.write_json(tmp_path / "a.json", obj)
    text = (tmp_path / "a.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    # a strict reader (no NaN/Infinity constants) accepts it
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))
    assert back == {"x": 0.5, "y": None, "n": 3, "l": [None, -1.0]}


def test_positive_skewed_quantity_gets_a_log_scale_interval_that_stays_positive():
    from scipy import stats

    from repro.stats import interval, log_t_interval

    counts = [10.0, 30.0, 1300.0]  # iterations to accuracy 1: the t-interval reaches below 0
    assert interval(counts)[0] == "t"  # not declared positive (e.g. a signed log10 ratio)
    how, centre, low, high = interval(counts, positive=True)
    assert how == "log-t" and 0 < low < centre < high
    logs = np.log(counts)
    half = stats.t.ppf(0.975, 2) * logs.std(ddof=1) / np.sqrt(3)
    assert (centre, low, high) == pytest.approx(
        (np.exp(logs.mean()), np.exp(logs.mean() - half), np.exp(logs.mean() + half))
    )
    assert interval([1.0, 1.1, 0.9], positive=True)[0] == "t"  # tight: the plain interval
    assert interval([-1.0, 5.0, 2.0], positive=True)[0] == "t"  # not all positive
    assert np.isnan(log_t_interval([1.0, -2.0])[0])


def test_repository_url_is_read_from_citation_only_when_set(tmp_path):
    cff = tmp_path / "CITATION.cff"
    cff.write_text('cff-version: 1.2.0\n# repository-code: "https://example.org/x"\n')
    assert report.repository_url(cff) is None  # a commented placeholder is not a URL
    cff.write_text('cff-version: 1.2.0\nrepository-code: "https://example.org/gan-claims"\n')
    assert report.repository_url(cff) == "https://example.org/gan-claims"


def test_setup_table_is_read_in_order_and_a_malformed_one_is_an_error():
    from repro.experiments import setup_table
    from repro.pipeline import setup_of

    table = setup_table(data="Fashion-MNIST", model="DCGAN 28x28")
    assert setup_of({"setup": table}) == {"data": "Fashion-MNIST", "model": "DCGAN 28x28"}
    assert setup_of({}) == {}
    with pytest.raises(ValueError, match=r"'setup' table has columns \['what', 'value'\]"):
        setup_of({"setup": table.rename(columns={"item": "what"})})


def test_cpu_provenance_names_model_vendor_and_vector_isa():
    import torch

    from repro import provenance

    cpu = provenance.cpu_info()
    assert set(cpu) == {"cpu_model", "cpu_vendor", "cpu_isa", "cpu_flags"}
    assert cpu["cpu_isa"] == torch.backends.cpu.get_cpu_capability()
    assert cpu["cpu_model"] and cpu["cpu_model"] in provenance.device_name(torch.device("cpu"))
    assert cpu["cpu_isa"] in provenance.device_name(torch.device("cpu"))
    line = report.cpu_line(cpu)
    assert cpu["cpu_model"] in line and f"kernels {cpu['cpu_isa']}" in line
    assert report.cpu_line(None) == "not recorded"  # results from before it was recorded
    intel = {"cpu_model": "Intel Xeon", "cpu_vendor": "GenuineIntel", "cpu_isa": "AVX512",
             "cpu_flags": "avx512f avx2 fma"}  # fmt: skip
    assert report.cpu_line(intel) != report.cpu_line(cpu | {"cpu_isa": "AVX2"})


def test_workflow_modules_import_one_way_and_stay_short():
    """pipeline -> heal -> report -> records -> claims, never back (issue 15: the pipeline <->
    report cycle); imports inside functions count too. No module over ~500 lines."""
    from repro import provenance

    workflow = ("repro.records", "repro.report", "repro.heal", "repro.pipeline")
    below = {  # module file -> the workflow modules it must not import
        "repro/records.py": ("repro.report", "repro.heal", "repro.pipeline"),
        "repro/heal.py": ("repro.pipeline",),
        **{
            f"repro/report/{p.name}": ("repro.heal", "repro.pipeline")
            for p in (ROOT / "repro" / "report").glob("*.py")
        },
        **{f"repro/claims/{p.name}": workflow for p in (ROOT / "repro" / "claims").glob("*.py")},
    }
    for rel, banned in below.items():
        imported = provenance._imported_modules((ROOT / rel).read_text(), rel)
        wrong = sorted(m for m in imported if any(m == b or m.startswith(b + ".") for b in banned))
        assert not wrong, f"{rel} imports {wrong}"
    for rel in [*below, "repro/pipeline.py", "repro/cli.py"]:
        n = len((ROOT / rel).read_text().splitlines())
        assert n <= 500, f"{rel}: {n} lines"
