"""GAN objectives with one signature, per seed.

Every objective maps discriminator (critic) outputs to per-seed losses, both MINIMISED:

    terms = objective(d_real, d_fake)     # d_real (S, B_r[, 1]), d_fake (S, B_f[, 1]) raw outputs
    terms.d_loss, terms.g_loss            # (S,) each: mean over the batch, one value per seed

``d_loss`` is what D minimises, ``g_loss`` what G minimises (it only reads ``d_fake``, so
``objective.g_loss(d_fake)`` alone is enough in a generator step). A trainer sums the per-seed
losses over seeds before ``backward`` (never the mean), so S batched seeds equal S runs.
D outputs are logits l, D(x) = sigmoid(l); log D = logsigmoid(l), log(1 - D) = logsigmoid(-l).

Two hooks live on the objective, for the trainer to apply:
    objective.clip               WGAN: clamp every critic parameter to [-clip, clip] after each
                                 critic step (None: no clipping)
    objective.penalty(critic, real, fake, gens) -> (S,)   WGAN-GP: added to d_loss with weight
                                 ``objective.penalty_weight`` (None: no penalty)

Public API:
    Objective, LossTerms, OBJECTIVES (names), get_objective(name, **options)
    minimax / non-saturating / wgan / wgan-gp / fgan-<divergence> (f-GAN, ``repro.divergences``)
    gradient_penalty(critic, real, fake, gens)    the WGAN-GP term, usable on its own
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from repro.engine.streams import Stream

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GLossFn = Callable[[torch.Tensor], torch.Tensor]
PenaltyFn = Callable[..., torch.Tensor]


class LossTerms(NamedTuple):
    d_loss: torch.Tensor  # (S,)
    g_loss: torch.Tensor  # (S,)


def _per_seed_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the leading seed one: (S, ...) -> (S,)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


@dataclass(frozen=True)
class Objective:
    """A GAN objective: per-seed D and G losses plus the optional clip / penalty hooks.

    Attributes:
        name: the key in ``OBJECTIVES``.
        d_loss_fn: (d_real, d_fake) -> (S,), minimised by D.
        g_loss_fn: d_fake -> (S,), minimised by G.
        clip: WGAN weight clipping bound c (critic weights clamped to [-c, c]), or None.
        penalty: (critic, real, fake, gens) -> (S,) extra D loss term, or None.
        penalty_weight: lambda multiplying ``penalty``.
    """

    name: str
    d_loss_fn: LossFn
    g_loss_fn: GLossFn
    clip: float | None = None
    penalty: PenaltyFn | None = None
    penalty_weight: float = 0.0

    def d_loss(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        return self.d_loss_fn(d_real, d_fake)

    def g_loss(self, d_fake: torch.Tensor) -> torch.Tensor:
        return self.g_loss_fn(d_fake)

    def __call__(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> LossTerms:
        if d_real.shape[0] != d_fake.shape[0]:
            raise ValueError(f"seed dims differ: d_real {d_real.shape}, d_fake {d_fake.shape}")
        return LossTerms(self.d_loss(d_real, d_fake), self.g_loss(d_fake))


# ---------------------------------------------------------------------------------------------
# the original GAN (Goodfellow et al. 2014)


def gan_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """-V(D, G) per seed: -(E_data log D(x) + E_z log(1 - D(G(z)))), Goodfellow et al. 2014 Eq. 1.

    = -(mean logsigmoid(l_real) + mean logsigmoid(-l_fake)), the binary cross-entropy of D.
    At D = 1/2 everywhere (logits 0) it equals log 4.
    """
    return -(_per_seed_mean(F.logsigmoid(d_real)) + _per_seed_mean(F.logsigmoid(-d_fake)))


def minimax_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """E_z log(1 - D(G(z))) = mean logsigmoid(-l): the original, saturating generator cost.

    d/dl = -sigmoid(l) -> 0 as D(G(z)) -> 0 (Goodfellow et al. 2014, Sec. 3; Arjovsky & Bottou
    2017, Thm. 2.4: its gradient vanishes as D approaches the optimum).
    """
    return _per_seed_mean(F.logsigmoid(-d_fake))


def non_saturating_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """-E_z log D(G(z)) = -mean logsigmoid(l): the "-log D" generator cost.

    d/dl = -(1 - sigmoid(l)) -> -1 as D(G(z)) -> 0 (Goodfellow et al. 2014, Sec. 3); with an
    optimal D its expected gradient is that of KL(P_g || P_r) - 2 JSD (Arjovsky & Bottou 2017,
    Thm. 2.5).
    """
    return -_per_seed_mean(F.logsigmoid(d_fake))


# ---------------------------------------------------------------------------------------------
# Wasserstein GAN (Arjovsky et al. 2017) and WGAN-GP (Gulrajani et al. 2017)


def wgan_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """E_z f(G(z)) - E_data f(x): the critic maximises E_data f - E_g f (WGAN, Eq. 3 / Alg. 1)."""
    return _per_seed_mean(d_fake) - _per_seed_mean(d_real)


def wgan_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """-E_z f(G(z)) (WGAN, Algorithm 1, generator update)."""
    return -_per_seed_mean(d_fake)


def _uniform_per_sample(gens: Stream, batch: int, like: torch.Tensor) -> torch.Tensor:
    u = gens.uniform(batch, dtype=torch.float64)
    shape = (len(gens), batch) + (1,) * (like.dim() - 2)
    return u.to(device=like.device, dtype=like.dtype).reshape(shape)  # (S, B, 1, ...)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    gens: Stream,
) -> torch.Tensor:
    """E_xhat (||grad_x f(xhat)||_2 - 1)^2 per seed, xhat = u x + (1 - u) x_fake, u ~ U[0, 1].

    Gulrajani et al. 2017, Eq. 3 / Algorithm 1 (the weight lambda is applied by the trainer).
    One u per sample, from the copies' stream (copy s's u depend on its seed alone). The
    critic's outputs for different seeds and samples depend on their own inputs only (no batch
    norm), so the gradient of their sum gives every per-sample input gradient at once.
    ``create_graph`` keeps the penalty differentiable wrt the critic's parameters.

    Args:
        critic: (S, B, ...) -> (S, B, 1).
        real, fake: (S, B, ...) batches of equal shape (``fake`` detached from G).
        gens: the copies' random stream (``repro.engine.streams.Stream``).

    Returns:
        (S,) penalty per seed.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ")
    return penalty_at(critic, real, fake, _uniform_per_sample(gens, real.shape[1], real))


def penalty_at(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    u: torch.Tensor,
) -> torch.Tensor:
    """The WGAN-GP penalty E (||grad_x f(xhat)||_2 - 1)^2 per copy at given mixing weights ``u``.

    The one implementation of the penalty (``gradient_penalty`` draws ``u`` and calls it; the
    experiments that draw ``u`` from their own streams call it directly).

    Args:
        critic: (S, B, ...) -> (S, B, 1).
        real, fake: (S, B, ...) batches of equal shape.
        u: (S, B, 1, ...) mixing weights in [0, 1], broadcast over the sample's other dimensions.

    Returns:
        (S,) penalty per copy.
    """
    xhat = (u * real + (1 - u) * fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(xhat).sum(), xhat, create_graph=True)
    norms = grad.reshape(real.shape[0], real.shape[1], -1).norm(dim=2)  # (S, B)
    return ((norms - 1.0) ** 2).mean(dim=1)


# ---------------------------------------------------------------------------------------------
# f-GAN (Nowozin et al. 2016): V(T) = E_P g_f(v) - E_Q f*(g_f(v)), T = g_f(v)


def _fgan_losses(divergence: str, g_cost: str) -> tuple[LossFn, GLossFn]:
    from repro.divergences import get_f  # the f* table; imported lazily (scipy is slow to load)

    row = get_f(divergence)

    def d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """-(E_P g_f(v_real) - E_Q f*(g_f(v_fake))), f-GAN Eq. 6; f*(g_f(.)) in stable form."""
        return -(_per_seed_mean(row.g_f(d_real)) - _per_seed_mean(row.f_star_g(d_fake)))

    def g_saturating(d_fake: torch.Tensor) -> torch.Tensor:
        """-E_Q f*(g_f(v)): G minimises the variational bound itself (f-GAN Eq. 6)."""
        return -_per_seed_mean(row.f_star_g(d_fake))

    def g_heuristic(d_fake: torch.Tensor) -> torch.Tensor:
        """-E_Q g_f(v): f-GAN Sec. 3.2's alternative, the analogue of -log D."""
        return -_per_seed_mean(row.g_f(d_fake))

    return d_loss, {"heuristic": g_heuristic, "saturating": g_saturating}[g_cost]


def _fgan(divergence: str, g_cost: str = "heuristic") -> Objective:
    if g_cost not in ("heuristic", "saturating"):
        raise ValueError(f"unknown f-GAN g_cost {g_cost!r}; valid: heuristic, saturating")
    d_loss, g_loss = _fgan_losses(divergence, g_cost)
    return Objective(f"fgan-{divergence}", d_loss, g_loss)


# ---------------------------------------------------------------------------------------------
# the table


def _minimax() -> Objective:
    return Objective("minimax", gan_d_loss, minimax_g_loss)


def _non_saturating() -> Objective:
    return Objective("non-saturating", gan_d_loss, non_saturating_g_loss)


def _wgan(clip: float = 0.01) -> Objective:
    return Objective("wgan", wgan_d_loss, wgan_g_loss, clip=clip)


def _wgan_gp(gp_weight: float = 10.0) -> Objective:
    # lambda = 10 as in the paper (its public toy script uses 0.1)
    return Objective("wgan-gp", wgan_d_loss, wgan_g_loss, None, gradient_penalty, gp_weight)


F_NAMES = ("kl", "reverse_kl", "pearson", "neyman", "squared_hellinger", "js", "gan", "jeffrey")

BUILDERS: dict[str, Callable[..., Objective]] = {
    "minimax": _minimax,
    "non-saturating": _non_saturating,
    "wgan": _wgan,
    "wgan-gp": _wgan_gp,
    **{f"fgan-{f}": (lambda f=f, **kw: _fgan(f, **kw)) for f in F_NAMES},
}
OBJECTIVES: tuple[str, ...] = tuple(BUILDERS)


def get_objective(name: str, **options: Any) -> Objective:
    """The objective called ``name``, with options for its builder.

    Options: ``wgan``: clip (default 0.01, WGAN paper); ``wgan-gp``: gp_weight (default 10,
    WGAN-GP paper); ``fgan-<f>``: g_cost, "heuristic" (default, f-GAN Sec. 3.2: G maximises
    E_Q g_f(v)) or "saturating" (G minimises the bound). Unknown name -> ValueError listing the
    valid ones; unknown option -> TypeError.

    Example:
        >>> obj = get_objective("non-saturating")
        >>> obj(torch.zeros(3, 8), torch.zeros(3, 8)).d_loss.shape
        torch.Size([3])
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}")
    return BUILDERS[name](**options)


def with_options(objective: Objective, **changes: Any) -> Objective:
    """A copy of ``objective`` with fields replaced, e.g. ``with_options(obj, clip=0.1)``."""
    return dataclasses.replace(objective, **changes)
