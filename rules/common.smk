# Helpers shared by the rules: the validated specs, the runs, paths, and input functions.
#
# A "run" is a claim's primary run (its id) or one of its variants (<id>@<variant>); each has its
# own folder results/{scale}/{run}/ and figures/{scale}/{run}/, and its own jobs.
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from repro.claims import VARIANT_SEP
from repro.heal import heal, rebuild_views
from repro.records import fresh_summary, missing_outputs, rerun_reason
from repro.report import check_rst, departures_rst, landing_rst, rst_escape
from repro.workflow import StartProblem, check_start

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
    return [run_id(c) for c in claims] + [
        run_id(c, v) for c in claims for v in SPECS[c].variants_at(scale)
    ]


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


# A claim whose last run raised left a run record with status "error". It must never be trusted:
# such records get an extra input, this stamp, touched at every start, so they are always older
# than an input and rerun.
RETRY_STAMP = Path(".snakemake/gan-claims-retry.stamp")
RETRY_STAMP.parent.mkdir(exist_ok=True)
RETRY_STAMP.touch()


def retry_if_failed(wildcards):
    """The stamp for a record that must rerun although it exists: failed, corrupt, its seeds.csv
    missing or not matching, or made by other code or params (repro.records.rerun_reason)."""
    claim, variant = split_run(wildcards.claim)
    run_dir = Path(f"{RESULTS}/{wildcards.scale}/{wildcards.claim}")
    return [str(RETRY_STAMP)] if rerun_reason(run_dir, SPECS[claim], variant) else []


def retry_if_stale(wildcards):
    """The stamp for a summary or figure whose run record is gone, untrustworthy or from another
    run: Snakemake alone does not rebuild a missing intermediate (run.json) whose downstream
    outputs exist. A real run's heal() has deleted those already; a dry run plans them here."""
    run_dir = Path(f"{RESULTS}/{wildcards.scale}/{wildcards.claim}")
    if not (run_dir / "summary.json").exists():
        return []
    return [str(RETRY_STAMP)] if fresh_summary(run_dir) is None else []


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
