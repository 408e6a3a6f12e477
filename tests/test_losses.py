"""GAN objectives: closed forms, optimal-critic identities, stability, hooks, error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from repro.divergences import F_DIVERGENCES
from repro.engine.streams import Stream
from repro.losses import F_NAMES, OBJECTIVES, get_objective, gradient_penalty
from repro.nets import BatchedMLP

LOG2, LOG4 = math.log(2), math.log(4)


@pytest.mark.parametrize("name", OBJECTIVES)
def test_every_objective_has_one_signature(name):
    obj = get_objective(name)
    real, fake = 0.3 * torch.randn(3, 7), 0.3 * torch.randn(3, 5)
    terms = obj(real, fake)
    assert terms.d_loss.shape == (3,) and terms.g_loss.shape == (3,)
    flat = obj(real.unsqueeze(-1), fake.unsqueeze(-1))  # (S, B, 1) logits read the same
    torch.testing.assert_close(flat.d_loss, terms.d_loss)
    torch.testing.assert_close(obj.g_loss(fake), terms.g_loss)
    # per seed: seed 0's losses do not move when seed 1's logits change
    fake2 = fake.clone()
    fake2[1] += 1.0
    torch.testing.assert_close(obj(real, fake2).d_loss[0], terms.d_loss[0])


def test_gan_losses_at_an_undecided_discriminator():
    zeros = torch.zeros(2, 4, dtype=torch.float64)
    mm, ns = get_objective("minimax"), get_objective("non-saturating")
    torch.testing.assert_close(mm(zeros, zeros).d_loss, torch.full((2,), LOG4, dtype=torch.float64))
    torch.testing.assert_close(mm.g_loss(zeros), torch.full((2,), -LOG2, dtype=torch.float64))
    torch.testing.assert_close(ns.g_loss(zeros), torch.full((2,), LOG2, dtype=torch.float64))


def test_generator_gradients_saturate_or_not():
    """d/dl log(1 - sigmoid(l)) = -sigmoid(l); d/dl -log sigmoid(l) = -(1 - sigmoid(l))."""
    logits = torch.tensor([[-30.0, -3.0, 0.0, 2.0]], dtype=torch.float64, requires_grad=True)
    b = logits.shape[1]
    for name, expected in [
        ("minimax", -torch.sigmoid(logits.detach()) / b),
        ("non-saturating", -(1 - torch.sigmoid(logits.detach())) / b),
    ]:
        (grad,) = torch.autograd.grad(get_objective(name).g_loss(logits).sum(), logits)
        torch.testing.assert_close(grad, expected, rtol=1e-12, atol=0)
    assert (
        torch.autograd.grad(get_objective("minimax").g_loss(logits).sum(), logits)[0][0, 0] > -1e-13
    )


@pytest.mark.parametrize("name", OBJECTIVES)
def test_no_overflow_at_extreme_logits(name):
    big = torch.tensor([[-80.0, 80.0]], requires_grad=True)
    obj = get_objective(name)
    if name in ("fgan-kl", "fgan-squared_hellinger", "fgan-reverse_kl"):
        big = torch.tensor([[-20.0, 20.0]], requires_grad=True)  # exp(v) activations by design
    terms = obj(big, big)
    (grad,) = torch.autograd.grad((terms.d_loss + terms.g_loss).sum(), big)
    assert torch.isfinite(terms.d_loss).all() and torch.isfinite(grad).all()


def _atoms():
    """P = (1/4, 3/4) and Q = (1/2, 1/2) on two atoms, as batches with repeated atoms."""
    p, q = np.array([0.25, 0.75]), np.array([0.5, 0.5])
    real_atoms, fake_atoms = torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1])
    return p, q, real_atoms, fake_atoms


def test_gan_value_at_optimal_d_is_2js_minus_log4():
    """Goodfellow et al. 2014, Thm. 1: V(D*, G) = 2 JSD - log 4 with logit(D*) = log(p / q)."""
    p, q, ra, fa = _atoms()
    logit = torch.tensor(np.log(p / q))
    d_loss = get_objective("minimax").d_loss(logit[ra][None], logit[fa][None])
    m = (p + q) / 2
    js = 0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m))
    assert -d_loss.item() == pytest.approx(2 * js - LOG4, abs=1e-12)


# f(u) and the activation's inverse v*(u) = g_f^{-1}(f'(u)), written independently of the table
F_REF = {
    "kl": (lambda u: u * np.log(u), lambda u: 1 + np.log(u)),
    "reverse_kl": (lambda u: -np.log(u), lambda u: -np.log(1 / u)),
    "pearson": (lambda u: (u - 1) ** 2, lambda u: 2 * (u - 1)),
    "neyman": (lambda u: (1 - u) ** 2 / u, lambda u: -np.log(1 / u**2)),
    "squared_hellinger": (lambda u: (np.sqrt(u) - 1) ** 2, lambda u: -np.log(1 / np.sqrt(u))),
    "js": (
        lambda u: -(u + 1) * np.log((1 + u) / 2) + u * np.log(u),
        lambda u: np.log(u / (1 + u) / (1 - u / (1 + u))),  # logit of e^{T*} / 2 = u / (1 + u)
    ),
    "gan": (
        lambda u: u * np.log(u) - (u + 1) * np.log(u + 1),
        lambda u: np.log(u),  # logit of e^{T*} = u / (u + 1)
    ),
    "jeffrey": (lambda u: (u - 1) * np.log(u), lambda u: np.log(u) + 1 - 1 / u),  # g_f = id
}


@pytest.mark.parametrize("f", F_NAMES)
def test_fgan_bound_is_tight_at_the_optimal_critic(f):
    """Nowozin et al. 2016, Eq. 4-5: sup_T E_P T - E_Q f*(T) = D_f(P || Q), at T* = f'(p / q)."""
    p, q, ra, fa = _atoms()
    f_fn, v_star = F_REF[f]
    u = p / q
    divergence = float(np.sum(q * f_fn(u)))
    obj = get_objective(f"fgan-{f}")
    v = torch.tensor(v_star(u), dtype=torch.float64)
    bound = -obj.d_loss(v[ra][None], v[fa][None])
    assert bound.item() == pytest.approx(divergence, abs=1e-10)
    for shift in (-0.3, 0.2):  # any other critic gives a strictly lower bound
        w = v + shift * torch.tensor([1.0, -1.0], dtype=torch.float64)
        assert -obj.d_loss(w[ra][None], w[fa][None]).item() < divergence


def test_fgan_gan_row_reproduces_the_gan_losses():
    real, fake = torch.randn(2, 6), torch.randn(2, 6)
    heuristic, saturating = (
        get_objective("fgan-gan"),
        get_objective("fgan-gan", g_cost="saturating"),
    )
    mm, ns = get_objective("minimax"), get_objective("non-saturating")
    torch.testing.assert_close(heuristic.d_loss(real, fake), mm.d_loss(real, fake))
    torch.testing.assert_close(heuristic.g_loss(fake), ns.g_loss(fake))
    torch.testing.assert_close(saturating.g_loss(fake), mm.g_loss(fake))


def test_fgan_names_follow_the_divergence_table():
    assert tuple(F_NAMES) == tuple(F_DIVERGENCES)


def test_unknown_names_and_options():
    with pytest.raises(ValueError, match="valid: minimax, non-saturating, wgan, wgan-gp, fgan-kl"):
        get_objective("gan")
    with pytest.raises(TypeError):
        get_objective("minimax", clip=0.1)
    with pytest.raises(ValueError, match="heuristic, saturating"):
        get_objective("fgan-kl", g_cost="other")


def test_wgan_losses_and_clip_hook():
    obj = get_objective("wgan")
    assert obj.clip == 0.01 and get_objective("wgan", clip=0.1).clip == 0.1
    real, fake = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.5, -0.5]])
    torch.testing.assert_close(obj.d_loss(real, fake), torch.tensor([-2.0]))
    torch.testing.assert_close(obj.g_loss(fake), torch.tensor([0.0]))
    assert get_objective("wgan-gp").penalty_weight == 10.0


def test_gradient_penalty_of_a_linear_critic():
    """f_s(x) = <w_s, x> has gradient w_s everywhere: penalty (||w_s|| - 1)^2, exactly."""
    w = torch.tensor([[3.0, 4.0], [0.6, 0.8], [0.0, 0.5]], dtype=torch.float64, requires_grad=True)

    def critic(x):  # (S, B, 2) -> (S, B, 1)
        return torch.einsum("sbd,sd->sb", x, w).unsqueeze(-1)

    real = torch.randn(3, 5, 2, dtype=torch.float64)
    fake = torch.randn(3, 5, 2, dtype=torch.float64)
    pen = gradient_penalty(critic, real, fake, Stream([0, 1, 2], "data"))
    norms = w.detach().norm(dim=1)
    torch.testing.assert_close(pen, (norms - 1) ** 2, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(pen.sum(), w)  # differentiable wrt the critic's weights
    expected = 2 * (norms - 1)[:, None] * w.detach() / norms[:, None]
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)


def test_gradient_penalty_batched_equals_separate():
    seeds = [5, 6]
    critic = BatchedMLP((2, 8, 1), seeds, activation="tanh").double()
    real = torch.randn(2, 9, 2, dtype=torch.float64)
    fake = torch.randn(2, 9, 2, dtype=torch.float64)
    both = gradient_penalty(critic, real, fake, Stream(seeds, "data"))
    for i, s in enumerate(seeds):
        single = BatchedMLP((2, 8, 1), [s], activation="tanh").double()
        one = gradient_penalty(single, real[i : i + 1], fake[i : i + 1], Stream([s], "data"))
        torch.testing.assert_close(both[i], one[0], rtol=1e-12, atol=1e-12)
