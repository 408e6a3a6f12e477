"""Dirac-GAN: fields against hand-derived values, eigenvalues, the batched simulator, smoke run."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy import integrate, stats

from repro.experiments import dirac_gan as dg
from repro.experiments.family import dirac as fdirac

ROOT = Path(__file__).resolve().parent.parent
PARAMS = {
    "wgan_clip": 1.0,
    "gp_gamma": 1.0,
    "gp_target": 1.0,
    "noise_std": 1.0,
    "r1_gammas": [0.3, 1.0],
    "consensus_gamma": 1.0,
}
SIG_M1 = 1.0 / (1.0 + math.e)  # sigmoid(-1) = f'(1)


def t64(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_f_derivatives_match_finite_differences():
    t = t64(-3.0, -0.5, 0.0, 0.7, 4.0)
    e = 1e-6
    torch.testing.assert_close(
        fdirac.f1(t), (fdirac.f_gan(t + e) - fdirac.f_gan(t - e)) / (2 * e), rtol=1e-7, atol=1e-9
    )
    torch.testing.assert_close(
        fdirac.f2(t), (fdirac.f1(t + e) - fdirac.f1(t - e)) / (2 * e), rtol=1e-6, atol=1e-9
    )
    assert float(fdirac.f1(t64(0.0))) == pytest.approx(fdirac.F1_0)
    assert float(fdirac.f2(t64(0.0))) == pytest.approx(fdirac.F2_0)


def test_gan_field_at_one_one():
    # v = (-psi f'(psi theta), theta f'(psi theta)), f'(1) = sigmoid(-1) = 1 / (1 + e)
    vt, vp = fdirac.gan_field(t64(1.0), t64(1.0))
    assert float(vt) == pytest.approx(-SIG_M1, abs=1e-12)
    assert float(vp) == pytest.approx(SIG_M1, abs=1e-12)


def test_ns_gan_field_at_one_one():
    vt, vp = fdirac.ns_gan_field(t64(1.0), t64(1.0))
    assert float(vt) == pytest.approx(-(1 - SIG_M1), abs=1e-12)  # -f'(-1) = -sigmoid(1)
    assert float(vp) == pytest.approx(SIG_M1, abs=1e-12)


def test_r1_term_is_minus_gamma_psi():
    vt, vp = fdirac.r1_field(t64(1.0), t64(2.0), 0.3)
    sig_m2 = 1.0 / (1.0 + math.exp(2.0))
    assert float(vt) == pytest.approx(-2.0 * sig_m2, abs=1e-12)
    assert float(vp) == pytest.approx(sig_m2 - 0.3 * 2.0, abs=1e-12)


def test_wgan_gp_field_by_hand():
    vt, vp = fdirac.wgan_gp_field(t64(0.5), t64(-2.0), 1.0, 1.0)
    assert float(vt) == pytest.approx(2.0)
    assert float(vp) == pytest.approx(0.5 - 1.0 * (2.0 - 1.0) * (-1.0))


def test_instance_noise_field_against_scipy_quadrature():
    theta, psi, std = 0.7, -1.3, 0.8

    def expect(g):
        return integrate.quad(lambda e: g(e) * stats.norm.pdf(e, scale=std), -12, 12)[0]

    sig = lambda t: 1.0 / (1.0 + math.exp(t))  # noqa: E731  f'(t) = sigmoid(-t)
    ref_t = -expect(lambda e: psi * sig(psi * (theta + e)))
    ref_p = expect(lambda e: (theta + e) * sig(psi * (theta + e))) - expect(
        lambda e: e * sig(-psi * e)
    )
    vt, vp = fdirac.instance_noise_field(t64(theta), t64(psi), std)
    assert float(vt) == pytest.approx(ref_t, abs=1e-9)
    assert float(vp) == pytest.approx(ref_p, abs=1e-9)


def test_instance_noise_limits():
    th, ps = t64(0.3, -1.0, 2.0), t64(0.0, 0.5, -0.7)
    # std -> 0 gives the GAN field; at psi = 0 the field is (0, theta f'(0)) for any std
    for a, b in zip(
        fdirac.instance_noise_field(th, ps, 0.0), fdirac.gan_field(th, ps), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
    vt, vp = fdirac.instance_noise_field(t64(0.8), t64(0.0), 1.7)
    assert float(vt) == pytest.approx(0.0, abs=1e-14)
    assert float(vp) == pytest.approx(0.4, abs=1e-12)


def test_consensus_field_matches_autograd_of_half_squared_norm():
    gamma = 0.7
    for point in [(1.0, 1.0), (-0.4, 2.1), (1.5, -0.3)]:
        x = t64(*point).requires_grad_(True)
        v = torch.stack(fdirac.gan_field(x[0], x[1]))
        (grad,) = torch.autograd.grad(0.5 * (v**2).sum(), x)
        ref = v.detach() - gamma * grad
        got = torch.stack(fdirac.consensus_field(x.detach()[0], x.detach()[1], gamma))
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)


def _fd_jacobian(field, eps=1e-6):
    jac = np.zeros((2, 2))
    for j in range(2):
        d = np.zeros(2)
        d[j] = eps
        plus = np.array([float(v) for v in field(t64(d[0]), t64(d[1]))])
        minus = np.array([float(v) for v in field(t64(-d[0]), t64(-d[1]))])
        jac[:, j] = (plus - minus) / (2 * eps)
    return jac


@pytest.mark.parametrize(
    "method, expected",
    [
        (fdirac.Method("gan"), [-0.5j, 0.5j]),
        (fdirac.Method("r1", r1_gamma=1.0), [-0.5, -0.5]),  # critical damping gamma = 2 f'(0)
        (fdirac.Method("r1", r1_gamma=0.3), [-0.15 - 0.4769696j, -0.15 + 0.4769696j]),
        (fdirac.Method("noise", noise_std=1.0), [-0.25 - 0.4330127j, -0.25 + 0.4330127j]),
        (fdirac.Method("cons", consensus_gamma=1.0), [-0.25 - 0.5j, -0.25 + 0.5j]),
        (fdirac.Method("wgan", loss="wgan", clip=1.0), [-1j, 1j]),
    ],
)
def test_eigenvalues_at_equilibrium(method, expected):
    expected = np.array(expected, dtype=complex)
    closed = fdirac.closed_form_eigenvalues(method)
    np.testing.assert_allclose(closed, fdirac.sort_eigenvalues(expected), atol=1e-6)
    fd = fdirac.sort_eigenvalues(np.linalg.eigvals(_fd_jacobian(method.field)))
    np.testing.assert_allclose(fd, closed, atol=1e-5)
    autograd = fdirac.sort_eigenvalues(np.linalg.eigvals(fdirac.numeric_jacobian(method)))
    np.testing.assert_allclose(autograd, closed, atol=1e-9)


def test_a_wrong_closed_form_would_be_caught():
    # the check compares two computations that can disagree: a factor 2 in R1 moves the spectrum
    wrong = fdirac.closed_form_eigenvalues(fdirac.Method("r1", r1_gamma=2 * 0.3))
    numeric = np.linalg.eigvals(fdirac.numeric_jacobian(fdirac.Method("r1", r1_gamma=0.3)))
    assert np.abs(fdirac.sort_eigenvalues(numeric) - wrong).max() > 0.1


def test_batched_field_equals_each_method_row_by_row():
    methods = fdirac.make_methods(PARAMS)
    table = fdirac.MethodTable(methods)
    gen = torch.Generator().manual_seed(0)
    pts = 3 * torch.rand(2, 7, generator=gen, dtype=torch.float64) - 1.5
    theta = pts[0].expand(len(methods), -1)
    psi = pts[1].expand(len(methods), -1)
    vt, vp = fdirac.batched_field(theta, psi, table)
    for i, m in enumerate(methods):
        rt, rp = m.field(pts[0], pts[1])
        torch.testing.assert_close(vt[i], rt, rtol=1e-12, atol=1e-14, msg=m.name)
        torch.testing.assert_close(vp[i], rp, rtol=1e-12, atol=1e-14, msg=m.name)


def test_method_table_rejects_unknown_loss():
    with pytest.raises(ValueError, match="valid: gan, ns-gan, wgan"):
        fdirac.MethodTable([fdirac.Method("x", loss="hinge")])


def test_simultaneous_step_on_linear_field_grows_by_sqrt_one_plus_h2():
    table = fdirac.MethodTable([fdirac.Method("wgan", loss="wgan", clip=1.0)])
    th, ps = fdirac.step(
        t64(0.01).reshape(1, 1), t64(0.0).reshape(1, 1), table, 0.2, "simultaneous", 1
    )
    assert math.hypot(float(th), float(ps)) == pytest.approx(0.01 * math.sqrt(1.04), rel=1e-12)


def test_alternating_unregularised_map_is_on_the_unit_circle():
    # det of the alternating map is 1 and |trace| < 2: both eigenvalues have modulus 1
    for k in (1, 5):
        rho = fdirac.map_spectral_radius(fdirac.Method("gan"), 0.2, "alternating", k)
        assert rho == pytest.approx(1.0, abs=1e-12)
    rho = fdirac.map_spectral_radius(fdirac.Method("gan"), 0.2, "simultaneous")
    assert rho == pytest.approx(math.sqrt(1 + 0.2**2 * 0.25), abs=1e-12)


def test_wgan_clipping_holds_along_trajectories():
    table = fdirac.MethodTable([fdirac.Method("wgan", loss="wgan", clip=0.5)])
    for scheme, k in [("simultaneous", 1), ("alternating", 5)]:
        path = fdirac.simulate(t64(1.0, 0.3).reshape(1, 2), table, 0.2, 100, scheme, k)
        assert float(path[1:, ..., 1].abs().max()) <= 0.5


# ------------------------------------------------------------------------------ experiment


def _spec() -> dict:
    return yaml.safe_load((ROOT / "claims" / "dirac-gan.yaml").read_text())


@cache
def _smoke(seeds: tuple[int, ...]) -> dict[str, pd.DataFrame]:
    torch.set_num_threads(1)
    return dg.run(_spec()["scales"]["smoke"]["params"], list(seeds), torch.device("cpu"))


def test_smoke_tables_metrics_and_determinism():
    tables = _smoke((0, 1))
    seeds = tables["seeds"]
    assert list(seeds["seed"]) == [0, 1]
    values = seeds[list(dg.EXPERIMENT.metrics)].to_numpy(dtype=float)
    assert np.all(np.isfinite(values))
    again = dg.run(_spec()["scales"]["smoke"]["params"], [1], torch.device("cpu"))
    pd.testing.assert_frame_equal(
        again["seeds"].reset_index(drop=True), seeds.iloc[[1]].reset_index(drop=True)
    )
    for name in ("final", "trajectories", "spectra", "rates", "field"):
        assert len(tables[name]) > 0


@pytest.mark.parametrize("name", sorted(dg.EXPERIMENT.figures))
def test_figures_draw_from_tables(name):
    fig = dg.EXPERIMENT.figures[name](_smoke((0, 1)), _spec()["scales"]["smoke"]["params"], {})
    assert isinstance(fig, matplotlib.figure.Figure)
    plt.close(fig)


def test_closed_form_eigenvalues_are_an_invariant_that_raises():
    """The eigenvalue agreement is seed-free algebra: an invariant (an error), never a vote."""
    from repro.invariants import InvariantError

    final = pd.DataFrame(
        {"method": ["gan", "r1"], "seed": [0, 0], "dist_end_start": [1.0, 0.0],
         "conv_frac_random": [0.0, 1.0]}
    )  # fmt: skip
    rates = pd.DataFrame({"rho": [0.9], "converged": [True]})

    def spectra(numeric_re: float) -> pd.DataFrame:
        return pd.DataFrame(
            {"method": ["r1"], "closed_re": [[-0.5]], "closed_im": [[0.0]],
             "numeric_re": [[numeric_re]], "numeric_im": [[0.0]], "sim_map_error": [0.0]}
        )  # fmt: skip

    row = dg.per_seed(final, spectra(-0.5), rates, [0]).iloc[0]
    assert row["eig_max_abs_error"] == 0.0
    with pytest.raises(InvariantError, match="closed-form eigenvalues off the numeric ones"):
        dg.per_seed(final, spectra(-0.4), rates, [0])
