"""Optimisers over batched parameters, with a learning rate per copy: one registry.

Every parameter of a batched model has a leading copy dimension (C, ...). The learning rate is a
(C,) float64 tensor, so copies with different learning rates train in one model (issue 15:
per-copy settings as columns). The arithmetic mirrors ``torch.optim``'s single-tensor (CPU
default) implementations operation for operation, so with equal learning rates a step is
bit-identical to torch.optim on the CPU (tests/test_engine.py checks it):

    sgd            p <- p - lr g                                    (torch.optim.SGD)
    sgd-momentum   b <- m b + g (b_1 = g);  p <- p - lr b           (SGD(momentum=m))
    adam           Kingma & Ba 2015, Alg. 1, torch's eps placement   (torch.optim.Adam)
    rmsprop        v <- a v + (1 - a) g^2;  p <- p - lr g / (sqrt v + eps)   (RMSprop)

Capturable mode (``capturable=True``, or a 0-d tensor lr): the learning rate lives on the
parameters' device as a float64 tensor (0-d, or (C,) per copy) that ``set_lr`` overwrites IN
PLACE, and the step count is a device tensor (``step_t``) that ``step`` increments on the device,
so a step reads no host value and a CUDA graph captured once (``repro.engine.graph``) replays
with whatever lr a schedule wrote since. The arithmetic is the per-copy path's, with the bias
corrections computed on the device in the same float64: on the CPU a capturable optimiser is
bit-identical to the float-lr one (tests/test_engine.py). On CUDA, Adam with a 0-d lr runs
``torch._fused_adam_`` (one multi-tensor kernel; its rounding differs from the single-tensor
ops in the last bits) unless ``fused=False``. The host counter ``step_count`` advances only on
eager steps; a replayed graph advances ``step_t`` alone.

Example:
    >>> net = torch.nn.Linear(2, 1)
    >>> opt = make("adam", net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    >>> opt.set_lr(5e-4)  # a float or a (C,) tensor
    >>> cap = make("adam", net.parameters(), lr=1e-3, capturable=True)
    >>> cap.set_lr(5e-4)  # written into cap.lr, a 0-d float64 tensor: no re-capture
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


def _view(scale: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """A per-copy (C,) scale as (C, 1, ..., 1) against a parameter; a float passes through."""
    if isinstance(scale, torch.Tensor):
        return scale.view(-1, *[1] * (like.dim() - 1))
    return scale


class BatchedOptimizer:
    """Base: parameters, a learning rate, zero_grad / step; subclasses define ``_update``.

    A float lr (every copy alike) takes torch.optim's own fused ops with a Python scalar (one
    kernel per update, bit-identical by construction); a (C,) lr is kept on the parameters'
    device in float64 and turned into the per-copy step size once per step, on the device, with
    the same float64 arithmetic torch.optim does on the host (bit-identical per copy, tested).
    ``capturable``: see the module docstring (lr and step count as device tensors).
    """

    def __init__(
        self, params: Iterable[torch.Tensor], lr: float | torch.Tensor, capturable: bool = False
    ):
        self.params = [p for p in params]
        self.device = self.params[0].device if self.params else torch.device("cpu")
        self.dtype = self.params[0].dtype if self.params else torch.float32
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self.step_count = 0
        self.capturable = bool(capturable) or (isinstance(lr, torch.Tensor) and lr.dim() == 0)
        self.lr: float | torch.Tensor | None = None
        self.step_t: torch.Tensor | None = None
        if self.capturable:
            self.step_t = torch.zeros((), dtype=torch.float64, device=self.device)
        self.set_lr(lr)

    def set_lr(self, lr: float | torch.Tensor) -> None:
        """A float (every copy) or a (C,) tensor (copy c gets lr[c]). Capturable: written into
        the existing lr tensor in place (a new tensor only when its shape changes)."""
        if self.capturable:
            value = torch.as_tensor(lr, dtype=torch.float64)
            if isinstance(self.lr, torch.Tensor) and self.lr.shape == value.shape:
                self.lr.copy_(value)  # in place: a captured step reads the new value
            else:
                self.lr = value.to(self.device).clone()
            return
        if isinstance(lr, torch.Tensor) and lr.dim() > 0:
            self.lr = lr.detach().to(self.device, torch.float64).clone()
        else:
            self.lr = float(lr)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict[str, Any]:
        """Step count, lr and per-parameter state (tensors only: checkpointable)."""
        step = self.step_t.clone() if self.step_t is not None else torch.tensor(self.step_count)
        return {
            "step_count": step,
            "lr": torch.as_tensor(self.lr, dtype=torch.float64).clone(),
            "state": [{k: v.clone() for k, v in st.items()} for st in self.state],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["state"]) != len(self.params):
            raise ValueError(f"state for {len(state['state'])} parameters, have {len(self.params)}")
        self.step_count = int(state["step_count"])
        if self.step_t is not None:
            self.step_t.fill_(self.step_count)
        self.set_lr(state["lr"])
        self.state = [
            {k: v.to(p.device).clone() for k, v in st.items()}
            for p, st in zip(self.params, state["state"], strict=True)
        ]

    def _neg_step(self, t: int) -> float | torch.Tensor:
        """-lr: a float, or (C,) in the parameters' dtype (computed once per step)."""
        lr = self.lr
        return -lr if isinstance(lr, float) else (-lr).to(self.dtype)

    def _step_number(self) -> int | torch.Tensor:
        """t for this update: the host count, or (capturable) the device count, incremented."""
        self.step_count += 1
        if self.step_t is None:
            return self.step_count
        return self.step_t.add_(1)

    @torch.no_grad()
    def step(self) -> None:
        t = self._step_number()
        scale = self._neg_step(t)
        for p, state in zip(self.params, self.state, strict=True):
            if p.grad is not None:
                self._update(p, p.grad, state, t, _view(scale, p))

    def _update(self, p, g, state, t, neg) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(BatchedOptimizer):
    def __init__(self, params, lr, momentum: float = 0.0, capturable: bool = False):
        super().__init__(params, lr, capturable)
        self.momentum = float(momentum)

    def _update(self, p, g, state, t, neg):
        if self.momentum:
            buf = state.get("momentum")
            if buf is None:
                buf = state["momentum"] = g.detach().clone()
            else:
                buf.mul_(self.momentum).add_(g, alpha=1.0)
            g = buf
        if isinstance(neg, float):
            p.add_(g, alpha=neg)  # torch.optim.SGD's op
        else:
            p.addcmul_(g, neg)  # the same rounding as add_(g, alpha=-lr), per copy


def _bias(beta: float, t: int | torch.Tensor) -> float | torch.Tensor:
    """1 - beta^t in float64: a Python float, or a device tensor for a device count t."""
    return 1 - beta ** float(t) if isinstance(t, int) else 1 - torch.pow(beta, t)


class Adam(BatchedOptimizer):
    def __init__(
        self,
        params,
        lr,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        capturable: bool = False,
        fused: bool | None = None,
    ):
        super().__init__(params, lr, capturable)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        # torch's fused multi-tensor Adam: CUDA only (no CPU-identical rounding, no meta kernel)
        self.fused = (
            self.capturable
            and self.device.type == "cuda"
            and isinstance(self.lr, torch.Tensor)
            and self.lr.dim() == 0
            and fused is not False
        )

    def _neg_step(self, t: int | torch.Tensor) -> float | torch.Tensor:
        # -lr / (1 - beta1^t): torch.optim.Adam's step size, in float64 like its Python floats
        bias1 = _bias(self.beta1, t)
        lr = self.lr
        return -(lr / bias1) if isinstance(lr, float) else (-(lr / bias1)).to(self.dtype)

    @torch.no_grad()
    def step(self) -> None:
        if self.fused:
            return self._fused_step()
        t = self._step_number()
        neg = self._neg_step(t)
        # sqrt(1 - beta2^t) once per step: a float, or (capturable) a device scalar
        self._bias2_sqrt = _bias(self.beta2, t) ** 0.5
        for p, state in zip(self.params, self.state, strict=True):
            if p.grad is not None:
                self._update(p, p.grad, state, t, _view(neg, p))

    def _update(self, p, g, state, t, neg):
        if not state:
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(g, 1 - self.beta1)
        v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        denom = (v.sqrt() / self._bias2_sqrt).add_(self.eps)
        if isinstance(neg, float):
            p.addcdiv_(m, denom, value=neg)  # torch.optim.Adam's op
        else:
            p.add_(neg * m / denom)  # addcdiv's (value * m) / denom, per copy

    def _fused_step(self) -> None:
        """CUDA: torch's fused Adam, lr and step count read from device tensors (capturable)."""
        self.step_count += 1
        self.step_t.add_(1)
        if not hasattr(self, "_fused_buffers"):
            self._fused_buffers = (  # float32 copies the fused kernel reads
                torch.zeros((), dtype=torch.float32, device=self.device),
                torch.zeros((), dtype=torch.float32, device=self.device),
            )
        step32, lr32 = self._fused_buffers
        step32.add_(1)
        lr32.copy_(self.lr)
        pairs = zip(self.params, self.state, strict=True)
        live = [(p, st) for p, st in pairs if p.grad is not None]
        for p, st in live:
            if not st:
                st["exp_avg"], st["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        torch._fused_adam_(
            [p for p, _ in live],
            [p.grad for p, _ in live],
            [st["exp_avg"] for _, st in live],
            [st["exp_avg_sq"] for _, st in live],
            [],
            [step32] * len(live),
            amsgrad=False,
            lr=lr32,
            beta1=self.beta1,
            beta2=self.beta2,
            weight_decay=0.0,
            eps=self.eps,
            maximize=False,
        )


class RMSprop(BatchedOptimizer):
    def __init__(self, params, lr, alpha: float = 0.99, eps: float = 1e-8, capturable=False):
        super().__init__(params, lr, capturable)
        self.alpha, self.eps = float(alpha), float(eps)

    def _update(self, p, g, state, t, neg):
        if not state:
            state["square_avg"] = torch.zeros_like(p)
        v = state["square_avg"]
        v.mul_(self.alpha).addcmul_(g, g, value=1 - self.alpha)
        avg = v.sqrt().add_(self.eps)
        if isinstance(neg, float):
            p.addcdiv_(g, avg, value=neg)  # torch.optim.RMSprop's op
        else:
            p.add_(neg * g / avg)  # addcdiv's (value * g) / avg, per copy


class Chain:
    """Several optimisers over disjoint parameters stepped as one (two nets trained on one
    backward pass, e.g. a D and a critic on the same samples). ``set_lr`` takes one lr each."""

    def __init__(self, *opts: BatchedOptimizer):
        self.opts = opts

    def set_lr(self, lrs) -> None:
        for opt, lr in zip(self.opts, lrs, strict=True):
            opt.set_lr(lr)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.opts:
            opt.zero_grad()

    def step(self) -> None:
        for opt in self.opts:
            opt.step()


OPTIMIZERS: dict[str, Callable[..., BatchedOptimizer]] = {
    "sgd": lambda params, lr, capturable=False, **kw: SGD(params, lr, 0.0, capturable),
    "sgd-momentum": lambda params, lr, momentum=0.9, capturable=False, **kw: SGD(
        params, lr, momentum, capturable
    ),
    "adam": lambda params, lr, betas=(0.9, 0.999), eps=1e-8, capturable=False, fused=None, **kw: (
        Adam(params, lr, betas, eps, capturable, fused)
    ),
    "rmsprop": lambda params, lr, alpha=0.99, eps=1e-8, capturable=False, **kw: RMSprop(
        params, lr, alpha, eps, capturable
    ),
}


def make(
    name: str,
    params: Iterable[torch.Tensor],
    lr: float | torch.Tensor,
    *,
    capturable: bool = False,
    **hyper: Any,
) -> BatchedOptimizer:
    """The optimiser ``name`` over ``params``; ``hyper``: betas / eps / fused (adam), momentum
    (sgd-momentum), alpha / eps (rmsprop); others ignored. ``capturable`` (or a 0-d tensor lr):
    lr and step count on the device, no host value read in a step (module docstring).
    Unknown name -> ValueError."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(sorted(OPTIMIZERS))}")
    return OPTIMIZERS[name](params, lr, capturable=capturable, **hyper)
