# gan-claims: every claim in claims/ as a pre-registered experiment -> verdict, tables, figures, report.
#
#   snakemake --cores all                          # default (quick) scale
#   snakemake --cores all --config scale=full      # paper scale (one GPU)
#   snakemake --report results/quick/report.html   # Snakemake's HTML report (or `repro report`)
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from repro.cli import ConfigError, read_config

min_version("8.20")


# relative to this file, so `snakemake -s path/to/Snakefile -d elsewhere` works too; a YAML error
# in it is reported with the file and line (Snakemake's own message names neither)
try:
    read_config(Path(workflow.basedir) / "config/config.yaml")
except ConfigError as e:
    raise WorkflowError(str(e)) from None


configfile: Path(workflow.basedir) / "config/config.yaml"


validate(config, "config/config.schema.yaml")


include: "rules/common.smk"


# the HTML report's landing page: the claims table with verdicts (rules/common.smk)
report: landing_page()


include: "rules/shared.smk"
include: "rules/claims.smk"
include: "rules/report.smk"


# a failed or interrupted run skips the report rule: rebuild REPORT.md and claims.csv anyway
onerror:
    rebuild_report_views()


rule all:
    input:
        all_targets(),
    default_target: True
