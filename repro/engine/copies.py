"""Copies: conditions x seeds, one row per batched copy, per-copy settings as columns.

An experiment that compares conditions (pairs of distributions, thetas, learning rates, clip
bounds, objectives...) over S seeds trains every (condition, seed) as one copy of ONE batched
model. ``Copies`` is the table that says which copy is which: row c of ``table`` is copy c, its
columns are the condition names plus ``seed``. The order is condition-major, seed fastest:

    copy = ((i_1 * n_2 + i_2) * n_3 + ...) * S + s

which is the order every experiment of the suite used (e.g. ``pair * S + seed``), so moving an
experiment onto ``Copies`` keeps its models bit-identical.

Example:
    >>> c = Copies.grid([0, 1], pair=["shift", "scale"])
    >>> c.n, c.seeds
    (4, [0, 1, 0, 1])
    >>> c.table.to_dict("list")
    {'pair': ['shift', 'shift', 'scale', 'scale'], 'seed': [0, 1, 0, 1]}
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch


@dataclass(frozen=True)
class Copies:
    """The copies of a batched run: ``table`` has one row per copy (conditions..., seed)."""

    table: pd.DataFrame

    @classmethod
    def grid(cls, seeds: Sequence[int], **conditions: Sequence[Any]) -> Copies:
        """Every combination of the conditions (in the order given) times every seed."""
        names = list(conditions)
        rows = [
            (*combo, int(s))
            for combo in itertools.product(*(list(v) for v in conditions.values()))
            for s in seeds
        ]
        return cls(pd.DataFrame(rows, columns=[*names, "seed"]))

    @property
    def n(self) -> int:
        """C, the number of copies."""
        return len(self.table)

    @property
    def seeds(self) -> list[int]:
        """Each copy's seed, in copy order: what a batched model is initialised from."""
        return [int(s) for s in self.table["seed"]]

    @property
    def conditions(self) -> list[str]:
        return [c for c in self.table.columns if c != "seed"]

    @property
    def unique_seeds(self) -> list[int]:
        return list(dict.fromkeys(self.seeds))

    def column(self, name: str, device: Any = None, dtype: torch.dtype = torch.float32):
        """A numeric per-copy setting as a (C,) tensor (e.g. lr, clip bound, noise std)."""
        return torch.as_tensor(self.table[name].to_numpy().copy(), dtype=dtype, device=device)

    def view(self, values: torch.Tensor | np.ndarray):
        """(C, ...) -> (n_1, ..., n_k, S, ...): one axis per condition of a ``grid``, then seeds."""
        sizes = [self.table[c].nunique() for c in self.conditions]
        s = len(self.unique_seeds)
        return values.reshape(*sizes, s, *values.shape[1:])

    def frame(self, **values: Any) -> pd.DataFrame:
        """The copy table with one more column per keyword: (C,) tensors / arrays / lists."""
        out = self.table.copy()
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                v = v.detach().double().cpu().numpy()
            out[k] = np.asarray(v)
        return out
