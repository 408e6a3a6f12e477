# Runs shared between claims. One today: the DCGAN that the Arjovsky & Bottou claims
# (d-perfect, vanishing-gradients, minus-log-d-instability and their variants) freeze and analyse
# is trained once per scale and per distinct (GAN params, seeds, device setting, torch version,
# code of the GAN run), not once per claim job: its file is an input of those claims' run_claim
# jobs, which read it through $GAN_CLAIMS_SHARED_GAN (repro.experiments.family.shared_runs).
# A variant that changes only the fresh-D settings reads the same file as its claim. The file is
# temp(): deleted once every job that reads it has run, and not rebuilt while their records are
# current.
from repro.experiments.family.shared_runs import (
    ARJOVSKY_BOTTOU_USERS,
    SHARED_DIR,
    shared_gan_name,
)


def shared_gan_file(scale, run):
    """The shared GAN file ``run`` reads at ``scale``, or None (a claim that trains no such GAN)."""
    claim, variant = split_run(run)
    spec = SPECS[claim]
    if spec["experiment"] not in ARJOVSKY_BOTTOU_USERS:
        return None
    params, seeds = spec.params(scale, variant), spec.seeds(scale, config["seeds"])
    return f"{RESULTS}/{scale}/{SHARED_DIR}/{shared_gan_name(params, seeds, config['device'])}"


def shared_gan_input(wildcards):
    """run_claim's extra input: the shared GAN file, for the claims that read one."""
    path = shared_gan_file(wildcards.scale, wildcards.claim)
    return [] if path is None else [path]


def shared_gan_source(wildcards):
    """The run (claim or claim@variant) whose spec gives the params of this shared GAN file:
    the first of the scale's runs that reads it."""
    want = f"{RESULTS}/{wildcards.scale}/{SHARED_DIR}/arjovsky-bottou-{wildcards.key}.pt"
    for run in runs_at(wildcards.scale):
        if shared_gan_file(wildcards.scale, run) == want:
            return run
    raise WorkflowError(f"{want}: no {wildcards.scale} run reads this shared GAN file")


def shared_gan_variant_arg(wildcards):
    variant = split_run(shared_gan_source(wildcards))[1]
    return "" if variant is None else f"--variant {variant}"


rule arjovsky_bottou_gan:
    output:
        pt=temp(f"{RESULTS}/{{scale}}/{SHARED_DIR}/arjovsky-bottou-{{key}}.pt"),
    log:
        f"{RESULTS}/{{scale}}/{SHARED_DIR}/logs/arjovsky-bottou-{{key}}.log",
    wildcard_constraints:
        key="[0-9a-f]{16}",
    params:
        spec=lambda wc: str(SPECS[split_run(shared_gan_source(wc))[0]].path),
        variant=shared_gan_variant_arg,
        seeds=seeds_arg,
        device=config["device"],
    threads: config["threads"]
    conda:
        "envs/gan-claims.yaml"
    shell:
        "python -m repro.experiments.family.arjovsky_bottou_gan {params.spec} "
        "--scale {wildcards.scale} --out {output.pt} {params.variant} {params.seeds} "
        "--device {params.device} --threads {threads} 2>&1 | tee {log}"
