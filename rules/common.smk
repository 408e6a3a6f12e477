# Helpers shared by the rules: the validated specs, paths, and input functions.
import json
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from repro.claims import SpecError, UnknownClaimError, load_all, resolve_ids

# The interpreter running Snakemake has the package and its deps. Named by its environment, not
# by sys.executable, so that `snakemake` (python3) and `python -m snakemake` (python) agree and a
# changed spelling of the same interpreter never counts as changed params (which would rerun all).
PYTHON = str(Path(sys.prefix) / "bin" / "python")
if not Path(PYTHON).exists():
    PYTHON = sys.executable
SCALE = config["scale"]
RESULTS = config["results_dir"]
FIGURES = config["figures_dir"]
CLAIMS_DIR = Path(workflow.basedir) / config["claims_dir"]

# Every spec is validated here, before any job starts: a malformed spec stops the run with the
# file and the field in the message.
try:
    SPECS = load_all(CLAIMS_DIR)
    SELECTED = list(SPECS) if config["claims"] == "all" else resolve_ids(config["claims"], SPECS)
except (SpecError, UnknownClaimError) as e:
    raise WorkflowError(str(e))


wildcard_constraints:
    scale="smoke|quick|full",
    claim="|".join(SPECS) or "no-claims",
    figure="[a-z0-9_]+",


# A claim whose last run raised left a run record with status "error". It must never be trusted:
# such records get an extra input, this stamp, touched at every start, so they are always older
# than an input and rerun.
RETRY_STAMP = Path(".snakemake/gan-claims-retry.stamp")
RETRY_STAMP.parent.mkdir(exist_ok=True)
RETRY_STAMP.touch()


def retry_if_failed(wildcards):
    record = Path(f"{RESULTS}/{wildcards.scale}/{wildcards.claim}/run.json")
    try:
        failed = json.loads(record.read_text()).get("status") != "ok"
    except (OSError, ValueError):
        return []
    return [str(RETRY_STAMP)] if failed else []


def spec_path(wildcards):
    return str(SPECS[wildcards.claim].path)


def claim_results_dir(wildcards, output):
    return str(Path(output.record).parent)


def report_dir(wildcards, output):
    return str(Path(output.md).parent)


def scale_figures_dir(wildcards):
    return f"{FIGURES}/{wildcards.scale}"


def seeds_arg(wildcards):
    return "" if config["seeds"] is None else f"--seeds {config['seeds']}"


def figure_caption(wildcards):
    spec = SPECS[wildcards.claim]
    return next(f["caption"] for f in spec.figures if f["name"] == wildcards.figure).strip()


def claim_outputs(claim, scale=SCALE):
    figs = [f"{FIGURES}/{scale}/{claim}/{f['name']}.png" for f in SPECS[claim].figures]
    return [f"{RESULTS}/{scale}/{claim}/summary.json", *figs]


def report_inputs(wildcards):
    return [f"{RESULTS}/{wildcards.scale}/{c}/summary.json" for c in SELECTED]


def report_figures(wildcards):
    return [t for c in SELECTED for t in claim_outputs(c, wildcards.scale)[1:]]


def all_targets():
    return [t for c in SELECTED for t in claim_outputs(c)] + [f"{RESULTS}/{SCALE}/REPORT.md"]
