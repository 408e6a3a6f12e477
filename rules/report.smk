# The per-scale report: REPORT.md (provenance header + claims table), claims.csv, history.csv.


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
        out=report_dir,
        results=scale_results_dir,
        figures=scale_figures_dir,
        claims_dir=str(CLAIMS_DIR),
    threads: 1
    conda:
        "envs/gan-claims.yaml"
    # the report covers every claim: it reads every current result under results/{scale}, not
    # only the runs this invocation built; claims without one show "not run"
    shell:
        "python -m repro.pipeline report --scale {wildcards.scale} --out {params.out} "
        "--results {params.results} --figures {params.figures} "
        "--claims-dir {params.claims_dir} > {log} 2>&1"
