# One claim: run the experiment (all seeds at once), then the verdict and tables, then figures.
# Computing and drawing are separate rules, so editing a figure never retrains.


rule run_claim:
    input:
        spec=spec_path,
        retry=retry_if_failed,
        # the Arjovsky-Bottou claims: the GAN run they share (rules/shared.smk); [] for others
        shared=shared_gan_input,
    output:
        record=f"{RESULTS}/{{scale}}/{{claim}}/run.json",
        seeds=f"{RESULTS}/{{scale}}/{{claim}}/seeds.csv",
    log:
        f"{RESULTS}/{{scale}}/{{claim}}/logs/run.log",
    params:
        out=claim_results_dir,
        device=config["device"],
        seeds=seeds_arg,
        variant=variant_arg,
        figures=claim_figures_dir,
        claims_dir=str(CLAIMS_DIR),
    threads: config["threads"]
    conda:
        "envs/gan-claims.yaml"
    # the log also goes to the terminal (one line per logging interval, prefixed by the run id)
    shell:
        "GAN_CLAIMS_SHARED_GAN='{input.shared}' "
        "python -m repro.pipeline run {input.spec} --scale {wildcards.scale} "
        "--out {params.out} --device {params.device} {params.seeds} {params.variant} "
        "--threads {threads} --figures {params.figures} --claims-dir {params.claims_dir} "
        "2>&1 | tee {log}"


rule summarise_claim:
    input:
        spec=spec_path,
        record=rules.run_claim.output.record,
        stale=retry_if_stale,
    output:
        summary=f"{RESULTS}/{{scale}}/{{claim}}/summary.json",
        csv=report(
            f"{RESULTS}/{{scale}}/{{claim}}/summary.csv",
            caption="../report/claim_table.rst",
            category="Claims",
            subcategory="{claim}",
            labels={"claim": "{claim}", "content": "metrics over seeds"},
        ),
        md=f"{RESULTS}/{{scale}}/{{claim}}/summary.md",
        tex=f"{RESULTS}/{{scale}}/{{claim}}/summary.tex",
    log:
        f"{RESULTS}/{{scale}}/{{claim}}/logs/summarise.log",
    params:
        # shown in the HTML report: the caption of the claim's metric table lists them
        departures=claim_departures,
    threads: 1
    conda:
        "envs/gan-claims.yaml"
    shell:
        "python -m repro.pipeline summarise {input.spec} {input.record} > {log} 2>&1"


rule plot_figure:
    input:
        spec=spec_path,
        record=rules.run_claim.output.record,
        stale=retry_if_stale,
    output:
        png=report(
            f"{FIGURES}/{{scale}}/{{claim}}/{{figure}}.png",
            caption="../report/figure.rst",
            category="Claims",
            subcategory="{claim}",
            labels={"claim": "{claim}", "content": "figure {figure}"},
        ),
        pdf=f"{FIGURES}/{{scale}}/{{claim}}/{{figure}}.pdf",
    log:
        f"{RESULTS}/{{scale}}/{{claim}}/logs/plot_{{figure}}.log",
    params:
        caption=figure_caption,
    threads: 1
    conda:
        "envs/gan-claims.yaml"
    shell:
        "python -m repro.pipeline plot {input.spec} {input.record} "
        "--figure {wildcards.figure} --out {output.png} > {log} 2>&1"
