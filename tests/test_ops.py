"""Operations: the SLURM profiles, the Makefile's small targets, the report's browser check.

The real SLURM run is `make slurm-check` (CI runs it after the tests) and the real report check is
`make report-check`; these tests pin what those rely on and run in well under a second each
(the browser test, skipped without Chromium, in a few seconds).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from .conftest import ROOT


def _profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def _mentions_gpu(obj) -> bool:
    return bool(re.search(r"gpu|gres", json.dumps(obj), re.IGNORECASE))


def test_slurm_profile_requests_no_gpu_and_one_job_per_claim():
    prof = _profile("slurm")
    assert prof["executor"] == "slurm"
    # a GPU request is refused by a cluster without GPU gres: this profile must run anywhere
    assert not _mentions_gpu(prof)
    groups = dict(g.split("=") for g in prof["groups"])
    assert groups["run_claim"] == groups["summarise_claim"] == groups["plot_figure"]
    # a group's parallel jobs would add up their CPUs beyond a small node without this cap
    assert prof["cores"] == 1


# the jobs that train: a claim's run, and the GAN run shared by the Arjovsky-Bottou claims (its
# device must be the claim jobs' device: they refuse a GAN trained on another)
GPU_RULES = ("run_claim", "arjovsky_bottou_gan")


def test_slurm_gpu_profile_asks_one_gpu_for_the_training_jobs_only():
    prof = _profile("slurm-gpu")
    res = prof["set-resources"]
    assert all(res[r]["gpu"] == 1 for r in GPU_RULES)
    assert not any(_mentions_gpu(v) for k, v in res.items() if k not in GPU_RULES)
    assert not _mentions_gpu(prof["default-resources"])
    # apart from the GPU, the same settings as profiles/slurm
    plain = _profile("slurm")
    for r in GPU_RULES:
        del res[r]["gpu"]
    assert prof == plain


def test_rules_hard_code_no_gpu_request():
    for path in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]:
        assert not re.search(r"\bgpu\s*=", path.read_text()), path


def _make_dry(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("no make")
    venv = "/nonexistent-venv"  # -o: treat the venv as set up, so nothing installs
    cmd = ["make", "-n", "-C", str(ROOT), f"VENV={venv}", "-o", f"{venv}/.installed", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def test_make_clean_smoke_removes_only_the_smoke_outputs():
    out = _make_dry("clean-smoke")
    assert "rm -rf results/smoke figures/smoke" in out
    assert "quick" not in out and "full" not in out


def test_make_report_builds_the_html_report_without_training():
    out = _make_dry("report", "SCALE=smoke")
    assert "--report results/smoke/report.html" in out
    # --report only collects existing results; a command running the workflow would have --cores
    assert "--cores" not in out


@pytest.mark.parametrize(
    "script", ["profiles/slurm/local-cluster.sh", "report/check_html.sh", ".ci/run"]
)
def test_shell_scripts_parse(script):
    subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="no chromium (apt-get install chromium)"
)
def test_browser_shot_renders_scripts_and_follows_clicks(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><body><h1>Title</h1><p id=out>before</p>"
        "<a href='#' onclick=\"document.getElementById('out').innerText='after click'\">Go</a>"
        "<script>setTimeout(() => document.body.insertAdjacentHTML('beforeend',"
        " '<p>rendered late</p>'), 300)</script></body></html>"
    )
    shots = tmp_path / "shots"
    args = ["--ready", "rendered late", "--click", "Go", "--click", "Missing",
            "--width", "400", "--height", "300", "--viewport-only"]  # fmt: skip
    run = subprocess.run(
        [sys.executable, str(ROOT / "report/browser_shot.py"), str(page), str(shots), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr  # the click on "Missing" found nothing
    views = [json.loads(line) for line in run.stdout.splitlines()]
    assert [v["view"] for v in views] == ["landing", "Go", "Missing"]
    assert "error" in views[2]
    assert views[0]["unreachable_px"] == 0
    landing, clicked = (shots / "00-landing.txt").read_text(), (shots / "01-go.txt").read_text()
    assert "rendered late" in landing and "before" in landing
    assert "after click" in clicked and "before" not in clicked
    png = (shots / "00-landing.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (400, 300)


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="no chromium (apt-get install chromium)"
)
def test_browser_shot_measures_content_out_of_reach(tmp_path):
    # a 300 px pane that centres 1,000 px of content: ~350 px stick out above its top, and
    # scrolling cannot bring them back (the landing page of Snakemake's report did this)
    page = tmp_path / "page.html"
    page.write_text(
        "<html><body style='margin:0'><div style='display:flex;align-items:center;"
        "height:300px;overflow:auto'><div style='height:1000px;flex:none'>tall</div></div>"
        "</body></html>"
    )
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "report/browser_shot.py"),
            str(page),
            str(tmp_path / "s"),
            "--width",
            "400",
            "--height",
            "300",
            "--viewport-only",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(run.stdout.splitlines()[0])["unreachable_px"] == 350
