"""PacGAN Table 1 (Lin et al. 2018): GAN vs PacGAN2/3/4 with PacGAN's own networks and optimiser.

PacGAN's BN-ReLU G and maxout D (``repro.experiments.family.mixtures``), the tables and figures
of ``family.mixture_tables``.
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

PACGAN_METHODS = ("gan", "pacgan2", "pacgan3", "pacgan4")


def run_pacgan(params: Mapping[str, Any], seeds: Sequence[int], device: Any) -> Tables:
    """PacGAN Table 1 with PacGAN's networks: GAN vs PacGAN2/3/4 on both data sets."""
    return run_methods(params, seeds, device, PACGAN_METHODS)


PACGAN_PARAMS = tuple(
    p
    for p in MIXTURE_PARAMS
    if p not in ("wgan_lr", "wgan_gp_lr", "mbd_kernels", "mbd_kernel_dim", "noise_schedule")
)

EXPERIMENT = Experiment(
    run=run_pacgan,
    params=PACGAN_PARAMS,
    metrics=metric_names(PACGAN_METHODS),
    figures={"samples": fig_samples, "bars": fig_bars},
    doc="PacGAN Table 1 (Lin et al. 2018): GAN vs PacGAN2/3/4, PacGAN's own architecture.",
)
