"""Divergences between 1-D densities, their closed forms, and the f-GAN conjugate table.

Densities are numpy arrays sampled on a uniform 1-D grid ``x``; integrals use the trapezoid
rule, which is spectrally accurate for smooth, rapidly decaying integrands such as Gaussian
mixtures on a wide grid. Where a divergence is infinite (mass of P where Q vanishes) the
functions return ``inf`` rather than a large finite number.

The f-divergence table (``F_DIVERGENCES``) follows Nowozin, Cseke & Tomioka 2016 (f-GAN,
Table 2) with the convention D_f(P || Q) = int q f(p / q) dx, P the data and Q the model. Its
functions accept numpy arrays or torch tensors, so training code uses the same table.

References:
    Goodfellow et al. 2014, Generative Adversarial Nets (Prop. 1, Thm. 1).
    Arjovsky & Bottou 2017, Towards Principled Methods for Training GANs (Thm. 2.3).
    Arjovsky, Chintala & Bottou 2017, Wasserstein GAN (Example 1).
    Nowozin, Cseke & Tomioka 2016, f-GAN (Table 1, Table 2, Eq. 4-6).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import integrate, optimize, special

LOG2 = math.log(2.0)
LOG4 = math.log(4.0)

Array = Any  # np.ndarray or torch.Tensor: the f-table works on both


# ---------------------------------------------------------------------------------------------
# densities and quadrature


def _trapz(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid rule; an inf anywhere in a non-negative integrand gives inf."""
    return float(np.trapezoid(y, x))


def gaussian_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Density of N(mean, std^2) at ``x``: exp(-(x - mean)^2 / (2 std^2)) / (std sqrt(2 pi))."""
    z = (np.asarray(x, dtype=float) - mean) / std
    return np.exp(-0.5 * z * z) / (std * math.sqrt(2.0 * math.pi))


def mixture_pdf(
    x: np.ndarray, weights: Sequence[float], means: Sequence[float], stds: Sequence[float]
) -> np.ndarray:
    """Density of the Gaussian mixture sum_k w_k N(mean_k, std_k^2) at ``x`` (weights sum to 1)."""
    w = np.asarray(weights, dtype=float)
    if not math.isclose(w.sum(), 1.0, rel_tol=1e-9):
        raise ValueError(f"mixture weights must sum to 1, got {w.sum()}")
    return sum(wk * gaussian_pdf(x, m, s) for wk, m, s in zip(w, means, stds, strict=True))


# ---------------------------------------------------------------------------------------------
# divergences by quadrature


def kl(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """KL(P || Q) = int p log(p / q) dx (nats); inf where p > 0 = q. Reverse KL is kl(q, p, x)."""
    return _trapz(special.rel_entr(p, q), x)


def js(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """Jensen-Shannon divergence, natural log: JSD = KL(P||M)/2 + KL(Q||M)/2, M = (P + Q)/2.

    0 <= JSD <= log 2, with log 2 exactly when the supports are disjoint (Arjovsky & Bottou 2017,
    Thm. 2.3). Goodfellow et al. 2014, Thm. 1: max_D V(D, G) = -log 4 + 2 JSD(p_data || p_g).
    """
    m = 0.5 * (p + q)
    return _trapz(0.5 * special.rel_entr(p, m) + 0.5 * special.rel_entr(q, m), x)


def tv(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """Total variation distance TV = (1/2) int |p - q| dx, in [0, 1]."""
    return _trapz(0.5 * np.abs(p - q), x)


def w1_1d(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """Wasserstein-1 distance in 1-D: W1 = int |F_p(x) - F_q(x)| dx with F the CDFs.

    The CDFs are cumulative trapezoid integrals of the densities on the grid, so both densities
    must be (numerically) supported inside the grid.
    """
    cdf_p = integrate.cumulative_trapezoid(p, x, initial=0.0)
    cdf_q = integrate.cumulative_trapezoid(q, x, initial=0.0)
    return _trapz(np.abs(cdf_p - cdf_q), x)


def kl_gaussians(mean1: float, std1: float, mean2: float, std2: float) -> float:
    """Closed form KL(N(mean1, std1^2) || N(mean2, std2^2)).

    KL = log(std2 / std1) + (std1^2 + (mean1 - mean2)^2) / (2 std2^2) - 1/2.
    """
    return math.log(std2 / std1) + (std1**2 + (mean1 - mean2) ** 2) / (2.0 * std2**2) - 0.5


def pearson_gaussians(mean1: float, std1: float, mean2: float, std2: float) -> float:
    """Closed form Pearson chi^2(P || Q) = int (p - q)^2 / q dx for two Gaussians.

    P = N(mean1, std1^2), Q = N(mean2, std2^2):

    chi^2 = std2^2 / (std1 sqrt(d)) exp((mean1 - mean2)^2 / d) - 1 with d = 2 std2^2 - std1^2,
    finite iff 2 std2^2 > std1^2 (inf otherwise). Neyman chi^2(P || Q) is pearson_gaussians with
    the two distributions swapped.
    """
    denom = 2.0 * std2**2 - std1**2
    if denom <= 0:
        return math.inf
    return std2**2 / (std1 * math.sqrt(denom)) * math.exp((mean1 - mean2) ** 2 / denom) - 1.0


def squared_hellinger_gaussians(mean1: float, std1: float, mean2: float, std2: float) -> float:
    """Closed form int (sqrt p - sqrt q)^2 dx = 2 - 2 BC for two Gaussians (f-GAN's scaling, max 2).

    BC = sqrt(2 std1 std2 / (std1^2 + std2^2)) exp(-(mean1 - mean2)^2 / (4 (std1^2 + std2^2))).
    """
    var_sum = std1**2 + std2**2
    bc = math.sqrt(2.0 * std1 * std2 / var_sum) * math.exp(-((mean1 - mean2) ** 2) / (4 * var_sum))
    return 2.0 - 2.0 * bc


# ---------------------------------------------------------------------------------------------
# the GAN value function (Goodfellow et al. 2014)


def optimal_discriminator(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Goodfellow et al. 2014, Prop. 1).

    ``p`` is p_data, ``q`` is p_g. Where both vanish D* is arbitrary; 1/2 is returned there.
    """
    total = p + q
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.5)


def gan_value(d: np.ndarray, p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """V(D, G) = int p_data log D + p_g log(1 - D) dx (Goodfellow et al. 2014, Eq. 1).

    At D = D* this equals -log 4 + 2 JSD(p_data || p_g) (Thm. 1). Uses 0 log 0 = 0.
    """
    return _trapz(special.xlogy(p, d) + special.xlogy(q, 1.0 - d), x)


def gan_value_logits(logits: np.ndarray, p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """V(D, G) for D = sigmoid(logits), in the stable log-sigmoid form.

    V = int p log sigmoid(l) + p_g log sigmoid(-l) dx, log sigmoid(l) = -log(1 + exp(-l)).
    """
    log_d = -np.logaddexp(0.0, -logits)
    log_1md = -np.logaddexp(0.0, logits)
    return _trapz(p * log_d + q * log_1md, x)


# ---------------------------------------------------------------------------------------------
# parallel lines (WGAN Example 1) and exact W1 on samples


def parallel_lines(theta: float | np.ndarray) -> dict[str, np.ndarray]:
    """Closed forms for P0 = law of (0, Z), P_theta = law of (theta, Z), Z ~ U[0, 1].

    WGAN (Arjovsky et al. 2017), Example 1: W = |theta|; JS = log 2, KL = reverse KL = inf,
    TV = 1 for theta != 0; every one of them is 0 at theta = 0.
    Returns a dict with keys ``w``, ``js``, ``kl``, ``reverse_kl``, ``tv`` (arrays like theta).
    """
    th = np.asarray(theta, dtype=float)
    apart = th != 0
    return {
        "w": np.abs(th),
        "js": np.where(apart, LOG2, 0.0),
        "kl": np.where(apart, np.inf, 0.0),
        "reverse_kl": np.where(apart, np.inf, 0.0),
        "tv": np.where(apart, 1.0, 0.0),
    }


def w1_samples(a: np.ndarray, b: np.ndarray) -> float:
    """Exact W1 between two empirical measures (uniform weights), Euclidean ground cost.

    W1 = min over couplings gamma of sum_ij gamma_ij ||a_i - b_j||, solved as a linear program
    with POT's network simplex (``ot.emd2``). a: (n, d), b: (m, d); 1-D inputs are read as d = 1.
    Cost O(n m) memory; meant for a few thousand points.
    """
    import ot  # POT; imported here so the rest of the module does not need it

    a2 = np.asarray(a, dtype=float).reshape(len(a), -1)
    b2 = np.asarray(b, dtype=float).reshape(len(b), -1)
    cost = ot.dist(a2, b2, metric="euclidean")
    wa = np.full(len(a2), 1.0 / len(a2))
    wb = np.full(len(b2), 1.0 / len(b2))
    return float(ot.emd2(wa, wb, cost, numItermax=10_000_000))


# ---------------------------------------------------------------------------------------------
# f-divergences and their Fenchel conjugates (f-GAN, Table 2)


def _torch(a: Array) -> bool:
    return isinstance(a, torch.Tensor)


def _exp(a):
    return torch.exp(a) if _torch(a) else np.exp(a)


def _expm1(a):
    return torch.expm1(a) if _torch(a) else np.expm1(a)


def _log(a):
    return torch.log(a) if _torch(a) else np.log(a)


def _log1p(a):
    return torch.log1p(a) if _torch(a) else np.log1p(a)


def _sqrt(a):
    return torch.sqrt(a) if _torch(a) else np.sqrt(a)


def _xlogx(a):
    return torch.xlogy(a, a) if _torch(a) else special.xlogy(a, a)


def _softplus(a):
    """log(1 + exp(a)), stable for large |a|."""
    return F.softplus(a, beta=1.0, threshold=30.0) if _torch(a) else np.logaddexp(0.0, a)


@dataclass(frozen=True)
class FDivergence:
    """One row of the f-GAN table: generator f, its conjugate, and the output activation.

    Attributes:
        name: key in ``F_DIVERGENCES``.
        equals: what D_f(P || Q) = int q f(p/q) dx equals, in words.
        f: the convex generator f(u), u = p/q.
        f_prime: f'(u); the optimal variational function is T*(x) = f'(p(x)/q(x)).
        f_star: the closed-form Fenchel conjugate f*(t) = sup_u (u t - f(u)).
        f_star_domain: open interval (lo, hi) where f* is finite (dom f*).
        g_f: output activation mapping any real v into dom f*.
        f_star_g: f*(g_f(v)) in a numerically stable closed form (what training evaluates).
        f_domain: interval of u over which the conjugate's sup is taken.
        f_at_zero: f(0) = lim_{u -> 0+} f(u) (mass of Q where p = 0).
        f_slope_inf: lim_{u -> inf} f(u)/u (mass of P where q = 0).
    """

    name: str
    equals: str
    f: Callable[[Array], Array]
    f_prime: Callable[[Array], Array]
    f_star: Callable[[Array], Array]
    f_star_domain: tuple[float, float]
    g_f: Callable[[Array], Array]
    f_star_g: Callable[[Array], Array]
    f_domain: tuple[float, float] = (0.0, math.inf)
    f_at_zero: float = 0.0
    f_slope_inf: float = math.inf

    @property
    def f_one(self) -> float:
        """f(1) = D_f(P || P): 0 for a divergence, -log 4 for the GAN row."""
        return float(self.f(np.array(1.0)))


F_DIVERGENCES: dict[str, FDivergence] = {
    "kl": FDivergence(
        name="kl",
        equals="KL(P || Q)",
        f=_xlogx,
        f_prime=lambda u: _log(u) + 1.0,
        f_star=lambda t: _exp(t - 1.0),
        f_star_domain=(-math.inf, math.inf),
        g_f=lambda v: v,
        f_star_g=lambda v: _exp(v - 1.0),
    ),
    "reverse_kl": FDivergence(
        name="reverse_kl",
        equals="KL(Q || P)",
        f=lambda u: -_log(u),
        f_prime=lambda u: -1.0 / u,
        f_star=lambda t: -1.0 - _log(-t),
        f_star_domain=(-math.inf, 0.0),
        g_f=lambda v: -_exp(-v),
        f_star_g=lambda v: v - 1.0,  # -1 - log(exp(-v))
        f_at_zero=math.inf,
        f_slope_inf=0.0,
    ),
    "pearson": FDivergence(
        name="pearson",
        equals="Pearson chi^2(P || Q) = int (p - q)^2 / q",
        f=lambda u: (u - 1.0) ** 2,
        f_prime=lambda u: 2.0 * (u - 1.0),
        f_star=lambda t: 0.25 * t * t + t,
        f_star_domain=(-math.inf, math.inf),
        g_f=lambda v: v,
        f_star_g=lambda v: 0.25 * v * v + v,
        # f-GAN's conjugate t^2/4 + t is the sup over all real u; restricted to u >= 0 it is
        # -1 for t < -2. T* = 2(p/q - 1) >= -2, so the bound is unaffected.
        f_domain=(-math.inf, math.inf),
        f_at_zero=1.0,
    ),
    "neyman": FDivergence(
        name="neyman",
        equals="Neyman chi^2(P || Q) = int (p - q)^2 / p",
        f=lambda u: (1.0 - u) ** 2 / u,
        f_prime=lambda u: 1.0 - 1.0 / (u * u),
        f_star=lambda t: 2.0 - 2.0 * _sqrt(1.0 - t),
        f_star_domain=(-math.inf, 1.0),
        g_f=lambda v: 1.0 - _exp(-v),
        f_star_g=lambda v: 2.0 - 2.0 * _exp(-0.5 * v),  # sqrt(1 - g) = exp(-v/2)
        f_at_zero=math.inf,
        f_slope_inf=1.0,
    ),
    "squared_hellinger": FDivergence(
        name="squared_hellinger",
        equals="squared Hellinger int (sqrt p - sqrt q)^2 (max 2)",
        f=lambda u: (_sqrt(u) - 1.0) ** 2,
        f_prime=lambda u: 1.0 - 1.0 / _sqrt(u),
        f_star=lambda t: t / (1.0 - t),
        f_star_domain=(-math.inf, 1.0),
        g_f=lambda v: 1.0 - _exp(-v),
        f_star_g=lambda v: _expm1(v),  # (1 - e^-v) / e^-v
        f_at_zero=1.0,
        f_slope_inf=1.0,
    ),
    "js": FDivergence(
        name="js",
        equals="2 JSD(P || Q) = KL(P || M) + KL(Q || M), M = (P + Q)/2",
        f=lambda u: -(u + 1.0) * _log((1.0 + u) / 2.0) + _xlogx(u),
        f_prime=lambda u: _log(2.0 * u / (1.0 + u)),
        f_star=lambda t: -_log(2.0 - _exp(t)),
        f_star_domain=(-math.inf, LOG2),
        g_f=lambda v: LOG2 - _softplus(-v),
        f_star_g=lambda v: _softplus(v) - LOG2,  # -log(2 sigmoid(-v))
        f_at_zero=LOG2,
        f_slope_inf=LOG2,
    ),
    "gan": FDivergence(
        name="gan",
        equals="2 JSD(P || Q) - log 4",
        f=lambda u: _xlogx(u) - (u + 1.0) * _log1p(u),
        f_prime=lambda u: _log(u / (u + 1.0)),
        f_star=lambda t: -_log(-_expm1(t)),
        f_star_domain=(-math.inf, 0.0),
        g_f=lambda v: -_softplus(-v),  # log sigmoid(v) = log D
        f_star_g=lambda v: _softplus(v),  # -log(1 - sigmoid(v)) = -log(1 - D)
        f_slope_inf=0.0,
    ),
}


def get_f(name: str) -> FDivergence:
    """The f-GAN table row called ``name``; ValueError listing the valid names otherwise."""
    if name not in F_DIVERGENCES:
        raise ValueError(f"unknown f-divergence {name!r}; valid: {', '.join(F_DIVERGENCES)}")
    return F_DIVERGENCES[name]


def f_divergence(name: str, p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """D_f(P || Q) = int q f(p / q) dx by quadrature (f-GAN Eq. 1; P data, Q model).

    Where q = 0 < p the integrand is p * lim_{u->inf} f(u)/u (the perspective of f), where
    p = 0 < q it is q f(0); both may be inf. See ``FDivergence.equals`` for what each row gives:
    the ``js`` row is 2 JSD and the ``gan`` row is 2 JSD - log 4 (f-GAN Table 1).
    """
    row = get_f(name)
    pos_q, pos_p = q > 0, p > 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = np.where(pos_q, p / np.where(pos_q, q, 1.0), 1.0)
        fu = np.where(pos_p, row.f(np.where(pos_p, u, 1.0)), row.f_at_zero)
        inner = np.where(pos_q, q * fu, 0.0)
        outer = np.where(pos_p & ~pos_q, p * row.f_slope_inf, 0.0)
        integrand = inner + np.where(pos_p & ~pos_q, outer, 0.0)
    return _trapz(integrand, x)


def conjugate_numeric(name: str, t: float | np.ndarray) -> np.ndarray:
    """f*(t) = sup_{u in dom f} (u t - f(u)) by bounded scalar optimisation (scipy Brent).

    Independent of the closed forms in ``F_DIVERGENCES`` (uses only f), to check them. u t - f(u)
    is concave in u, so it is unimodal in s with u = exp(s) on (0, inf) domains; the search runs
    over s in [-40, 40] (u in [4e-18, 2e17]) or u in [-1e3, 1e3] on the real line. Only t inside
    dom f* is meaningful (outside, the sup is +inf and the search stops at its bound).
    """
    row = get_f(name)
    on_line = row.f_domain[0] == -math.inf
    to_u = (lambda s: s) if on_line else math.exp
    bounds = (-1e3, 1e3) if on_line else (-40.0, 40.0)

    def one(tv_: float) -> float:
        def neg(s: float) -> float:
            u = to_u(s)
            return -(u * tv_ - float(row.f(np.array(u))))

        res = optimize.minimize_scalar(
            neg, bounds=bounds, method="bounded", options={"xatol": 1e-12, "maxiter": 2000}
        )
        return -float(res.fun)

    t_arr = np.asarray(t, dtype=float)
    return np.vectorize(one, otypes=[float])(t_arr)


# ---------------------------------------------------------------------------------------------
# Jeffrey divergence (f-GAN Table 2): KL(P || Q) + KL(Q || P), f(u) = (u - 1) log u


def log_lambertw_exp(a: Array) -> Array:
    """log W(exp(a)), W the principal Lambert W: the y solving exp(y) + y = a.

    Newton's method in y (the map y -> exp(y) + y is convex and increasing, so Newton converges
    from any start; 30 steps reach float64 precision for |a| <= 1e6). Working with a = log x
    keeps W(x) finite where x = exp(a) would overflow. For torch inputs the iterations run
    without a graph and one final Newton step is taken with it, which gives the exact derivative
    dy/da = 1 / (W + 1) at the fixed point (so d W / d a = W / (1 + W)).
    """
    if _torch(a):
        with torch.no_grad():
            y = _log_lambertw_exp_iterate(a.detach(), torch.exp, torch.log, torch.where)
        w = torch.exp(y)
        return y - (w + y - a) / (w + 1.0)
    a_arr = np.asarray(a, dtype=float)
    return _log_lambertw_exp_iterate(a_arr, np.exp, np.log, np.where)


def _log_lambertw_exp_iterate(a, exp, log, where, steps: int = 30):
    # start: W(x) ~ x for small x (y = a), W(x) ~ log x - log log x for large x
    y = where(a > 1.0, log(where(a > 1.0, a - log(where(a > 1.0, a, 2.0)), 1.0)), a)
    for _ in range(steps):
        w = exp(y)
        y = y - (w + y - a) / (w + 1.0)
    return y


def _jeffrey_f_star(t: Array) -> Array:
    """f*(t) = W(e^{1-t}) + 1 / W(e^{1-t}) + t - 2 (f-GAN Table 2, Jeffrey row)."""
    y = log_lambertw_exp(1.0 - t)
    return _exp(y) + _exp(-y) + t - 2.0


F_DIVERGENCES["jeffrey"] = FDivergence(
    name="jeffrey",
    equals="Jeffrey KL(P || Q) + KL(Q || P) = int (p - q) log(p / q)",
    f=lambda u: (u - 1.0) * _log(u),
    f_prime=lambda u: _log(u) + 1.0 - 1.0 / u,
    f_star=_jeffrey_f_star,
    f_star_domain=(-math.inf, math.inf),
    g_f=lambda v: v,
    f_star_g=_jeffrey_f_star,
    f_at_zero=math.inf,
    f_slope_inf=math.inf,
)
