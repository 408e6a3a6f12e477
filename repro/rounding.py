"""Tools to see how far a result depends on floating-point rounding (issue 13).

Two runs that differ only in how the CPU's kernels round (another processor, another batch
layout, another thread count) should agree to the last digits. Whether they do depends on how
well-conditioned each number is. :class:`LayoutNoise` makes the rounding differ on purpose: it
perturbs every matmul and convolution output by a relative amount of a few units in the last
place, fixed by the operands' shapes and a ``salt``. So a batched (S = 2) and a separate (S = 1)
run, or two salts of the same run, round differently on every machine, as different kernels may
on different machines (MKL and oneDNN pick their kernels by processor and shape).

Used by tests/test_equivalence.py and bench/cross_machine.py; never in an experiment.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# the ops whose kernels CPU libraries choose by processor and shape
PERTURBED = (
    torch.ops.aten.mm.default,
    torch.ops.aten.addmm.default,
    torch.ops.aten.bmm.default,
    torch.ops.aten.baddbmm.default,
    torch.ops.aten.convolution.default,
)


def ulps(n: float, dtype: torch.dtype) -> float:
    """``n`` units of relative rounding of ``dtype`` (float32: 2**-23, float64: 2**-52)."""
    return n * torch.finfo(dtype).eps


class LayoutNoise(TorchDispatchMode):
    """Multiply each matmul / conv output by ``1 + rel * k / 3`` with k in {-3..3} fixed by
    (``salt``, the operands' shapes): a deterministic stand-in for another kernel's rounding.

    Example:
        >>> with LayoutNoise(rel=ulps(4, torch.float32), salt=1):
        ...     out = experiment.run(params, seeds, device)
    """

    def __init__(self, rel: float, salt: int = 0):
        super().__init__()
        self.rel, self.salt = float(rel), int(salt)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in PERTURBED and out.is_floating_point():
            shapes = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
            k = hash((self.salt, shapes)) % 7 - 3  # tuples of ints hash alike in every process
            with torch.no_grad():
                out = out * (1 + self.rel * k / 3)
        return out


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Run with ``dtype`` as torch's default: every experiment builds its tensors in it."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
