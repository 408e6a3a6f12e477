"""The experiments behind the claims, by name.

One module per claim: ``claims/<id>.yaml`` is run by ``repro/experiments/<id with - as _>.py``,
which defines a module-level ``EXPERIMENT = Experiment(...)``, and the spec's ``experiment:``
field is that module name (``experiment: optimal_discriminator``). The registry is derived from
the module names (``names``, ``get``); a module is imported only when asked, so listing or
validating specs stays cheap. Science shared by a family of claims lives in
``repro/experiments/family/`` (no Experiment there).

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
import pkgutil
from collections.abc import Callable, Mapping, Sequence
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


def check_names(given: Sequence[str], valid: Mapping[str, Any], what: str) -> list[str]:
    """``given`` as a list; a ValueError listing the valid names if one is unknown."""
    unknown = [g for g in given if g not in valid]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; valid: {', '.join(valid)}")
    return list(given)


ATTRIBUTE = "EXPERIMENT"  # the module-level name of a claim module's Experiment
FAMILY = "family"  # the package of shared science: not an experiment


def _modules() -> list[str]:
    """The claim modules: every module directly in this package but ``family`` and ``_*``."""
    return sorted(
        m.name
        for m in pkgutil.iter_modules(__path__)
        if m.name != FAMILY and not m.name.startswith("_")
    )


# Extra experiments from the environment, "name=module:attr" separated by commas. Tests use it to
# put a deliberately failing experiment through the real pipeline (which runs in subprocesses).
EXTRA_ENV = "GAN_CLAIMS_EXTRA_EXPERIMENTS"


def _table() -> dict[str, str]:
    """Experiment name -> ``"module:attribute"``: the claim modules, then the environment's."""
    table = {m: f"{__name__}.{m}:{ATTRIBUTE}" for m in _modules()}
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
