"""Count what a training step would cost on a GPU, without a GPU (issue 15, item 6).

Run the step with its model and data on ``device="meta"`` under ``Counting``: every op that
touches a meta tensor is a future device kernel; every op on CPU tensors alone is host work;
``_to_copy`` / ``copy_`` between the CPU and meta is a host<->device copy; reading a device value
on the host (``.item()``, ``.tolist()``, ``.cpu()``, ``bool(t)``) is a sync. Meta tensors hold
no data, so a sync or a copy to the host returns zeros here (counted, and the code goes on).
FLOPs come from ``torch.utils.flop_counter``'s formulas, except the convolution backward, whose
formula ignores ``groups`` (it over-counts a grouped conv ~S-fold): we count it as the forward
conv's FLOPs per requested gradient (input, weight), from the weight's real (C_out, C_in/g, k, k)
shape.

Graph-captured steps: ops issued while a ``repro.engine.graph.StaticStep`` runs its step are
also counted in ``graph_kernels`` / ``graph_host_ops`` (on CUDA they are one graph replay, not
eager launches and Python), host<->device copies and syncs there in ``graph_copies`` /
``graph_syncs`` (a capture would record stale host values or fail), and ``replays`` counts the
static steps run under the mode.
"""

from __future__ import annotations

from collections import Counter as _Counter
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import conv_flop_count, flop_registry

from repro.engine import graph

aten = torch.ops.aten

SYNC_OPS = {aten._local_scalar_dense.default, aten.is_nonzero.default, aten.item.default}
COPY_OPS = {aten._to_copy.default, aten.copy_.default}
FREE_OPS = {  # shape-only ops that launch nothing on a GPU
    aten.view.default,
    aten._unsafe_view.default,
    aten.t.default,
    aten.transpose.int,
    aten.permute.default,
    aten.expand.default,
    aten.unsqueeze.default,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.squeeze.default,
    aten.select.int,
    aten.slice.Tensor,
    aten.alias.default,
    aten.detach.default,
    aten.as_strided.default,
    aten.reshape.default,
    aten.split.Tensor,
    aten.unbind.int,
    aten.lift_fresh.default,
    aten.empty.memory_format,
    aten.empty_strided.default,
}


def _devices(args, kwargs, out) -> set[str]:
    flat, _ = tree_flatten((args, kwargs, out))
    return {t.device.type for t in flat if isinstance(t, torch.Tensor)}


def _conv_backward_flops(args, out) -> int:
    grad_out, x, w = args[0], args[1], args[2]
    transposed, mask = args[7], args[-1]  # (grad_out, x, w, bias_sizes, stride, padding,
    # dilation, transposed, output_padding, groups, output_mask)
    fwd = conv_flop_count(x.shape, w.shape, grad_out.shape, transposed=transposed)
    return fwd * (int(bool(mask[0])) + int(bool(mask[1])))


@dataclass
class Counts:
    kernels: int = 0
    host_ops: int = 0
    copies: int = 0
    syncs: int = 0
    flops: int = 0
    by_op: _Counter = field(default_factory=_Counter)
    graph_kernels: int = 0  # of ``kernels``: inside a StaticStep (a CUDA graph replay)
    graph_host_ops: int = 0  # of ``host_ops``: inside a StaticStep (skipped by a replay)
    replays: int = 0  # StaticStep calls (one graph launch each on CUDA)
    graph_syncs: int = 0  # of ``syncs``: inside a StaticStep
    graph_copies: int = 0  # of ``copies``: inside a StaticStep

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.kernels - other.kernels,
            self.host_ops - other.host_ops,
            self.copies - other.copies,
            self.syncs - other.syncs,
            self.flops - other.flops,
            self.by_op - other.by_op,
            self.graph_kernels - other.graph_kernels,
            self.graph_host_ops - other.graph_host_ops,
            self.replays - other.replays,
            self.graph_syncs - other.graph_syncs,
            self.graph_copies - other.graph_copies,
        )


class Counting(TorchDispatchMode):
    """Counts kernels (meta ops), host ops (CPU ops), copies, syncs and FLOPs; see module doc."""

    def __init__(self):
        super().__init__()
        self.counts = Counts()

    def __enter__(self):
        self._calls0 = graph.static_calls
        return super().__enter__()

    def __exit__(self, *exc):
        self.counts.replays += graph.static_calls - self._calls0
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        c = self.counts
        flat_in, _ = tree_flatten((args, kwargs))
        in_dev = {t.device.type for t in flat_in if isinstance(t, torch.Tensor)}
        if func in SYNC_OPS and "meta" in in_dev:
            c.syncs += 1
            c.graph_syncs += graph.in_static_step()
            c.by_op["sync:" + str(func)] += 1
            x = next(t for t in flat_in if isinstance(t, torch.Tensor))
            return False if x.dtype == torch.bool else 0  # no data on meta: go on with zero
        if func in COPY_OPS:
            target = kwargs.get("device")
            out_dev = {target.type} if target is not None else set()
            if func is aten.copy_.default:
                out_dev = {args[0].device.type}
            if "meta" in in_dev | out_dev and "cpu" in in_dev | out_dev:
                c.copies += 1
                c.graph_copies += graph.in_static_step()
                c.by_op["copy:" + str(func)] += 1
                if "cpu" in out_dev and "meta" in in_dev:  # device -> host: a sync as well
                    c.syncs += 1
                    c.graph_syncs += graph.in_static_step()
                    src = args[1] if func is aten.copy_.default else args[0]
                    return self._host_zeros(func, args, kwargs, src)
                return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if func in FREE_OPS:
            return out
        devs = in_dev | _devices((), {}, out)
        if "meta" in devs:
            c.kernels += 1
            c.graph_kernels += graph.in_static_step()
            c.by_op[str(func)] += 1
            packet = func._overloadpacket
            if func == aten.convolution_backward.default:
                c.flops += _conv_backward_flops(args, out)
            elif packet in flop_registry:
                c.flops += flop_registry[packet](*args, **kwargs, out_val=out)
        elif "cpu" in devs:
            c.host_ops += 1
            c.graph_host_ops += graph.in_static_step()
            c.by_op["host:" + str(func)] += 1
        return out

    @staticmethod
    def _host_zeros(func, args, kwargs, src: torch.Tensor):
        if func is aten.copy_.default:
            return args[0].zero_()
        dtype = kwargs.get("dtype") or src.dtype
        return torch.zeros(src.shape, dtype=dtype)
