# Helpers shared by the rules: the validated specs, the runs, paths, and input functions.
#
# A "run" is a claim's primary run (its id) or one of its variants (<id>@<variant>); each has its
# own folder results/{scale}/{run}/ and figures/{scale}/{run}/, and its own jobs.
import os
import re
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError

from repro.claims import VARIANT_SEP
from repro.heal import heal, rebuild_views
from repro.records import fresh_summary, missing_outputs, rerun_reason
from repro.report import check_rst, departures_rst, landing_rst, rst_escape
from repro.workflow import StartProblem, check_start, runs_at as claim_runs

# The rules call `python -m repro...`: the interpreter running Snakemake (it has the package and
# its dependencies) goes first on PATH, so no local interpreter path appears in the rules, the
# jobs' params or the HTML report.
os.environ.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), os.getenv("PATH", "")]))
SCALE = config["scale"]
RESULTS = config["results_dir"]
FIGURES = config["figures_dir"]
CLAIMS_DIR = Path(workflow.basedir) / config["claims_dir"]
# Jobs (local or on a cluster) inherit the environment: where the data sets are.
os.environ.update(GAN_CLAIMS_DATA_DIR=str(Path(config["data_dir"]).resolve()))
# `snakemake --report`: only runs that have results take part (the others show "not run").
REPORT_MODE = any(a == "--report" or a.startswith("--report") for a in sys.argv[1:])
# Invocations that execute no job (a dry run, a listing, --unlock...) change nothing on disk.
_NO_EXEC_FLAGS = {"--dry-run", "--dryrun", "--just-print", "--unlock", "--lint", "--summary",
                  "--detailed-summary", "--list-rules", "--list", "--dag", "--rulegraph",
                  "--filegraph", "--cleanup-metadata", "--list-changes", "--lc", "--li", "--lp"}  # fmt: skip
NO_EXEC = any(
    a in _NO_EXEC_FLAGS or (re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", a) is not None and len(a) <= 5)
    for a in sys.argv[1:]
)


def _fail(message):
    raise WorkflowError(message)


# Every spec and the config are checked here, before any job starts (repro.workflow.check_start):
# a malformed spec, an unregistered check, a folder that is a file, a missing data set... stops
# the run with the file and the field in the message.
try:
    SPECS, SELECTED = check_start(config, CLAIMS_DIR, report_mode=REPORT_MODE)
except StartProblem as e:
    raise WorkflowError(str(e)) from None


def run_id(claim, variant=None):
    return claim if variant is None else f"{claim}{VARIANT_SEP}{variant}"


def split_run(run):
    claim, _, variant = run.partition(VARIANT_SEP)
    return claim, (variant or None)


def runs_at(scale, claims=None):
    """Every run of the selected claims at ``scale``: primary runs, then declared variants."""
    claims = SELECTED if claims is None else claims
    return [run_id(c, v) for c, v in claim_runs(SPECS, claims, scale)]


ALL_RUNS = sorted({r for s in ("smoke", "quick", "full") for r in runs_at(s, list(SPECS))})

# Outputs that no longer match a run record (a forced rerun killed midway, a truncated run.json,
# a deleted seeds.csv or PDF) are deleted before the DAG is built, so they are rebuilt and never
# shown as current; REPORT.md and claims.csv are rebuilt from what is left. A dry run only says so.
if workflow.is_main_process and not REPORT_MODE:
    heal(RESULTS, FIGURES, SCALE, CLAIMS_DIR, dry_run=NO_EXEC)


def rebuild_report_views():
    """After a failed or interrupted run: REPORT.md and claims.csv show what is current (the
    report rule did not run, so they may still show results whose records went away)."""
    if not NO_EXEC and not REPORT_MODE:
        rebuild_views(RESULTS, FIGURES, SCALE, CLAIMS_DIR)


def has_results(run, scale=SCALE):
    """A current summary and every figure the spec now names (a spec may have gained one)."""
    figures = SPECS[split_run(run)[0]].figures
    return fresh_summary(Path(RESULTS) / scale / run) is not None and all(
        Path(f"{FIGURES}/{scale}/{run}/{f['name']}.png").exists() for f in figures
    )


if REPORT_MODE:
    RUNS = [r for r in runs_at(SCALE) if has_results(r)]
    # the report never heals (it changes no result): a missing file is rebuilt by a plain run
    for _run in RUNS:
        _names = [f["name"] for f in SPECS[split_run(_run)[0]].figures]
        _missing = missing_outputs(f"{RESULTS}/{SCALE}/{_run}", f"{FIGURES}/{SCALE}/{_run}", _names)
        if _missing:
            _fail(
                f"{_missing[0]} is missing: `snakemake --cores all --config scale={SCALE}` (or "
                f"`repro run {split_run(_run)[0]} --scale {SCALE}`) rebuilds it without "
                "retraining; then make the report again"
            )
else:
    RUNS = runs_at(SCALE)


wildcard_constraints:
    scale="smoke|quick|full",
    claim="|".join(map(re.escape, ALL_RUNS)) or "no-claims",
    figure="[a-z0-9_]+",


# A run whose record must not be trusted (its last run raised, its record is corrupt or its
# seeds.csv missing, or it was made by other code, params or seeds) must rerun although run.json
# exists, and a summary or figure whose record is gone or from another run must be rebuilt
# (Snakemake alone does not rebuild a missing intermediate whose downstream outputs exist; a real
# run's heal() has deleted those already, a dry run plans them here). Each run has two stamp
# files, inputs of its jobs that are always the same files, so Snakemake's record of a job's
# input set never changes (a stamp that came and went made the next call rerun the claim once
# more: "Set of input files has changed"). When the jobs must rerun, a stamp gets new content
# (the reason and the time: Snakemake does not rerun for a newer input whose checksum it has
# seen) and the current mtime; otherwise it keeps its content and the epoch as mtime. They are
# set here, before the DAG is built (Snakemake caches mtimes while it builds), by the main
# process only (a cluster job re-reads this file).
RETRY_DIR = Path(".snakemake/gan-claims-retry")


def _stamp_path(kind, scale, run):
    return RETRY_DIR / scale / f"{run}.{kind}.stamp"


def _set_stamp(path, reason):
    path.parent.mkdir(parents=True, exist_ok=True)
    if reason:
        path.write_text(f"{time.time_ns()} {reason}\n")
    else:
        path.touch()
        os.utime(path, (0, 0))


if workflow.is_main_process:
    for _run in RUNS:
        _claim, _variant = split_run(_run)
        _dir = Path(f"{RESULTS}/{SCALE}/{_run}")
        _set_stamp(_stamp_path("run", SCALE, _run), rerun_reason(_dir, SPECS[_claim], _variant))
        _stale = (_dir / "summary.json").exists() and fresh_summary(_dir) is None
        _set_stamp(_stamp_path("views", SCALE, _run), "stale summary" if _stale else None)


def _stamp(kind, wildcards):
    path = _stamp_path(kind, wildcards.scale, wildcards.claim)
    if workflow.is_main_process and not path.exists():  # a run outside this scale's RUNS
        _set_stamp(path, None)
    return str(path)


def retry_if_failed(wildcards):
    """run_claim's stamp (new when its record must rerun: repro.records.rerun_reason)."""
    return _stamp("run", wildcards)


def retry_if_stale(wildcards):
    """The summary's and figures' stamp (new when their run record is gone or another run's)."""
    return _stamp("views", wildcards)


def claim_figures_dir(wildcards):
    return f"{FIGURES}/{wildcards.scale}/{wildcards.claim}"


def spec_path(wildcards):
    return str(SPECS[split_run(wildcards.claim)[0]].path)


def variant_arg(wildcards):
    variant = split_run(wildcards.claim)[1]
    return "" if variant is None else f"--variant {variant}"


def claim_results_dir(wildcards, output):
    return str(Path(output.record).parent)


def report_dir(wildcards, output):
    return str(Path(output.md).parent)


def scale_results_dir(wildcards):
    return f"{RESULTS}/{wildcards.scale}"


def scale_figures_dir(wildcards):
    return f"{FIGURES}/{wildcards.scale}"


def seeds_arg(wildcards):
    return "" if config["seeds"] is None else f"--seeds {config['seeds']}"


def figure_caption(wildcards):
    """The spec's caption as literal RST (Snakemake renders captions as reStructuredText)."""
    claim, variant = split_run(wildcards.claim)
    spec = SPECS[claim]
    caption = next(f["caption"] for f in spec.figures if f["name"] == wildcards.figure)
    if variant is not None:
        caption = f"Variant {variant} ({spec.variants[variant]['description']}). {caption}"
    return rst_escape(caption)


def claim_departures(wildcards):
    """The claim's declared departures from the paper's setup, as RST for the caption of its
    metric table in the HTML report (repro.report.departures_rst; '' for an identity)."""
    return departures_rst(SPECS[split_run(wildcards.claim)[0]])


def landing_page():
    """The HTML report's landing page: in report mode, the claims table with verdicts, built
    from the results present and checked by docutils (any warning or error stops the report)."""
    if not REPORT_MODE:
        return "../report/workflow.rst"
    text = landing_rst(SCALE, RESULTS, CLAIMS_DIR)
    path = Path(".snakemake/gan-claims-landing.rst").resolve()
    try:
        check_rst(text, "the report's landing page")
        for claim, variant in map(split_run, RUNS):
            check_rst(departures_rst(SPECS[claim]), f"{SPECS[claim].path}: departures")
            for fig in SPECS[claim].figures:
                wc = type("W", (), {"claim": run_id(claim, variant), "figure": fig["name"]})
                check_rst(figure_caption(wc), f"{SPECS[claim].path}: figure {fig['name']}")
    except ValueError as e:
        _fail(str(e))
    path.write_text(text, encoding="utf-8")
    return str(path)


def run_outputs(run, scale=SCALE):
    spec = SPECS[split_run(run)[0]]
    figs = [f"{FIGURES}/{scale}/{run}/{f['name']}.png" for f in spec.figures]
    return [f"{RESULTS}/{scale}/{run}/summary.json", *figs]


def report_inputs(wildcards):
    return [f"{RESULTS}/{wildcards.scale}/{r}/summary.json" for r in RUNS]


def report_figures(wildcards):
    return [t for r in RUNS for t in run_outputs(r, wildcards.scale)[1:]]


def all_targets():
    return [t for r in RUNS for t in run_outputs(r)] + [f"{RESULTS}/{SCALE}/REPORT.md"]
