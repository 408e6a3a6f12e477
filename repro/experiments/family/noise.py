"""Instance noise on the parallel lines of WGAN Example 1 (Arjovsky & Bottou 2017, Sec. 3): the
closed forms of the noise family (``js_2d``: noise-restores-overlap and noise-bound;
``half_circle``: noise-bound and annealed-noise-training; the densities, JS, D*'s accuracy and
the generator-gradient limit: noise-restores-overlap; ``js_noisy_lines_mc``: its independent
Monte-Carlo cross-check, used by the tests).

P0 = law of (0, Z), P_theta = law of (theta, Z), Z ~ U[0, 1]. With eps ~ N(0, s^2 I) added to both
lines the densities factorise, p0(x) = phi_s(x1) h_s(x2), p_theta(x) = phi_s(x1 - theta) h_s(x2),
with h_s(x2) = Phi(x2 / s) - Phi((x2 - 1) / s) (U[0, 1] blurred by the noise). JS is computed by
2-D quadrature (``js_2d``); because the x2 factor is common it equals the JS of N(0, s^2) and
N(theta, s^2). Also the half circle used as a 1-D curve in 2-D.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy import special

from repro import divergences as dv

GRID_HALFWIDTH_STDS = 9.0  # quadrature grids reach 9 noise stds past the supports (phi(9) ~ 1e-18)


def blurred_uniform_pdf(x2: np.ndarray, noise_std: float) -> np.ndarray:
    """Density of Z + e, Z ~ U[0, 1], e ~ N(0, s^2): Phi(x2 / s) - Phi((x2 - 1) / s)."""
    x2 = np.asarray(x2, dtype=float)
    return special.ndtr(x2 / noise_std) - special.ndtr((x2 - 1.0) / noise_std)


def noisy_lines_pdf(x1: np.ndarray, x2: np.ndarray, theta: float, noise_std: float) -> np.ndarray:
    """Density of (theta, Z) + eps, eps ~ N(0, s^2 I_2): phi_s(x1 - theta) h_s(x2) (broadcasts)."""
    return dv.gaussian_pdf(x1, theta, noise_std) * blurred_uniform_pdf(x2, noise_std)


def js_2d(p: np.ndarray, q: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> float:
    """JSD(P || Q) = KL(P||M)/2 + KL(Q||M)/2 by the 2-D trapezoid rule; p, q on the mesh (x1, x2).

    p, q: (len(x1), len(x2)) densities on ``np.meshgrid(x1, x2, indexing="ij")``. Natural log.
    """
    m = 0.5 * (p + q)
    integrand = 0.5 * special.rel_entr(p, m) + 0.5 * special.rel_entr(q, m)
    return float(np.trapezoid(np.trapezoid(integrand, x2, axis=1), x1))


def lines_grid(theta: float, noise_std: float, n_grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature axes covering both noisy lines out to 9 noise stds: (x1, x2), n_grid each."""
    pad = GRID_HALFWIDTH_STDS * noise_std
    x1 = np.linspace(min(0.0, theta) - pad, max(0.0, theta) + pad, n_grid)
    x2 = np.linspace(-pad, 1.0 + pad, n_grid)
    return x1, x2


@functools.lru_cache(maxsize=4096)
def js_noisy_lines(theta: float, noise_std: float, n_grid: int = 401) -> float:
    """JSD(P_{0+eps} || P_{theta+eps}) by 2-D quadrature (Arjovsky & Bottou 2017, Thm 3.1).

    noise_std = 0 gives the closed form of WGAN Example 1: log 2 for theta != 0, else 0.
    """
    if noise_std == 0:
        return float(dv.parallel_lines(theta)["js"])
    x1, x2 = lines_grid(theta, noise_std, n_grid)
    g1, g2 = np.meshgrid(x1, x2, indexing="ij")
    p = noisy_lines_pdf(g1, g2, 0.0, noise_std)
    q = noisy_lines_pdf(g1, g2, theta, noise_std)
    return js_2d(p, q, x1, x2)


def js_noisy_lines_mc(
    theta: float, noise_std: float, n: int, gen: torch.Generator
) -> tuple[float, float]:
    """Monte Carlo JSD of the noisy lines and its standard error, from the exact log-densities.

    JSD = E_P[log(2p / (p + q))] / 2 + E_Q[log(2q / (p + q))] / 2 with
    log(2p / (p + q)) = log 2 - softplus(log q - log p); n samples from each side.
    """
    z = torch.rand(2, n, generator=gen, dtype=torch.float64).numpy()
    e = noise_std * torch.randn(2, n, 2, generator=gen, dtype=torch.float64).numpy()
    out = []
    for k, (own, other) in enumerate(((0.0, theta), (theta, 0.0))):
        x1, x2 = own + e[k, :, 0], z[k] + e[k, :, 1]
        lp = np.log(noisy_lines_pdf(x1, x2, own, noise_std))
        lq = np.log(noisy_lines_pdf(x1, x2, other, noise_std))
        out.append(dv.LOG2 - np.logaddexp(0.0, lq - lp))
    terms = 0.5 * (out[0] + out[1])  # paired draws: one term per pair of samples
    return float(terms.mean()), float(terms.std(ddof=1) / math.sqrt(n))


def gen_grad_limit(theta: float, noise_std: float, n_grid: int = 4001) -> float:
    """2 dJS/dtheta: d/dtheta E log(1 - D*(x)), x ~ P_{theta+eps}, D* frozen (A&B Cor 3.2).

    The x2 factor is common to both densities and integrates out, so with q = phi_s(x1 - theta),
    p = phi_s(x1): dJS/dtheta = (1/2) int dq/dtheta log(2q / (p + q)) dx1,
    dq/dtheta = (x1 - theta) / s^2 q (the functional derivative of JSD in q is log(2q/(p+q))/2).
    0 for noise_std = 0 (JS is constant in theta != 0).
    """
    if noise_std == 0:
        return 0.0
    pad = GRID_HALFWIDTH_STDS * noise_std
    x = np.linspace(min(0.0, theta) - pad, max(0.0, theta) + pad, n_grid)
    lp = -0.5 * (x / noise_std) ** 2
    lq = -0.5 * ((x - theta) / noise_std) ** 2
    q = dv.gaussian_pdf(x, theta, noise_std)
    log_ratio = dv.LOG2 - np.logaddexp(0.0, lp - lq)  # log(2q / (p + q))
    return float(np.trapezoid((x - theta) / noise_std**2 * q * log_ratio, x))  # 2 * (1/2) int


def bayes_accuracy(theta: float, noise_std: float) -> float:
    """Balanced accuracy of D* on the noisy lines: Phi(|theta| / (2 s)); 1 at s = 0, theta != 0.

    D* = p0 / (p0 + p_theta) thresholds x1 at theta / 2; each side errs with probability
    P(N(0, s^2) > |theta| / 2). 1/2 at theta = 0.
    """
    if theta == 0:
        return 0.5
    if noise_std == 0:
        return 1.0
    return float(special.ndtr(abs(theta) / (2.0 * noise_std)))


def half_circle(u: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """The 1-D curve in 2-D used as a target: (cos pi u, sin pi u), u in [0, 1] (radius 1).

    A tensor ``u`` gives a tensor on its device, an array an array."""
    if isinstance(u, torch.Tensor):
        return torch.stack([torch.cos(math.pi * u), torch.sin(math.pi * u)], dim=-1)
    return np.stack([np.cos(np.pi * u), np.sin(np.pi * u)], axis=-1)
