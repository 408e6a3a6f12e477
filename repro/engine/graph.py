"""A training step on static buffers: captured once as a CUDA graph and replayed, eager elsewhere.

A CUDA graph records the kernels of one step with their memory addresses and replays them with
one launch, so a step of a few hundred small kernels costs ~4 us per kernel on the GPU instead of
~10 us per kernel of Python and launch overhead on the host (../shared/BUDGET.md). The price is
a contract, which ``StaticStep`` makes explicit and which holds on every device:

- the step function takes no arguments and returns nothing: it READS its inputs only from the
  static buffers it was given (batch, z, the step counter, lr tensors: ``StaticStep.inputs``) and
  from module parameters and optimiser state, and WRITES its outputs into static buffers (e.g.
  ``out["loss"].copy_(loss)``), never by rebinding a Python name;
- new inputs are COPIED into the buffers (``step(x=batch)`` does ``inputs["x"].copy_(batch)``);
- no host read of a device value inside the step (no ``.item()``, ``.cpu()``, ``if t:``), no
  Python branching on step-dependent host state (a replay re-runs the recorded kernels, not the
  Python), learning rates from capturable optimisers (``optim.make(..., capturable=True)``),
  random numbers from ``repro.engine.draw`` keyed by a step-counter buffer.

On CUDA the first ``warmup`` calls run eagerly on a side stream (lazy state such as Adam's
moments is allocated there), the next call captures the step once with ``torch.cuda.graph`` and
every call from then on replays it. On the CPU (and on ``meta``, where the budget counts a step)
every call runs the same function eagerly on the same buffers, so the CPU tests of the contract
(tests/test_graph.py: static equals plain eager bit for bit; buffers and parameters keep their
storage; no sync) cover what the GPU replays.

The one switch: ``use_graphs(device)``, True on CUDA. The experiments that train through
``fit`` / ``gan`` ask it once and then use static streams, capturable optimisers and
``graphs=...``. The environment variable ``REPRO_GRAPHS`` overrides it: "0" keeps every update
eager (also on CUDA), "1" takes the static path on any device (on the CPU it runs eagerly on the
static buffers and must give the eager numbers bit for bit: tests/test_graph_experiments.py).

Example (a D step on a static batch, a device step counter):
    >>> x = torch.zeros(4, 8, 2)                       # (C, B, d) batch buffer
    >>> step = torch.zeros((), dtype=torch.int64)      # read by draw(seeds, "data", step, ...)
    >>> out = torch.zeros(4)
    >>> def d_step():
    ...     out.copy_(update(opt_d, d_loss(x, step)))  # engine.update: backward + opt step
    ...     step.add_(1)
    >>> runner = StaticStep(d_step, {"x": x, "step": step})
    >>> runner(x=next_batch)                            # copy in, then run / capture / replay
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

GRAPHS_ENV = "REPRO_GRAPHS"  # "0": never capture; "1": the static path on every device

# For the budget (bench/counting.py): how many static steps have run in this process, and
# whether one is running now (its kernels are a graph replay's on CUDA, not eager launches).
static_calls = 0
_depth = 0


def use_graphs(device: torch.device | str | None) -> bool:
    """Whether an experiment on ``device`` runs its updates as static steps (CUDA graphs).

    True when ``device`` is CUDA, unless ``$REPRO_GRAPHS`` is "0"; ``REPRO_GRAPHS=1`` forces the
    static path on any device (eager on the same static buffers off CUDA, the CPU check that it
    reproduces the eager numbers). Any other value of the variable -> ValueError.
    """
    flag = os.environ.get(GRAPHS_ENV, "").strip()
    if flag not in ("", "0", "1"):
        raise ValueError(f"${GRAPHS_ENV} must be 0 or 1 (or unset), got {flag!r}")
    if flag:
        return flag == "1"
    return device is not None and torch.device(device).type == "cuda"


def in_static_step() -> bool:
    """True while a ``StaticStep`` runs its step (eagerly, in warm-up, capture or replay)."""
    return _depth > 0


class StaticStep:
    """Runs ``fn`` (no arguments) on static buffers; CUDA: warm-up, capture once, replay.

    Args:
        fn: the step; reads ``inputs`` (and parameters, optimiser state), writes static outputs.
        inputs: name -> static tensor that a call may overwrite with ``copy_``.
        warmup: eager calls on a side stream before the capture (CUDA only; >= 1 so that lazy
            optimiser state exists before it is recorded).
        capture: False keeps CUDA eager too (a debugging switch; the contract is unchanged).
        device: the step's device when ``inputs`` is empty (else the inputs' device decides).

    Attributes:
        graph: the captured ``torch.cuda.CUDAGraph`` (None until captured, always on the CPU).
        calls: how many steps have run (eager, warm-up and replays alike).
    """

    def __init__(
        self,
        fn: Callable[[], None],
        inputs: dict[str, torch.Tensor] | None = None,
        *,
        warmup: int = 3,
        capture: bool = True,
        device: torch.device | str | None = None,
    ):
        self.fn = fn
        self.inputs = dict(inputs or {})
        devices = {t.device.type for t in self.inputs.values()}
        if device is not None:
            devices.add(torch.device(device).type)
        self.cuda = capture and devices == {"cuda"}
        self.warmup = max(1, int(warmup))
        self.graph = None
        self.calls = 0

    def set_inputs(self, **values: torch.Tensor) -> None:
        """Copy new values into the static input buffers (shapes must match: no rebinding)."""
        for name, value in values.items():
            if name not in self.inputs:
                raise KeyError(f"no static input {name!r}; have {', '.join(sorted(self.inputs))}")
            buf = self.inputs[name]
            if tuple(value.shape) != tuple(buf.shape):
                raise ValueError(
                    f"input {name!r} has shape {tuple(value.shape)}, its buffer {tuple(buf.shape)}"
                )
            buf.copy_(value, non_blocking=True)

    def __call__(self, **values: torch.Tensor) -> None:
        """One step: copy ``values`` into the buffers, then run (eager / warm-up), capture and
        replay (CUDA, once), or replay."""
        global static_calls, _depth
        self.set_inputs(**values)
        self.calls += 1
        static_calls += 1
        _depth += 1
        try:
            if not self.cuda:
                self.fn()
            elif self.graph is not None:
                self.graph.replay()
            elif self.calls <= self.warmup:
                self._warm()
            else:
                self._capture()
                self.graph.replay()  # capturing records the kernels; this call's step runs here
        finally:
            _depth -= 1

    # ---- CUDA only --------------------------------------------------------------------------

    def _warm(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.fn()
        torch.cuda.current_stream().wait_stream(side)

    def _capture(self) -> None:
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.fn()
