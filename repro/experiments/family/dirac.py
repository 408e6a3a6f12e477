"""The Dirac-GAN of Mescheder, Geiger & Nowozin 2018 (Sec. 2-3): vector fields, methods, updates and
eigenvalues (used by dirac-gan; pure functions, no training data).

Data delta_0, generator delta_theta, linear discriminator D_psi(x) = psi x. With
f(t) = -log(1 + exp(-t)) the GAN objective is L(theta, psi) = f(psi theta) + f(0) (Eq. 1-2 of the
paper, in its sign convention); G descends and D ascends, so the gradient vector field is

    v(theta, psi) = (-dL/dtheta, dL/dpsi) = (-psi f'(psi theta), theta f'(psi theta)),

and the unique equilibrium is (0, 0). f'(t) = sigmoid(-t): f'(0) = 1/2, f''(0) = -1/4.

Methods (each a small pure field function below, and one row of a method table so that the
simulation runs every method and every starting point in one batched tensor):

    gan             the field above (Jacobian at 0: eigenvalues +- i f'(0))
    ns-gan          G ascends f(-psi theta) instead: theta' = -psi f'(-psi theta)
    wgan            f(t) = t: v = (-psi, theta), psi clipped to [-c, c] after every D step
    wgan-gp         f(t) = t, D also descends gamma/2 (|psi| - g0)^2 (the WGAN-GP penalty)
    instance-noise  x -> x + eps, eps ~ N(0, std^2) on both sides: expectations by Gauss-Hermite
                    quadrature; eigenvalues std^2 f''(0) +- sqrt(std^4 f''(0)^2 - f'(0)^2)
    r1              D also descends gamma/2 psi^2 (R1: gamma/2 E ||grad D||^2 on the data);
                    eigenvalues -gamma/2 +- sqrt(gamma^2/4 - f'(0)^2)
    consensus       v - gamma grad(|v|^2 / 2) (Mescheder et al. 2017); at the equilibrium the
                    Jacobian is J - gamma J^T J: eigenvalues -gamma f'(0)^2 +- i f'(0)

Updates with step h: simultaneous x <- x + h v(x); alternating: n_d D steps psi <- psi + h v_psi
then one G step theta <- theta + h v_theta with the new psi. The linearised discrete map at the
equilibrium has spectral radius rho; rho < 1 predicts local convergence.

The closed-form eigenvalues are compared with a numeric Jacobian computed independently: the
field is rebuilt by autograd from each method's objective (not from the hand-written field) and
differentiated again by autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

Field = tuple[torch.Tensor, torch.Tensor]


F1_0, F2_0 = 0.5, -0.25  # f'(0), f''(0) for f(t) = -log(1 + exp(-t))


def f_gan(t: torch.Tensor) -> torch.Tensor:
    """f(t) = -log(1 + exp(-t)) = log sigmoid(t) (Mescheder et al. 2018, Sec. 2)."""
    return torch.nn.functional.logsigmoid(t)


def f1(t: torch.Tensor) -> torch.Tensor:
    """f'(t) = sigmoid(-t)."""
    return torch.sigmoid(-t)


def f2(t: torch.Tensor) -> torch.Tensor:
    """f''(t) = -sigmoid(t) sigmoid(-t)."""
    return -torch.sigmoid(t) * torch.sigmoid(-t)


def hermite_rule(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of E g(eps), eps ~ N(0, 1), by n-point Gauss-Hermite (exact for
    polynomials of degree < 2n). Returns two float64 tensors of shape (n,)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return torch.from_numpy(x), torch.from_numpy(w / math.sqrt(2 * math.pi))


def gan_field(theta: torch.Tensor, psi: torch.Tensor) -> Field:
    """v = (-psi f'(psi theta), theta f'(psi theta)) (Mescheder et al. 2018, Eq. 3)."""
    a = f1(psi * theta)
    return -psi * a, theta * a


def ns_gan_field(theta: torch.Tensor, psi: torch.Tensor) -> Field:
    """Non-saturating: G ascends f(-psi theta): v = (-psi f'(-psi theta), theta f'(psi theta))."""
    return -psi * f1(-psi * theta), theta * f1(psi * theta)


def wgan_field(theta: torch.Tensor, psi: torch.Tensor) -> Field:
    """f(t) = t: v = (-psi, theta); the clipping |psi| <= c is applied by the update, not here."""
    return -psi, theta.clone()


def wgan_gp_field(theta: torch.Tensor, psi: torch.Tensor, gamma: float, target: float) -> Field:
    """WGAN, D descending gamma/2 (|psi| - g0)^2: v = (-psi, theta - gamma (|psi| - g0) sgn psi).

    Gulrajani et al. 2017's penalty (||grad D|| - g0)^2 with ||grad D|| = |psi| in Dirac-GAN.
    """
    return -psi, theta - gamma * (psi.abs() - target) * torch.sign(psi)


def r1_field(theta: torch.Tensor, psi: torch.Tensor, gamma: float) -> Field:
    """GAN field with D descending R1 = gamma/2 psi^2: v = (-psi f'(psi theta),
    theta f'(psi theta) - gamma psi) (Mescheder et al. 2018, Sec. 3.3 and Eq. 9)."""
    v_theta, v_psi = gan_field(theta, psi)
    return v_theta, v_psi - gamma * psi


def instance_noise_field(
    theta: torch.Tensor, psi: torch.Tensor, noise_std: float, n_nodes: int = 40
) -> Field:
    """GAN field with noise eps ~ N(0, std^2) added to real and fake samples:

        theta' = -E[psi f'(psi (theta + eps))]
        psi'   =  E[(theta + eps) f'(psi (theta + eps))] - E[eps f'(-psi eps)]

    (Mescheder et al. 2018, Sec. 3.2; Sonderby et al. 2016), expectations by Gauss-Hermite.
    """
    x, w = hermite_rule(n_nodes)
    eps = noise_std * x.to(theta)  # (K,)
    u = theta.unsqueeze(-1) + eps  # (..., K)
    p = psi.unsqueeze(-1)
    w = w.to(theta)
    v_theta = -(w * p * f1(p * u)).sum(-1)
    v_psi = (w * u * f1(p * u)).sum(-1) - (w * eps * f1(-p * eps)).sum(-1)
    return v_theta, v_psi


def consensus_field(theta: torch.Tensor, psi: torch.Tensor, gamma: float) -> Field:
    """Consensus optimisation on the GAN field: v - gamma grad(|v|^2 / 2), with
    |v|^2 / 2 = (theta^2 + psi^2) a^2 / 2, a = f'(psi theta), a' = f''(psi theta):

        d/dtheta = theta a^2 + (theta^2 + psi^2) a a' psi
        d/dpsi   = psi a^2   + (theta^2 + psi^2) a a' theta     (Mescheder et al. 2017, Alg. 1)
    """
    a, da = f1(psi * theta), f2(psi * theta)
    r2 = theta**2 + psi**2
    v_theta, v_psi = gan_field(theta, psi)
    g_theta = theta * a**2 + r2 * a * da * psi
    g_psi = psi * a**2 + r2 * a * da * theta
    return v_theta - gamma * g_theta, v_psi - gamma * g_psi


@dataclass(frozen=True)
class Method:
    """One training method: base loss ("gan", "ns-gan", "wgan") plus regularisers (0 = off)."""

    name: str
    loss: str = "gan"
    clip: float = math.inf  # WGAN: |psi| <= clip after every D step
    gp_gamma: float = 0.0  # WGAN-GP: gamma/2 (|psi| - gp_target)^2
    gp_target: float = 1.0
    r1_gamma: float = 0.0
    noise_std: float = 0.0
    consensus_gamma: float = 0.0
    label: str = ""

    @property
    def smooth(self) -> bool:
        """False where the field is not differentiable at the equilibrium (WGAN-GP: sgn psi)."""
        return self.gp_gamma == 0.0

    def field(self, theta: torch.Tensor, psi: torch.Tensor) -> Field:
        """This method's field through the single-method pure functions above."""
        if self.loss == "wgan":
            if self.gp_gamma:
                return wgan_gp_field(theta, psi, self.gp_gamma, self.gp_target)
            return wgan_field(theta, psi)
        if self.loss == "ns-gan":
            return ns_gan_field(theta, psi)
        if self.noise_std:
            return instance_noise_field(theta, psi, self.noise_std)
        if self.r1_gamma:
            return r1_field(theta, psi, self.r1_gamma)
        if self.consensus_gamma:
            return consensus_field(theta, psi, self.consensus_gamma)
        return gan_field(theta, psi)


LOSSES = ("gan", "ns-gan", "wgan")


def make_methods(params: Mapping) -> list[Method]:
    """The eight methods of the claim, with the spec's hyperparameters."""
    c, gp, g0 = float(params["wgan_clip"]), float(params["gp_gamma"]), float(params["gp_target"])
    noise, cons = float(params["noise_std"]), float(params["consensus_gamma"])
    methods = [
        Method("gan", label="GAN"),
        Method("ns-gan", loss="ns-gan", label="non-saturating GAN"),
        Method("wgan", loss="wgan", clip=c, label=f"WGAN (clip {c:g})"),
        Method(
            "wgan-gp", loss="wgan", gp_gamma=gp, gp_target=g0, label=f"WGAN-GP ($\\gamma$={gp:g})"
        ),
        Method("instance-noise", noise_std=noise, label=f"instance noise (std {noise:g})"),
    ]
    for g in params["r1_gammas"]:
        methods.append(Method(f"r1-{g:g}", r1_gamma=float(g), label=f"R1 ($\\gamma$={g:g})"))
    methods.append(
        Method("consensus", consensus_gamma=cons, label=f"consensus ($\\gamma$={cons:g})")
    )
    return methods


class MethodTable:
    """Every method's coefficients as (M, 1) float64 tensors, for one batched field evaluation."""

    def __init__(self, methods: Sequence[Method], device=None):
        for m in methods:
            if m.loss not in LOSSES:
                raise ValueError(f"unknown loss {m.loss!r}; valid: {', '.join(LOSSES)}")
            if m.consensus_gamma and (m.loss != "gan" or m.noise_std or m.r1_gamma):
                raise ValueError(f"{m.name}: consensus is implemented on the plain GAN field only")

        def col(values) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64, device=device).reshape(-1, 1)

        self.methods = list(methods)
        self.is_ns = col([m.loss == "ns-gan" for m in methods])
        self.is_wgan = col([m.loss == "wgan" for m in methods])
        self.clip = col([m.clip for m in methods])
        self.gp_gamma = col([m.gp_gamma for m in methods])
        self.gp_target = col([m.gp_target for m in methods])
        self.r1_gamma = col([m.r1_gamma for m in methods])
        self.noise_std = col([m.noise_std for m in methods])
        self.consensus_gamma = col([m.consensus_gamma for m in methods])


def batched_field(theta: torch.Tensor, psi: torch.Tensor, table: MethodTable) -> Field:
    """Every method's field at once: theta, psi (M, P) -> (theta', psi') (M, P); row m uses
    method m. Equals ``table.methods[m].field`` row by row (tested)."""
    x, w = hermite_rule()
    eps = table.noise_std.unsqueeze(-1) * x.to(theta)  # (M, 1, K)
    u, p, w = theta.unsqueeze(-1) + eps, psi.unsqueeze(-1), w.to(theta)
    sign_g = 1.0 - 2.0 * table.is_ns.unsqueeze(-1)  # G's argument: psi theta, or -psi theta (NS)
    gan_theta = -(w * p * f1(sign_g * p * u)).sum(-1)
    gan_psi = (w * u * f1(p * u)).sum(-1) - (w * eps * f1(-p * eps)).sum(-1)
    wgan = table.is_wgan
    v_theta = wgan * (-psi) + (1 - wgan) * gan_theta
    v_psi = wgan * theta + (1 - wgan) * gan_psi
    v_psi = v_psi - table.r1_gamma * psi
    v_psi = v_psi - table.gp_gamma * (psi.abs() - table.gp_target) * torch.sign(psi)
    a, da = f1(psi * theta), f2(psi * theta)
    r2 = theta**2 + psi**2
    v_theta = v_theta - table.consensus_gamma * (theta * a**2 + r2 * a * da * psi)
    v_psi = v_psi - table.consensus_gamma * (psi * a**2 + r2 * a * da * theta)
    return v_theta, v_psi


def step(
    theta: torch.Tensor, psi: torch.Tensor, table: MethodTable, h: float, scheme: str, d_steps: int
) -> Field:
    """One iteration: simultaneous (x + h v(x)) or alternating (d_steps D steps, then G).

    WGAN's clipping |psi| <= c follows every update of psi.
    """
    if scheme == "simultaneous":
        v_theta, v_psi = batched_field(theta, psi, table)
        return theta + h * v_theta, _clip(psi + h * v_psi, table)
    if scheme != "alternating":
        raise ValueError(f"unknown scheme {scheme!r}; valid: simultaneous, alternating")
    for _ in range(d_steps):
        psi = _clip(psi + h * batched_field(theta, psi, table)[1], table)
    return theta + h * batched_field(theta, psi, table)[0], psi


def _clip(psi: torch.Tensor, table: MethodTable) -> torch.Tensor:
    return torch.minimum(torch.maximum(psi, -table.clip), table.clip)


def simulate(
    start: torch.Tensor, table: MethodTable, h: float, n_steps: int, scheme: str, d_steps: int = 1
) -> torch.Tensor:
    """Trajectories of every method from every start: start (P, 2) -> (n_steps + 1, M, P, 2)."""
    m = len(table.methods)
    theta = start[:, 0].expand(m, -1).clone()
    psi = start[:, 1].expand(m, -1).clone()
    out = [torch.stack([theta, psi], -1)]
    for _ in range(n_steps):
        theta, psi = step(theta, psi, table, h, scheme, d_steps)
        out.append(torch.stack([theta, psi], -1))
    return torch.stack(out)


def closed_form_eigenvalues(method: Method) -> np.ndarray:
    """Eigenvalues of the field's Jacobian at (0, 0) from the papers' formulas, sorted by
    imaginary part; NaN for WGAN-GP (the field is not differentiable there)."""
    if not method.smooth:
        return np.full(2, np.nan + 0j)
    if method.loss == "wgan":
        centre, disc = 0.0, -1.0 + 0j  # +- i
    elif method.noise_std:
        s2 = method.noise_std**2
        centre, disc = s2 * F2_0, (s2 * F2_0) ** 2 - F1_0**2 + 0j
    elif method.r1_gamma:
        g = method.r1_gamma
        centre, disc = -g / 2, g**2 / 4 - F1_0**2 + 0j
    elif method.consensus_gamma:
        centre, disc = -method.consensus_gamma * F1_0**2, -(F1_0**2) + 0j
    else:  # gan, ns-gan
        centre, disc = 0.0, -(F1_0**2) + 0j
    root = np.sqrt(disc)
    return sort_eigenvalues(np.array([centre - root, centre + root]))


def sort_eigenvalues(ev: np.ndarray) -> np.ndarray:
    """Eigenvalues in a fixed order (by imaginary, then real part), so two lists compare."""
    return ev[np.lexsort((ev.real, ev.imag))]


def _objectives(method: Method, n_nodes: int = 40) -> tuple[Callable, Callable]:
    """(L_G, L_D): G minimises L_G, D maximises L_D, as scalar functions of (theta, psi)."""
    x, w = hermite_rule(n_nodes)

    def base(theta, psi):
        if method.loss == "wgan":
            return psi * theta
        if method.noise_std:
            eps = method.noise_std * x
            return (w * f_gan(psi * (theta + eps))).sum() + (w * f_gan(-psi * eps)).sum()
        return f_gan(psi * theta) + f_gan(torch.zeros_like(psi))

    def loss_g(theta, psi):
        return -f_gan(-psi * theta) if method.loss == "ns-gan" else base(theta, psi)

    def loss_d(theta, psi):
        reg = method.r1_gamma / 2 * psi**2
        reg = reg + method.gp_gamma / 2 * (psi.abs() - method.gp_target) ** 2
        return base(theta, psi) - reg

    return loss_g, loss_d


def autograd_field(method: Method, x: torch.Tensor) -> torch.Tensor:
    """The field from the objectives by autograd: x = (theta, psi) -> (-dL_G/dtheta, dL_D/dpsi),
    with consensus' -gamma grad(|v|^2 / 2) also by autograd. Differentiable (create_graph)."""
    loss_g, loss_d = _objectives(method)
    theta, psi = x[0], x[1]
    (g_theta,) = torch.autograd.grad(loss_g(theta, psi), theta, create_graph=True)
    (g_psi,) = torch.autograd.grad(loss_d(theta, psi), psi, create_graph=True)
    v = torch.stack([-g_theta, g_psi])
    if method.consensus_gamma:
        (grad_c,) = torch.autograd.grad(0.5 * (v**2).sum(), x, create_graph=True)
        v = v - method.consensus_gamma * grad_c
    return v


def numeric_jacobian(method: Method, point: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """d(autograd_field)/d(theta, psi) at ``point`` by autograd, float64 (2, 2)."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_(True) if not x.requires_grad else x
        return autograd_field(method, x)

    x0 = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    return torch.autograd.functional.jacobian(fn, x0, create_graph=False).detach().numpy()


def map_spectral_radius(method: Method, h: float, scheme: str, d_steps: int = 1) -> float:
    """Spectral radius of the simulator's one-iteration map linearised at (0, 0) (autograd
    through ``step``); NaN where the field is not differentiable there."""
    if not method.smooth:
        return float("nan")
    table = MethodTable([method])

    def one(x: torch.Tensor) -> torch.Tensor:
        th, ps = step(x[0].reshape(1, 1), x[1].reshape(1, 1), table, h, scheme, d_steps)
        return torch.stack([th.reshape(()), ps.reshape(())])

    jac = torch.autograd.functional.jacobian(one, torch.zeros(2, dtype=torch.float64))
    return float(np.abs(np.linalg.eigvals(jac.numpy())).max())
