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

Example:
    >>> net = torch.nn.Linear(2, 1)
    >>> opt = make("adam", net.parameters(), lr=1e-3, betas=(0.5, 0.999))
    >>> opt.set_lr(5e-4)  # a float or a (C,) tensor
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
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float | torch.Tensor):
        self.params = [p for p in params]
        self.device = self.params[0].device if self.params else torch.device("cpu")
        self.dtype = self.params[0].dtype if self.params else torch.float32
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self.step_count = 0
        self.set_lr(lr)

    def set_lr(self, lr: float | torch.Tensor) -> None:
        """A float (every copy) or a (C,) tensor (copy c gets lr[c])."""
        if isinstance(lr, torch.Tensor) and lr.dim() > 0:
            self.lr: float | torch.Tensor = lr.detach().to(self.device, torch.float64).clone()
        else:
            self.lr = float(lr)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict[str, Any]:
        """Step count, lr and per-parameter state (tensors only: checkpointable)."""
        return {
            "step_count": torch.tensor(self.step_count),
            "lr": torch.as_tensor(self.lr, dtype=torch.float64).clone(),
            "state": [{k: v.clone() for k, v in st.items()} for st in self.state],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["state"]) != len(self.params):
            raise ValueError(f"state for {len(state['state'])} parameters, have {len(self.params)}")
        self.step_count = int(state["step_count"])
        self.set_lr(state["lr"])
        self.state = [
            {k: v.to(p.device).clone() for k, v in st.items()}
            for p, st in zip(self.params, state["state"], strict=True)
        ]

    def _neg_step(self, t: int) -> float | torch.Tensor:
        """-lr: a float, or (C,) in the parameters' dtype (computed once per step)."""
        lr = self.lr
        return -lr if isinstance(lr, float) else (-lr).to(self.dtype)

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        scale = self._neg_step(self.step_count)
        for p, state in zip(self.params, self.state, strict=True):
            if p.grad is not None:
                self._update(p, p.grad, state, self.step_count, _view(scale, p))

    def _update(self, p, g, state, t, neg) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(BatchedOptimizer):
    def __init__(self, params, lr, momentum: float = 0.0):
        super().__init__(params, lr)
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


class Adam(BatchedOptimizer):
    def __init__(self, params, lr, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)

    def _neg_step(self, t: int) -> float | torch.Tensor:
        # -lr / (1 - beta1^t): torch.optim.Adam's step size, in float64 like its Python floats
        bias1 = 1 - self.beta1 ** float(t)
        lr = self.lr
        return -(lr / bias1) if isinstance(lr, float) else (-(lr / bias1)).to(self.dtype)

    def _update(self, p, g, state, t, neg):
        if not state:
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(g, 1 - self.beta1)
        v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        bias2 = 1 - self.beta2 ** float(t)
        denom = (v.sqrt() / bias2**0.5).add_(self.eps)
        if isinstance(neg, float):
            p.addcdiv_(m, denom, value=neg)  # torch.optim.Adam's op
        else:
            p.add_(neg * m / denom)  # addcdiv's (value * m) / denom, per copy


class RMSprop(BatchedOptimizer):
    def __init__(self, params, lr, alpha: float = 0.99, eps: float = 1e-8):
        super().__init__(params, lr)
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
    "sgd": lambda params, lr, **kw: SGD(params, lr),
    "sgd-momentum": lambda params, lr, momentum=0.9, **kw: SGD(params, lr, momentum),
    "adam": lambda params, lr, betas=(0.9, 0.999), eps=1e-8, **kw: Adam(params, lr, betas, eps),
    "rmsprop": lambda params, lr, alpha=0.99, eps=1e-8, **kw: RMSprop(params, lr, alpha, eps),
}


def make(
    name: str, params: Iterable[torch.Tensor], lr: float | torch.Tensor, **hyper: Any
) -> BatchedOptimizer:
    """The optimiser ``name`` over ``params``; ``hyper``: betas / eps (adam), momentum
    (sgd-momentum), alpha / eps (rmsprop); others ignored. Unknown name -> ValueError."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(sorted(OPTIMIZERS))}")
    return OPTIMIZERS[name](params, lr, **hyper)
