# The per-scale report: REPORT.md (provenance header + claims table) and claims.csv.


rule report:
    input:
        summaries=report_inputs,
        figures=report_figures,
    output:
        md=report(
            f"{RESULTS}/{{scale}}/REPORT.md",
            caption="../report/report_md.rst",
            category="Report",
            labels={"content": "REPORT.md"},
        ),
        csv=report(
            f"{RESULTS}/{{scale}}/claims.csv",
            caption="../report/claims_table.rst",
            category="Report",
            labels={"content": "claims table"},
        ),
    log:
        f"{RESULTS}/{{scale}}/logs/report.log",
    params:
        python=PYTHON,
        out=report_dir,
        figures=scale_figures_dir,
        claims_dir=str(CLAIMS_DIR),
    threads: 1
    conda:
        "envs/gan-claims.yaml"
    shell:
        "{params.python} -m repro.pipeline report --scale {wildcards.scale} --out {params.out} "
        "--figures {params.figures} --claims-dir {params.claims_dir} {input.summaries} > {log} 2>&1"
