"""VEEGAN Table 1 / PacGAN Table 1: modes captured on ring-8 and grid-25 by every method.

Every method (GAN, its remedies, WGAN, WGAN-GP) under one architecture and one budget of
generator steps on the ring (8 modes) and the grid (25 modes); VEEGAN / PacGAN protocol
(``repro.metrics.mode_metrics``, 2,500 samples) plus the exact W1 to data. The science is in
``repro.experiments.family.mixtures``, the tables and figures in ``family.mixture_tables``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from repro.experiments import Experiment, Tables
from repro.experiments.family.mixture_tables import (
    MIXTURE_PARAMS,
    fig_bars,
    fig_samples,
    metric_names,
    run_methods,
)
from repro.experiments.family.mixtures import METHODS

ALL_METHODS = tuple(METHODS)


def run_mode_collapse(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """VEEGAN / PacGAN Table 1 protocol for every method in params["methods"] on both data sets."""
    return run_methods(params, seeds, device, ALL_METHODS)


EXPERIMENT = Experiment(
    run=run_mode_collapse,
    params=MIXTURE_PARAMS,
    metrics=metric_names(ALL_METHODS),
    figures={"samples": fig_samples, "bars": fig_bars},
    doc="VEEGAN Table 1 / PacGAN Table 1: modes captured on ring-8 and grid-25, every remedy.",
)
