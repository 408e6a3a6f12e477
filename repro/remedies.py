"""Remedies for mode collapse, each one small named piece on batched (S, B, ...) tensors.

Every piece acts per seed (leading dimension S) so a batched run over S seeds equals S runs:

    pack(x, m)                         PacGAN (Lin et al. 2018, Sec. 3): m samples -> one D input
    minibatch_features(h, T, ...)      minibatch discrimination (Salimans et al. 2016, Sec. 3.2)
    MinibatchDiscrimination            the same as a layer with batched parameters T
    feature_matching_loss(f_r, f_g)    feature matching G loss (Salimans et al. 2016, Sec. 3.1)
    adam_step(params, grads, state)    one functional, differentiable Adam update (torch's rule)
    unrolled_params(...)               K unrolled D updates with higher-order gradients, the
                                       surrogate D of Unrolled GAN (Metz et al. 2017, Eq. 5-7);
                                       flat=True: the same Adam on one flat buffer (few kernels)
    Maxout                             a batched maxout layer (Goodfellow et al. 2013), PacGAN's D
    BatchNorm1d                        per-seed batch norm over the batch, PacGAN's G

Instance noise lives in ``repro.noise`` (add_instance_noise, noise_std_at); WGAN (clip) and
WGAN-GP in ``repro.losses``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from repro.nets import BatchedLinear

Params = dict[str, torch.Tensor]

# ---------------------------------------------------------------------------------------------
# PacGAN: packing


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """Concatenate m consecutive samples into one discriminator input (PacGAN, Lin et al. 2018).

    (S, B, d) -> (S, B / m, m d): pack j of seed s is [x[s, j m], ..., x[s, j m + m - 1]], so D
    judges m samples jointly; real packs hold real samples only and fake packs fakes only.
    Images (S, B, C, H, W) are packed along the channels: (S, B / m, m C, H, W).
    B must be a multiple of m. m = 1 is the identity.

    Example:
        >>> pack(torch.arange(12.0).reshape(1, 6, 2), 3)
        tensor([[[ 0.,  1.,  2.,  3.,  4.,  5.],
                 [ 6.,  7.,  8.,  9., 10., 11.]]])
    """
    s, b = x.shape[:2]
    if m < 1 or b % m:
        raise ValueError(f"batch {b} is not a multiple of the pack size {m}")
    return x.reshape(s, b // m, m * x.shape[2], *x.shape[3:])


# ---------------------------------------------------------------------------------------------
# Salimans et al. 2016: minibatch discrimination and feature matching


def minibatch_features(h: torch.Tensor, tensor: torch.Tensor, n_kernels: int) -> torch.Tensor:
    """o(x_i)_b = sum_j exp(-||M_{i,b} - M_{j,b}||_1), Salimans et al. 2016, Sec. 3.2.

    M_i = h_i T reshaped to (n_kernels, kernel_dim); the sum runs over every j in the minibatch,
    i included as in the paper's formula (the j = i term is the constant exp(0) = 1). Each seed's
    minibatch only sees itself.

    Args:
        h: (S, B, A) features of one minibatch (real and fake batches are passed separately).
        tensor: T, (S, A, n_kernels * kernel_dim).
        n_kernels: B_k, the number of kernels.

    Returns:
        (S, B, n_kernels) minibatch features, each in [1, B].
    """
    s, b, _ = h.shape
    m = torch.bmm(h, tensor).reshape(s, b, n_kernels, -1)  # (S, B, nk, kd)
    m = m.permute(0, 2, 1, 3).reshape(s * n_kernels, b, -1)  # (S*nk, B, kd)
    l1 = torch.cdist(m, m, p=1.0)  # (S*nk, B, B)
    o = torch.exp(-l1).sum(dim=2)  # (S*nk, B)
    return o.reshape(s, n_kernels, b).transpose(1, 2)  # (S, B, nk)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination layer: h (S, B, A) -> [h, o(h)] (S, B, A + n_kernels).

    T ~ N(0, init_std^2) per seed (the public code of Salimans et al. uses std 0.05; B_k = 100
    kernels of dimension 5).
    """

    def __init__(
        self, n_in: int, n_kernels: int, kernel_dim: int, n_seeds: int, init_std: float = 0.05
    ):
        super().__init__()
        self.n_kernels, self.kernel_dim, self.init_std = n_kernels, kernel_dim, init_std
        self.tensor = nn.Parameter(torch.empty(n_seeds, n_in, n_kernels * kernel_dim))

    @torch.no_grad()
    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        for s, gen in enumerate(generators):
            self.tensor[s].copy_(torch.randn(self.tensor.shape[1:], generator=gen) * self.init_std)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([h, minibatch_features(h, self.tensor, self.n_kernels)], dim=2)


def feature_matching_loss(f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    """||E_x f(x) - E_z f(G(z))||_2^2 per seed, Salimans et al. 2016, Sec. 3.1 (G minimises it).

    f is an intermediate layer of D; the expectations are minibatch means.

    Args:
        f_real, f_fake: (S, B_r, F), (S, B_f, F) features of a real and a generated batch.

    Returns:
        (S,) squared distances between the mean features.
    """
    return (f_real.mean(dim=1) - f_fake.mean(dim=1)).pow(2).sum(dim=1)


# ---------------------------------------------------------------------------------------------
# Unrolled GAN (Metz et al. 2017): K differentiable steps of D's optimiser


def adam_step(
    params: Mapping[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor],
    state: Mapping[str, Mapping[str, torch.Tensor]],
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float = 1e-8,
) -> tuple[Params, dict[str, dict[str, torch.Tensor]]]:
    """One Adam update as a pure function of tensors (torch.optim.Adam's rule, no weight decay).

    m' = b1 m + (1 - b1) g,  v' = b2 v + (1 - b2) g^2,  t = step (1 for the first update),
    p' = p - lr (m' / (1 - b1^t)) / (sqrt(v') / sqrt(1 - b2^t) + eps).
    Differentiable in params, grads and state: gradients flow through every term. sqrt reads
    v' clamped at 1e-30 so a zero gradient gives a finite derivative (|change| < 1e-15, far below
    eps).

    Args:
        params, grads: name -> tensor.
        state: name -> {"exp_avg": m, "exp_avg_sq": v} (zeros before the first update).
        step: the update's index t >= 1.

    Returns:
        (new params, new state), the same names.
    """
    b1, b2 = betas
    c1, c2 = 1 - b1**step, 1 - b2**step
    new_p, new_s = {}, {}
    for name, p in params.items():
        g = grads[name]
        m = b1 * state[name]["exp_avg"] + (1 - b1) * g
        v = b2 * state[name]["exp_avg_sq"] + (1 - b2) * g * g
        denom = v.clamp_min(1e-30).sqrt() / math.sqrt(c2) + eps
        new_p[name] = p - lr * (m / c1) / denom
        new_s[name] = {"exp_avg": m, "exp_avg_sq": v}
    return new_p, new_s


def adam_state_of(
    opt, named: Mapping[str, torch.Tensor]
) -> tuple[dict[str, dict[str, torch.Tensor]], int]:
    """The Adam optimiser's moments for the named parameters (zeros if never stepped), and t.

    ``opt``: a ``torch.optim.Adam`` or the engine's ``repro.engine.optim.Adam``."""
    from repro.engine.optim import BatchedOptimizer

    per_param = None
    if isinstance(opt, BatchedOptimizer):  # state is a list aligned with opt.params
        per_param = {
            id(p): {**st, "step": opt.step_count}
            for p, st in zip(opt.params, opt.state, strict=True)
        }
    state, step = {}, 0
    for name, p in named.items():
        st = per_param.get(id(p), {}) if per_param is not None else opt.state.get(p, {})
        st = st if "exp_avg" in st else {}
        if st:
            state[name] = {"exp_avg": st["exp_avg"], "exp_avg_sq": st["exp_avg_sq"]}
            step = int(st["step"])
        else:
            state[name] = {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
    return state, step


def unrolled_params(
    d_loss: Callable[[Params, int], torch.Tensor],
    params: Mapping[str, torch.Tensor],
    state: Mapping[str, Mapping[str, torch.Tensor]],
    step: int | torch.Tensor,
    k: int,
    lr: float | torch.Tensor,
    betas: tuple[float, float],
    eps: float = 1e-8,
    *,
    flat: bool = False,
) -> Params:
    """theta_D^K: K Adam updates of D unrolled with ``create_graph``, Metz et al. 2017, Eq. 5-7.

    theta^0 = ``params``; theta^{i+1} = Adam(theta^i, grad_theta d_loss(theta^i, i)), every
    gradient taken with create_graph=True, so the result stays a differentiable function of
    whatever d_loss depends on (G's parameters through the fake samples): the generator's
    surrogate loss f(theta_G, theta_D^K(theta_G, theta_D)) then back-propagates through all K
    updates (the "higher-order gradients" of the paper, not a detached copy of D).

    Args:
        d_loss: (params, i) -> (S,) D's loss at the i-th unrolled step (its batch for step i).
        params: D's current parameters (name -> tensor); the optimiser state in ``state``.
        step: how many updates the optimiser has made so far (the unrolled ones are step+1...);
            with ``flat``, also a 0-d device tensor (``opt_d.step_t`` of a capturable
            optimiser), read on the device: a graph-captured G step needs no host count.
        lr: a float (with ``flat``, also a 0-d device tensor written in place by a schedule).
        k: number of unrolled steps K (0 returns ``params`` unchanged).
        flat: run the K updates on ONE flat buffer holding every parameter (and one each for
            Adam's two moments) instead of one tensor per parameter: each op of the update is
            then one kernel for all of D, and the gradient w.r.t. the buffer is one ``cat`` of
            the per-parameter ones (``_unrolled_flat``). Same arithmetic, op for op; only the
            order in which autograd sums gradient contributions can differ, so results agree to
            rounding (tests/test_remedies.py measures it), not always bit for bit.

    Returns:
        name -> theta_D^K (with ``flat``: views into the last flat buffer).
    """
    if flat:
        return _unrolled_flat(d_loss, params, state, step, k, lr, betas, eps)
    theta, st = dict(params), {n: dict(v) for n, v in state.items()}
    for i in range(k):
        names = list(theta)
        grads = torch.autograd.grad(
            d_loss(theta, i).sum(), [theta[n] for n in names], create_graph=True
        )
        theta, st = adam_step(
            theta, dict(zip(names, grads, strict=True)), st, step + i + 1, lr, betas, eps
        )
    return theta


def _unflatten(flat: torch.Tensor, names, shapes, sizes) -> Params:
    """name -> a view of ``flat`` with the parameter's shape (no copy, no kernel)."""
    parts = flat.split(sizes)
    return {n: part.view(shape) for n, part, shape in zip(names, parts, shapes, strict=True)}


def _unrolled_flat(d_loss, params, state, step, k, lr, betas, eps) -> Params:
    """``unrolled_params`` on flat buffers: theta, m, v each one 1-D tensor over all of D.

    The update is ``adam_step``'s, op for op (so each element is computed with the same
    roundings), applied once to the whole buffer instead of once per parameter. ``step`` may be
    a 0-d device tensor (a capturable optimiser's ``step_t``): the bias corrections are then
    computed on the device in float64 (same values as the host's), so a captured CUDA graph of
    the G step stays right as the count grows.
    """
    names = list(params)
    if k == 0 or not names:
        return dict(params)
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    b1, b2 = betas
    flat = torch.cat([params[n].reshape(-1) for n in names])  # differentiable in params
    m = torch.cat([state[n]["exp_avg"].reshape(-1) for n in names])
    v = torch.cat([state[n]["exp_avg_sq"].reshape(-1) for n in names])
    for i in range(k):
        theta = _unflatten(flat, names, shapes, sizes)
        (g,) = torch.autograd.grad(d_loss(theta, i).sum(), flat, create_graph=True)
        if isinstance(step, torch.Tensor):  # a device count: the bias corrections stay there
            t = step.to(torch.float64) + (i + 1)
            c1, c2 = 1 - torch.pow(b1, t), 1 - torch.pow(b2, t)
            sqrt_c2 = c2.sqrt()
        else:
            t = step + i + 1
            c1, c2 = 1 - b1**t, 1 - b2**t
            sqrt_c2 = math.sqrt(c2)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        denom = v.clamp_min(1e-30).sqrt() / sqrt_c2 + eps
        flat = flat - lr * (m / c1) / denom
    return _unflatten(flat, names, shapes, sizes)


# ---------------------------------------------------------------------------------------------
# layers of PacGAN's networks


class Maxout(nn.Module):
    """Batched maxout (Goodfellow et al. 2013): y_j = max_p (x W_p + b_p)_j.

    (S, B, n_in) -> (S, B, n_out); one BatchedLinear computes all pieces (it is initialised by the
    owning network's ``reset_parameters``, which visits every submodule).
    """

    def __init__(self, n_in: int, n_out: int, pieces: int, n_seeds: int):
        super().__init__()
        self.n_out, self.pieces = n_out, pieces
        self.linear = BatchedLinear(n_in, n_out * pieces, n_seeds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)  # (S, B, n_out * pieces)
        return y.reshape(*y.shape[:2], self.n_out, self.pieces).amax(dim=3)


class BatchNorm1d(nn.Module):
    """Batch norm on (S, B, n) with statistics per (seed, unit) over the batch alone.

    y = gamma (x - mean_B x) / sqrt(var_B x + eps) + beta (biased variance, as in training mode of
    torch's batch norm). Always batch statistics (no running averages): the mixture experiments
    sample 2,500 points at once for evaluation, so a batch's own statistics are well defined.
    """

    def __init__(self, n: int, n_seeds: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_seeds, 1, n))
        self.bias = nn.Parameter(torch.zeros(n_seeds, 1, n))

    @torch.no_grad()
    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        self.weight.fill_(1.0)
        self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias
