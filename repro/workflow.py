"""What the pipeline checks before any job starts, as one function of the config.

``rules/common.smk`` calls :func:`check_start` when Snakemake reads the workflow and turns a
:class:`StartProblem` into Snakemake's ``WorkflowError``, so a misconfigured run stops before it
trains anything, with the config field (or the spec's file and field) in the message. Tests call
it in-process; one end-to-end test per kind of problem checks the Snakefile's wiring.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from repro.claims import (
    Spec,
    SpecError,
    UnknownClaimError,
    load_all,
    registration_problems,
    resolve_ids,
)
from repro.fashion_mnist import FASHION_MNIST_SUBDIR, require_dataset
from repro.pipeline import seeds_budget_problem


class StartProblem(ValueError):
    """A problem with the config or the specs that stops the pipeline before any job."""


def runs_at(specs: Mapping[str, Spec], claims: list[str], scale: str) -> list[tuple[str, Any]]:
    """(claim, variant) of every run of ``claims`` at ``scale``: primary runs, then variants."""
    return [(c, None) for c in claims] + [
        (c, v) for c in claims for v in specs[c].variants_at(scale)
    ]


def check_start(
    config: Mapping[str, Any], claims_dir: str | Path, report_mode: bool = False
) -> tuple[dict[str, Spec], list[str]]:
    """Validate the specs and the config; return (specs by id, the selected claim ids).

    In order: every spec in ``claims_dir`` (file and field named on error); the ``claims``
    selection; pre-registration against ``claims_dir/checks.lock``; a ``seeds`` override far
    beyond the scale; ``results_dir`` / ``figures_dir`` (or a folder above them) being a file; a
    ``device=cuda`` that torch cannot see; the data sets the selected runs need at ``scale``
    under ``data_dir``. ``report_mode`` (``snakemake --report``) checks only what a report
    needs: the specs and the folders.
    """
    claims_dir, scale = Path(claims_dir), config["scale"]
    try:
        specs = load_all(claims_dir)
        if not specs:
            raise SpecError(claims_dir, "claims_dir", "holds no claim spec (*.yaml)")
        chosen = config["claims"]
        selected = list(specs) if chosen == "all" else resolve_ids(chosen, specs)
    except (SpecError, UnknownClaimError) as e:
        raise StartProblem(str(e)) from None
    if not report_mode:
        lock = claims_dir / "checks.lock"
        problems = registration_problems({c: specs[c] for c in selected}, lock)
        if problems:
            raise StartProblem(
                f"pre-registration: {len(problems)} spec(s) disagree with {lock}:\n"
                + "\n".join(problems)
            )
        if config["seeds"] is not None:
            for claim in selected:
                too_many = seeds_budget_problem(
                    specs[claim], scale, config["seeds"], config["results_dir"]
                )
                if too_many:
                    raise StartProblem(too_many)
    for name in ("results_dir", "figures_dir"):
        # the folder itself, or any folder above it, being a file
        for p in (Path(config[name]), *Path(config[name]).parents):
            if p.exists() and not p.is_dir():
                raise StartProblem(f"config field '{name}': {str(p)!r} exists and is not a folder")
    if config["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise StartProblem(
                "config field 'device': 'cuda' was asked for but torch sees no CUDA device "
                "(torch.cuda.is_available() is False); use device=auto or device=cpu"
            )
    if not report_mode:
        needed = {
            specs[c].params(scale, v).get("dataset") for c, v in runs_at(specs, selected, scale)
        }
        for dataset in sorted(d for d in needed if d):
            try:
                require_dataset(dataset, Path(config["data_dir"]) / FASHION_MNIST_SUBDIR)
            except FileNotFoundError as e:
                # the jobs read the data from GAN_CLAIMS_DATA_DIR, which rules/common.smk sets
                # from the config's data_dir
                raise StartProblem(
                    f"{e}. Under Snakemake, the data directory is the config field 'data_dir' "
                    f"(now {config['data_dir']!r}; --config data_dir=...)"
                ) from None
    return specs, selected
