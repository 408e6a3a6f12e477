"""The experiments behind the claims, by name.

A claim spec names its experiment (``experiment: optimal_discriminator``). Each experiment
module defines one :class:`Experiment`; the registry below maps the name a spec uses to
``"module:attribute"`` and imports it only when asked, so listing or validating specs stays cheap.

Contract of ``Experiment.run(params, seeds, device) -> dict[str, DataFrame]``:

- ``params``: the scale's ``params`` mapping from the spec, already checked against
  ``Experiment.params`` (every name required, no unknown names).
- ``seeds``: the integer seeds; all of them are trained together as one batched model where the
  experiment trains anything, and every random draw comes from an explicit generator.
- ``device``: ``torch.device`` to compute on.
- returns tidy tables by name. ``"seeds"`` is required: one row per seed, a ``seed`` column and
  one float column per name in ``Experiment.metrics`` (the checks in a spec refer to these).
  An optional ``"setup"`` table (columns ``item``, ``value``; e.g. ``data``, ``model``) says what
  the run used, as resolved at run time; the report prints it in the claim's section.
  Any other table (curves, grids) is free-form and is handed to the figure functions.

Contract of a figure function: ``fig(tables, params, reported) -> matplotlib.figure.Figure``,
reading only the tables (never training). The pipeline saves it as PNG and PDF.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

Tables = dict[str, pd.DataFrame]
RunFn = Callable[[Mapping[str, Any], list[int], Any], Tables]
FigureFn = Callable[[Tables, Mapping[str, Any], Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Experiment:
    """One experiment: how to run it, what it measures, what it draws."""

    run: RunFn
    params: tuple[str, ...]
    metrics: tuple[str, ...]
    figures: Mapping[str, FigureFn] = field(default_factory=dict)
    doc: str = ""
    # metrics that are positive by nature (counts, ratios): their interval over seeds is taken on
    # the log scale when the plain t-interval would reach zero (repro.report.metric_table)
    positive_metrics: tuple[str, ...] = ()


def setup_table(**items: str) -> pd.DataFrame:
    """The optional ``setup`` table: what a run used, e.g. ``setup_table(data=..., model=...)``."""
    return pd.DataFrame({"item": list(items), "value": [str(v) for v in items.values()]})


# experiment name (as written in a spec) -> "module:attribute" holding an Experiment
REGISTRY: dict[str, str] = {
    # issue: pipeline foundation (analytic claims)
    "optimal_discriminator": "repro.experiments.discriminator:OPTIMAL_DISCRIMINATOR",
    "js_disjoint_supports": "repro.experiments.supports:JS_DISJOINT_SUPPORTS",
    "fenchel_conjugates": "repro.experiments.fgan:FENCHEL_CONJUGATES",
    # issue: batched engine + gradient claims
    "d_perfect": "repro.experiments.gradients:D_PERFECT",
    "vanishing_gradients": "repro.experiments.gradients:VANISHING_GRADIENTS",
    "minus_log_d_instability": "repro.experiments.gradients:MINUS_LOG_D_INSTABILITY",
    "saturation": "repro.experiments.saturation:SATURATION",
    "minus_log_d_is_kl_minus_2js": "repro.experiments.saturation:KL_MINUS_2JS",
    # issue 8, part B: Dirac-GAN convergence and the Wasserstein critic
    "dirac_gan": "repro.experiments.dirac:DIRAC_GAN",
    "wgan_critic_vs_discriminator": "repro.experiments.critic:WGAN_CRITIC_VS_DISCRIMINATOR",
    "critic_tracks_quality": "repro.experiments.critic:CRITIC_TRACKS_QUALITY",
    "clipping_gradients": "repro.experiments.clipping:CLIPPING_GRADIENTS",
    # issue 8 (part A): instance noise
    "noise_overlap": "repro.experiments.noise:NOISE_OVERLAP",
    "noise_bound": "repro.experiments.noise:NOISE_BOUND",
    "annealed_noise": "repro.experiments.noise:ANNEALED_NOISE",
    # issue 7 (part B): f-divergence fits and stacked-digit modes
    "fgan_gaussian_fit": "repro.experiments.fgan_fit:FGAN_GAUSSIAN_FIT",
    "kl_covers_reverse_kl_seeks": "repro.experiments.fgan_fit:KL_COVERS_REVERSE_KL_SEEKS",
    "stacked_digits_modes": "repro.experiments.stacked_digits_modes:EXPERIMENT",
    # issue 7 part A: mode counts on mixtures and the remedies
    "mode_collapse_mixtures": "repro.experiments.mode_collapse_mixtures:EXPERIMENT",
    "pacgan_table1": "repro.experiments.pacgan_table1:EXPERIMENT",
    "mode_rotation": "repro.experiments.mode_rotation:EXPERIMENT",
}

# Extra experiments from the environment, "name=module:attr" separated by commas. Tests use it to
# put a deliberately failing experiment through the real pipeline (which runs in subprocesses).
EXTRA_ENV = "GAN_CLAIMS_EXTRA_EXPERIMENTS"


def _table() -> dict[str, str]:
    table = dict(REGISTRY)
    for entry in filter(None, os.environ.get(EXTRA_ENV, "").split(",")):
        name, _, target = entry.partition("=")
        table[name.strip()] = target.strip()
    return table


def names() -> list[str]:
    """Every experiment name a spec may use."""
    return sorted(_table())


def get(name: str) -> Experiment:
    """The experiment called ``name``; a ``KeyError`` that lists the valid names otherwise."""
    table = _table()
    if name not in table:
        raise KeyError(f"unknown experiment {name!r}; valid: {', '.join(sorted(table))}")
    module_name, attr = table[name].split(":")
    experiment = getattr(importlib.import_module(module_name), attr)
    if not isinstance(experiment, Experiment):
        raise TypeError(f"{table[name]} is not an Experiment")
    return experiment
