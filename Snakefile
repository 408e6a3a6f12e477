# gan-claims: every claim in claims/ as a pre-registered experiment -> verdict, tables, figures, report.
#
#   snakemake --cores all                          # default (quick) scale
#   snakemake --cores all --config scale=full      # paper scale (one GPU)
#   snakemake --report results/quick/report.html   # Snakemake's HTML report
from snakemake.utils import min_version, validate

min_version("8.20")


configfile: "config/config.yaml"


validate(config, "config/config.schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/claims.smk"
include: "rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
