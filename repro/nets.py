"""Networks whose parameters carry a leading seed dimension.

S seeds of one setting train as ONE model: every weight has shape (S, ...), every activation
(S, B, ...). Seed s is initialised from its own ``torch.Generator`` seeded with s, layer by layer
in a fixed order, so a batched model over seeds [a, b] holds exactly the parameters of two
single-seed models over [a] and [b]. Because Adam and friends act per element, training the
batched model on the SUM of per-seed losses reproduces S separate runs (to float tolerance).

Convolutions fold the seeds into the channels: inside a conv stack activations are laid out
(B, S*C, H, W) and every conv is grouped with groups=S, so seed s only ever sees its own
channels. Batch norm, where used, normalises each (seed, channel) pair over (B, H, W) alone.

Public API:
    seed_generators(seeds, stream=0)     one CPU generator per seed; stream 0 is manual_seed(s),
                                         other streams give independent, reproducible draws
    STREAM_G, STREAM_D, STREAM_DATA, STREAM_FRESH_D, STREAM_EVAL   stream ids the engine uses
    BatchedLinear, BatchedMLP            per-seed affine maps / MLPs on (S, B, n)
    BatchedConv2d, BatchedConvTranspose2d, BatchedBatchNorm2d   grouped layers on (B, S*C, H, W)
    fold_seeds(x), unfold_seeds(x, S)    (S, B, C, H, W) <-> (B, S*C, H, W)
    ConvGenerator, ConvDiscriminator               the suite's one DCGAN family (issue 6, 15):
                                                   28x28 (Fashion-MNIST) or 8x8 (digits);
                                                   N(0, 0.02) init or the layers' defaults
                                                   (init=), batch norm switchable (norm=), a
                                                   3x3 output conv for G (out_kernel=3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


# Random streams: G init, D init, training data + noise, a fresh D trained against a frozen G,
# evaluation batches. Separate streams keep e.g. D's initial weights independent of G's.
STREAM_G, STREAM_D, STREAM_DATA, STREAM_FRESH_D, STREAM_EVAL = 0, 1, 2, 3, 4


def stream_seed(seed: int, stream: int = 0) -> int:
    """The integer a generator for (seed, stream) is seeded with: seed itself on stream 0,
    else the first 64-bit word of ``numpy.random.SeedSequence([seed, stream])``."""
    if stream == 0:
        return int(seed)
    if seed < 0 or stream < 0:
        raise ValueError(f"seed and stream must be non-negative, got {seed}, {stream}")
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1, np.uint64)[0])


def seed_generators(seeds: Sequence[int], stream: int = 0) -> list[torch.Generator]:
    """One CPU generator per seed; initialisation draws on CPU so every device gets equal weights.

    ``stream`` selects an independent sequence for the same seed (see ``stream_seed``).
    """
    return [torch.Generator().manual_seed(stream_seed(int(s), stream)) for s in seeds]


class BatchedLinear(nn.Module):
    """S independent affine maps applied in one batched matmul.

    y[s] = x[s] @ W[s] + b[s], with x (S, B, n_in), W (S, n_in, n_out), b (S, n_out).
    Initialised like ``torch.nn.Linear``: W, b ~ U(-1/sqrt(n_in), 1/sqrt(n_in)), per seed.
    """

    def __init__(self, n_in: int, n_out: int, n_seeds: int):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.weight = nn.Parameter(torch.empty(n_seeds, n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_seeds, n_out))

    @torch.no_grad()
    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        bound = 1.0 / math.sqrt(self.n_in)
        for s, gen in enumerate(generators):
            w = torch.rand(self.n_in, self.n_out, generator=gen) * 2 * bound - bound
            b = torch.rand(self.n_out, generator=gen) * 2 * bound - bound
            self.weight[s].copy_(w)
            self.bias[s].copy_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (S, B, n_in) -> (S, B, n_out)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class BatchedMLP(nn.Module):
    """A multilayer perceptron per seed: Linear -> act -> ... -> Linear, all seeds at once.

    Args:
        sizes: layer widths including input and output, e.g. (1, 64, 64, 1).
        seeds: one integer seed per batched copy; seed s initialises copy s.
        activation: a key of ``ACTIVATIONS``.
        stream: random stream of the initialisation (0, the default, is ``manual_seed(s)``); give
            a discriminator ``STREAM_D`` so its weights are independent of the generator's.

    Example:
        >>> net = BatchedMLP((2, 32, 1), seeds=[0, 1, 2])
        >>> net(torch.zeros(3, 5, 2)).shape
        torch.Size([3, 5, 1])
    """

    def __init__(
        self,
        sizes: Sequence[int],
        seeds: Sequence[int],
        activation: str = "relu",
        stream: int = 0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; valid: {', '.join(sorted(ACTIVATIONS))}"
            )
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least input and output widths, got {list(sizes)}")
        self.seeds = [int(s) for s in seeds]
        self.stream = stream
        self.layers = nn.ModuleList(
            BatchedLinear(a, b, len(self.seeds)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.act = ACTIVATIONS[activation]()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        gens = seed_generators(self.seeds, self.stream)
        for layer in self.layers:
            layer.reset_parameters(gens)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (S, B, sizes[0]) -> (S, B, sizes[-1])
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


# ---------------------------------------------------------------------------------------------
# convolutions: seeds folded into channels, groups = S


def fold_seeds(x: torch.Tensor) -> torch.Tensor:
    """(S, B, C, H, W) -> (B, S*C, H, W): channel s*C + c holds seed s, channel c."""
    s, b, c, h, w = x.shape
    return x.transpose(0, 1).reshape(b, s * c, h, w)


def unfold_seeds(x: torch.Tensor, n_seeds: int) -> torch.Tensor:
    """(B, S*C, H, W) -> (S, B, C, H, W), the inverse of ``fold_seeds``."""
    b, sc, h, w = x.shape
    return x.reshape(b, n_seeds, sc // n_seeds, h, w).transpose(0, 1)


def _uniform(shape: Sequence[int], bound: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(*shape, generator=gen) * 2 * bound - bound


class BatchedConv2d(nn.Module):
    """S independent 2-D convolutions as one grouped convolution on (B, S*C_in, H, W).

    Weight (S, C_out, C_in, k, k), bias (S, C_out). Initialised like ``torch.nn.Conv2d``:
    W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_in k^2, per seed (weight, then bias).
    """

    def __init__(
        self, c_in: int, c_out: int, kernel: int, n_seeds: int, stride: int = 1, padding: int = 0
    ):
        super().__init__()
        self.c_in, self.c_out, self.kernel = c_in, c_out, kernel
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.empty(n_seeds, c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(n_seeds, c_out))

    def fan_in(self) -> float:
        return self.c_in * self.kernel**2

    @torch.no_grad()
    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        bound = 1.0 / math.sqrt(self.fan_in())
        for s, gen in enumerate(generators):
            self.weight[s].copy_(_uniform(self.weight.shape[1:], bound, gen))
            self.bias[s].copy_(_uniform(self.bias.shape[1:], bound, gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, S*C_in, H, W) -> (B, S*C_out, H', W')
        s = self.weight.shape[0]
        w = self.weight.reshape(s * self.c_out, self.c_in, self.kernel, self.kernel)
        return F.conv2d(x, w, self.bias.reshape(-1), self.stride, self.padding, groups=s)


class BatchedConvTranspose2d(BatchedConv2d):
    """S independent transposed convolutions as one grouped ``conv_transpose2d``.

    Weight (S, C_in, C_out, k, k) (PyTorch's transposed layout), bias (S, C_out). Each output
    pixel sums about C_in (k / stride)^2 terms, so fan_in = C_in k^2 / stride^2 sets the uniform
    bound 1/sqrt(fan_in) (PyTorch's own default uses C_out k^2 here, a known quirk).
    """

    def __init__(
        self, c_in: int, c_out: int, kernel: int, n_seeds: int, stride: int = 1, padding: int = 0
    ):
        super().__init__(c_in, c_out, kernel, n_seeds, stride, padding)
        self.weight = nn.Parameter(torch.empty(n_seeds, c_in, c_out, kernel, kernel))

    def fan_in(self) -> float:
        return self.c_in * self.kernel**2 / self.stride**2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, S*C_in, H, W) -> (B, S*C_out, H', W')
        s = self.weight.shape[0]
        w = self.weight.reshape(s * self.c_in, self.c_out, self.kernel, self.kernel)
        return F.conv_transpose2d(x, w, self.bias.reshape(-1), self.stride, self.padding, groups=s)


class BatchedBatchNorm2d(nn.Module):
    """Batch norm with statistics per (seed, channel): no statistic is shared across seeds.

    On (B, S*C, H, W) ordinary per-channel batch norm already averages over (B, H, W) only, so
    each seed's channels are normalised by that seed's own batch. Parameters and running
    statistics are stored (S, C) to keep the leading seed dimension.
    """

    def __init__(self, channels: int, n_seeds: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(n_seeds, channels))
        self.bias = nn.Parameter(torch.zeros(n_seeds, channels))
        self.register_buffer("running_mean", torch.zeros(n_seeds, channels))
        self.register_buffer("running_var", torch.ones(n_seeds, channels))

    @torch.no_grad()
    def reset_parameters(self, generators: Sequence[torch.Generator]) -> None:
        # deterministic init: draws nothing, so the other layers' draws do not depend on norm
        self.weight.fill_(1.0)
        self.bias.zero_()
        self.running_mean.zero_()
        self.running_var.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, S*C, H, W); views of the (S, C) buffers are updated in place in training mode
        return F.batch_norm(
            x,
            self.running_mean.view(-1),
            self.running_var.view(-1),
            self.weight.reshape(-1),
            self.bias.reshape(-1),
            self.training,
            self.momentum,
            self.eps,
        )


NORMS = ("none", "batch")


class BatchedModule(nn.Module):
    """Shared bookkeeping: seeds, init stream, per-seed initialisation in registration order."""

    def __init__(self, seeds: Sequence[int], stream: int):
        super().__init__()
        self.seeds = [int(s) for s in seeds]
        self.stream = stream

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def reset_parameters(self) -> None:
        gens = seed_generators(self.seeds, self.stream)
        for module in self.modules():  # registration order: fixed, so init is reproducible
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters(gens)


# ---------------------------------------------------------------------------------------------
# the standard DCGAN for 28x28 images (issue 6; Radford et al. 2016 layout, two up/down stages)

DCGAN_INIT_STD = 0.02  # Radford et al. 2016: all weights N(0, 0.02); batch-norm gains N(1, 0.02)


@torch.no_grad()
def dcgan_init_(module: nn.Module, generators: Sequence[torch.Generator]) -> None:
    """DCGAN initialisation of a batched layer, per seed from ``generators``.

    Conv / transposed-conv / linear weights ~ N(0, 0.02^2), biases 0; batch-norm gains
    ~ N(1, 0.02^2), shifts 0 (Radford et al. 2016, Sec. 4). Other modules are left alone.
    """
    if isinstance(module, BatchedBatchNorm2d):
        for s, gen in enumerate(generators):
            gain = 1.0 + DCGAN_INIT_STD * torch.randn(module.weight.shape[1:], generator=gen)
            module.weight[s].copy_(gain)
        module.bias.zero_()
    elif isinstance(module, BatchedConv2d | BatchedLinear):
        for s, gen in enumerate(generators):
            module.weight[s].copy_(
                DCGAN_INIT_STD * torch.randn(module.weight.shape[1:], generator=gen)
            )
        module.bias.zero_()


INITS = ("dcgan", "default")


class _DCGANInit(BatchedModule):
    """init "dcgan": ``dcgan_init_`` (Radford et al. 2016); "default": every layer's own
    ``reset_parameters`` (PyTorch's defaults, ``BatchedModule``), per seed, in registration
    order."""

    def _set_init(self, init: str) -> None:
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
        self.init = init

    def reset_parameters(self) -> None:
        if self.init == "default":
            return super().reset_parameters()
        gens = seed_generators(self.seeds, self.stream)
        for module in self.modules():  # registration order: fixed, so init is reproducible
            if module is not self:
                dcgan_init_(module, gens)


class ConvGenerator(_DCGANInit):
    """The standard DCGAN generator for 28x28 images (any size divisible by 4), all seeds at once.

    z (S, B, z_dim) -> Linear -> (2c, H/4, W/4) -> BN -> ReLU -> ConvT(4, stride 2, pad 1)
    -> (c, H/2, W/2) -> BN -> ReLU -> ConvT(4, stride 2, pad 1) -> (1, H, W) -> tanh.
    With z_dim = 100, c = 64, H = 28: linear to 128x7x7, ConvT to 64x14x14, ConvT to 1x28x28
    (issue 6). Init N(0, 0.02) (``dcgan_init_``). ``out_kernel=3`` (saturation's small 8x8 G):
    Linear -> (2c, H/2, W/2), the one ConvT to (c, H, W), then Conv(3, pad 1) -> (1, H, W).

    Args:
        seeds: one integer seed per batched copy.
        z_dim: latent dimension.
        channels: c (64 for the standard model).
        image_size: H = W, a multiple of 4 (28 for Fashion-MNIST, 8 for the digits).
        norm: "batch" (standard) or "none".
        stream: initialisation stream (default ``STREAM_G``).
        init: "dcgan" (N(0, 0.02), standard) or "default" (the layers' PyTorch defaults).
        out_kernel: 4 (a stride-2 ConvT, standard) or 3 (a stride-1 3x3 conv after one ConvT).

    Example:
        >>> g = ConvGenerator([0, 1], z_dim=100, channels=64)
        >>> g(torch.zeros(2, 5, 100)).shape
        torch.Size([2, 5, 1, 28, 28])
    """

    def __init__(
        self,
        seeds: Sequence[int],
        z_dim: int = 100,
        channels: int = 64,
        image_size: int = 28,
        norm: str = "batch",
        stream: int = STREAM_G,
        init: str = "dcgan",
        out_kernel: int = 4,
    ):
        super().__init__(seeds, stream)
        self._set_init(init)
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
        if out_kernel not in (3, 4):
            raise ValueError(f"out_kernel must be 4 (ConvT) or 3 (conv), got {out_kernel}")
        s, c = self.n_seeds, channels
        self.z_dim, self.channels = z_dim, c
        self.base = image_size // 4 if out_kernel == 4 else image_size // 2
        self.fc = BatchedLinear(z_dim, 2 * c * self.base**2, s)
        self.norm1 = BatchedBatchNorm2d(2 * c, s) if norm == "batch" else nn.Identity()
        self.up1 = BatchedConvTranspose2d(2 * c, c, 4, s, stride=2, padding=1)
        self.norm2 = BatchedBatchNorm2d(c, s) if norm == "batch" else nn.Identity()
        if out_kernel == 4:
            self.up2 = BatchedConvTranspose2d(c, 1, 4, s, stride=2, padding=1)
        else:
            self.up2 = BatchedConv2d(c, 1, 3, s, stride=1, padding=1)
        self.reset_parameters()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s, b, _ = z.shape
        h = self.fc(z).reshape(s, b, 2 * self.channels, self.base, self.base)
        h = torch.relu(self.norm1(fold_seeds(h)))  # (B, S*2c, H/4, W/4)
        h = torch.relu(self.norm2(self.up1(h)))  # (B, S*c, H/2, W/2)
        return unfold_seeds(torch.tanh(self.up2(h)), s)  # (S, B, 1, H, W)


class ConvDiscriminator(_DCGANInit):
    """The standard DCGAN discriminator for 28x28 images (any size divisible by 4), batched.

    x (S, B, 1, H, W) -> Conv(4, stride 2, pad 1) -> (c, H/2, W/2) -> LeakyReLU(0.2)
    -> Conv(4, stride 2, pad 1) -> (2c, H/4, W/4) -> [BN] -> LeakyReLU(0.2) -> Linear -> logit
    (S, B, 1). With c = 64, H = 28: conv 64 stride 2, conv 128 stride 2 with BN, linear (issue 6).
    Batch norm normalises each (seed, channel) over the batch it is called on (train mode).

    Args:
        seeds: one integer seed per batched copy.
        channels: c (64 for the standard model).
        image_size: H = W, a multiple of 4.
        norm: "batch" (standard) or "none" (the d-bn-off variant; saturation's D; a WGAN-GP
            critic, Gulrajani et al. 2017 drop batch norm there).
        stream: initialisation stream (default ``STREAM_D``; ``STREAM_FRESH_D`` for a fresh D).
        init: "dcgan" (N(0, 0.02), standard) or "default" (the layers' PyTorch defaults).
    """

    def __init__(
        self,
        seeds: Sequence[int],
        channels: int = 64,
        image_size: int = 28,
        norm: str = "batch",
        stream: int = STREAM_D,
        init: str = "dcgan",
    ):
        super().__init__(seeds, stream)
        self._set_init(init)
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
        s, c = self.n_seeds, channels
        self.conv1 = BatchedConv2d(1, c, 4, s, stride=2, padding=1)
        self.conv2 = BatchedConv2d(c, 2 * c, 4, s, stride=2, padding=1)
        self.norm2 = BatchedBatchNorm2d(2 * c, s) if norm == "batch" else nn.Identity()
        self.fc = BatchedLinear(2 * c * (image_size // 4) ** 2, 1, s)
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, b = x.shape[:2]
        h = F.leaky_relu(self.conv1(fold_seeds(x)), 0.2)  # (B, S*c, H/2, W/2)
        h = F.leaky_relu(self.norm2(self.conv2(h)), 0.2)  # (B, S*2c, H/4, W/4)
        return self.fc(unfold_seeds(h, s).reshape(s, b, -1))  # (S, B, 1)
