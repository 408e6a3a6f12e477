"""Networks whose parameters carry a leading seed dimension.

S seeds of one setting train as ONE model: every weight has shape (S, ...), every activation
(S, B, ...). Seed s is initialised from its own ``torch.Generator`` seeded with s, layer by layer
in a fixed order, so a batched model over seeds [a, b] holds exactly the parameters of two
single-seed models over [a] and [b]. Because Adam and friends act per element, training the
batched model on the SUM of per-seed losses reproduces S separate runs (to float tolerance).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
    "elu": nn.ELU,
}


def seed_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per seed; initialisation draws on CPU so every device gets equal weights."""
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


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

    Example:
        >>> net = BatchedMLP((2, 32, 1), seeds=[0, 1, 2])
        >>> net(torch.zeros(3, 5, 2)).shape
        torch.Size([3, 5, 1])
    """

    def __init__(self, sizes: Sequence[int], seeds: Sequence[int], activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; valid: {', '.join(sorted(ACTIVATIONS))}"
            )
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least input and output widths, got {list(sizes)}")
        self.seeds = [int(s) for s in seeds]
        self.layers = nn.ModuleList(
            BatchedLinear(a, b, len(self.seeds)) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.act = ACTIVATIONS[activation]()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        gens = seed_generators(self.seeds)
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
