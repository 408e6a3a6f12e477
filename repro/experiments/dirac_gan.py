"""dirac-gan (Mescheder, Geiger & Nowozin 2018, Sec. 2-3): which training methods converge on the
Dirac-GAN. Every method and every starting point is simulated in one batched tensor; the
closed-form eigenvalues are checked against a numeric Jacobian. The model is ``family.dirac``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from repro import plots
from repro.engine import Stream
from repro.experiments import Experiment, Tables
from repro.experiments.family.dirac import (
    Method,
    MethodTable,
    batched_field,
    closed_form_eigenvalues,
    make_methods,
    map_spectral_radius,
    numeric_jacobian,
    simulate,
    sort_eigenvalues,
    step,
)
from repro.invariants import require
from repro.nets import STREAM_DATA


def schemes(params: Mapping) -> list[tuple[str, str, int]]:
    """(label, scheme, d_steps): simultaneous, then alternating with each n_d of the spec."""
    out = [("simultaneous", "simultaneous", 1)]
    out += [(f"alternating-{k}", "alternating", int(k)) for k in params["d_steps"]]
    return out


def random_starts(seeds: Sequence[int], n: int, radius: float, device=None) -> torch.Tensor:
    """n starts per seed on the circle of the given radius, angle ~ U[0, 2 pi): (S, n, 2) float64,
    drawn on ``device`` from each seed's ``data`` stream."""
    a = 2 * math.pi * Stream(seeds, STREAM_DATA, device).uniform(n, dtype=torch.float64)  # (S, n)
    return radius * torch.stack([torch.cos(a), torch.sin(a)], -1)


NON_CONVERGENT = ("gan", "ns-gan", "wgan", "wgan-gp")  # the paper's prediction, for the metrics


def run(params: Mapping, seeds: list[int], device) -> Tables:
    """Simulate every method x scheme from (1, 1) and from random starts; eigenvalue tables."""
    methods = make_methods(params)
    table = MethodTable(methods, device)
    h, n_steps, tol = float(params["step_size"]), int(params["n_steps"]), float(params["tol"])
    start = torch.tensor([params["start"]], dtype=torch.float64, device=device)  # (1, 2)
    radius = float(start.norm())
    rand = random_starts(seeds, int(params["n_random_starts"]), radius, device)  # (S, n, 2)
    starts = torch.cat([start, rand.reshape(-1, 2)])  # (1 + S n, 2)
    traj_rows, final_rows, eig_rows = [], [], []
    for label, scheme, k in schemes(params):
        path = simulate(starts, table, h, n_steps, scheme, k).cpu()  # (T+1, M, P, 2)
        dist = path[-1].norm(dim=-1).numpy()  # (M, P)
        for i, m in enumerate(methods):
            rho = map_spectral_radius(m, h, scheme, k)
            xy = path[:, i, 0].numpy()
            traj_rows.append(
                pd.DataFrame(
                    {
                        "method": m.name,
                        "scheme": label,
                        "step": np.arange(n_steps + 1),
                        "theta": xy[:, 0],
                        "psi": xy[:, 1],
                    }
                )
            )
            conv = dist[i, 1:].reshape(len(seeds), -1) < tol
            for s, seed in enumerate(seeds):
                final_rows.append(
                    {
                        "seed": seed,
                        "method": m.name,
                        "scheme": label,
                        "dist_end_start": float(dist[i, 0]),
                        "conv_frac_random": float(conv[s].mean()),
                        "rho": rho,
                    }
                )
            eig_rows.append(
                {"method": m.name, "scheme": label, "rho": rho, "converged": bool(dist[i, 0] < tol)}
            )
    spectra = []
    for m in methods:
        closed = closed_form_eigenvalues(m)
        numeric = sort_eigenvalues(np.linalg.eigvals(numeric_jacobian(m))) if m.smooth else closed
        spectra.append(
            {
                "method": m.name,
                "label": m.label,
                "closed_re": closed.real.tolist(),
                "closed_im": closed.imag.tolist(),
                "numeric_re": numeric.real.tolist(),
                "numeric_im": numeric.imag.tolist(),
                "sim_map_error": _sim_map_error(m, h, closed),
            }
        )
    spectra = pd.DataFrame(spectra)
    final = pd.DataFrame(final_rows)
    rates = pd.DataFrame(eig_rows)
    return {
        "seeds": per_seed(final, spectra, rates, seeds),
        "final": final,
        "trajectories": pd.concat(traj_rows, ignore_index=True),
        "spectra": _explode(spectra),
        "rates": rates,
        "field": field_grid(methods, float(params["grid_extent"]), int(params["grid_size"])),
    }


def _sim_map_error(method: Method, h: float, closed: np.ndarray) -> float:
    """|eigenvalues of the simultaneous-step map (autograd through ``step``) - (1 + h lambda)|."""
    if not method.smooth:
        return float("nan")
    table = MethodTable([method])

    def one(x: torch.Tensor) -> torch.Tensor:
        th, ps = step(x[0].reshape(1, 1), x[1].reshape(1, 1), table, h, "simultaneous", 1)
        return torch.stack([th.reshape(()), ps.reshape(())])

    jac = torch.autograd.functional.jacobian(one, torch.zeros(2, dtype=torch.float64)).numpy()
    numeric = sort_eigenvalues(np.linalg.eigvals(jac))
    return float(np.abs(numeric - sort_eigenvalues(1 + h * closed)).max())


def _explode(spectra: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in spectra.iterrows():
        for j in range(2):
            rows.append(
                {
                    "method": r["method"],
                    "label": r["label"],
                    "index": j,
                    "closed_re": r["closed_re"][j],
                    "closed_im": r["closed_im"][j],
                    "numeric_re": r["numeric_re"][j],
                    "numeric_im": r["numeric_im"][j],
                    "sim_map_error": r["sim_map_error"],
                }
            )
    return pd.DataFrame(rows)


EIG_TOL = 1e-6


def per_seed(
    final: pd.DataFrame, spectra: pd.DataFrame, rates: pd.DataFrame, seeds: Sequence[int]
) -> pd.DataFrame:
    """One row per seed: the (1, 1)-start distances (the same for every seed), the seed's
    random-start convergence fractions, and the eigenvalue agreement numbers."""
    smooth = spectra[spectra["method"] != "wgan-gp"]
    closed = np.concatenate(smooth["closed_re"].tolist()) + 1j * np.concatenate(
        smooth["closed_im"].tolist()
    )
    numeric = np.concatenate(smooth["numeric_re"].tolist()) + 1j * np.concatenate(
        smooth["numeric_im"].tolist()
    )
    eig_err = float(np.abs(closed - numeric).max())
    map_err = float(smooth["sim_map_error"].max())
    # Seed-free closed-form facts (dirac-gan.yaml, revision 2026-12-06): invariants, not votes.
    # The closed-form eigenvalues (Lemmas 2.2, 3.x) against a numeric Jacobian of a field itself
    # obtained by autograd from each objective, and the simultaneous map's 1 + h lambda; 1e-6 is
    # float64 autograd error with room (a wrong factor gives ~0.1).
    require(eig_err <= EIG_TOL, f"closed-form eigenvalues off the numeric ones by {eig_err:.3g}")
    require(map_err <= EIG_TOL, f"simultaneous map eigenvalues off 1 + h lambda by {map_err:.3g}")
    decided = rates[rates["rho"].notna() & ((rates["rho"] - 1).abs() > 1e-9)]
    agree = float(((decided["rho"] < 1) == decided["converged"]).mean())
    unreg = ("gan", "ns-gan")
    wgans = ("wgan", "wgan-gp")
    reg = tuple(m for m in final["method"].unique() if m not in NON_CONVERGENT + ("consensus",))
    rows = []
    for seed in seeds:
        f = final[final["seed"] == seed]

        def sel(names, f=f):
            return f[f["method"].isin(names)]

        rows.append(
            {
                "seed": seed,
                "dist_end_min_unregularised": float(sel(unreg)["dist_end_start"].min()),
                "dist_end_min_wgan": float(sel(wgans)["dist_end_start"].min()),
                "dist_end_max_regularised": float(sel(reg)["dist_end_start"].max()),
                "dist_end_max_consensus": float(sel(("consensus",))["dist_end_start"].max()),
                "conv_frac_max_unregularised": float(sel(unreg)["conv_frac_random"].max()),
                "conv_frac_min_regularised": float(sel(reg)["conv_frac_random"].min()),
                "linear_agreement": agree,
                "n_linear_decided": float(len(decided)),
                "eig_max_abs_error": eig_err,
                "sim_map_eig_max_abs_error": map_err,
            }
        )
    return pd.DataFrame(rows)


def field_grid(methods: Sequence[Method], extent: float, n: int) -> pd.DataFrame:
    """Each method's continuous field on an n x n grid of [-extent, extent]^2 (for quiver).

    Invariant: the batched field the simulator uses equals every per-method field there.
    """
    axis = torch.linspace(-extent, extent, n, dtype=torch.float64)
    th, ps = torch.meshgrid(axis, axis, indexing="xy")
    m = len(methods)
    bt, bp = batched_field(
        th.reshape(1, -1).expand(m, -1), ps.reshape(1, -1).expand(m, -1), MethodTable(methods)
    )
    for i, meth in enumerate(methods):
        vt, vp = meth.field(th.reshape(-1), ps.reshape(-1))
        err = float(torch.maximum((bt[i] - vt).abs().max(), (bp[i] - vp).abs().max()))
        require(err < 1e-10, f"batched field differs from {meth.name}'s own field by {err:.3g}")
    rows = []
    for m in methods:
        vt, vp = m.field(th, ps)
        rows.append(
            pd.DataFrame(
                {
                    "method": m.name,
                    "theta": th.reshape(-1).numpy(),
                    "psi": ps.reshape(-1).numpy(),
                    "v_theta": vt.reshape(-1).numpy(),
                    "v_psi": vp.reshape(-1).numpy(),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def fig_dirac_fields(tables: Tables, params: Mapping, reported: Mapping):
    """Mescheder et al. 2018, Fig. 1-3 style: the field per method, trajectories from (1, 1)."""
    field, traj, spec = tables["field"], tables["trajectories"], tables["spectra"]
    names = list(dict.fromkeys(field["method"]))
    labels = dict(zip(spec["method"], spec["label"], strict=False))
    ncols = 4
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plots.figure(ncols, nrows, width=3.0, height=3.0)
    axes = np.atleast_1d(axes).reshape(-1)
    styles = {
        "simultaneous": ("C3", "-"),
        "alternating-1": ("C0", "-"),
        "alternating-5": ("C2", "--"),
    }
    for ax, name in zip(axes, names, strict=False):
        g = field[field["method"] == name]
        norm = np.hypot(g["v_theta"], g["v_psi"]).to_numpy() + 1e-12
        ax.quiver(
            g["theta"],
            g["psi"],
            g["v_theta"] / norm,
            g["v_psi"] / norm,
            color="0.6",
            angles="xy",
            scale=25,
            width=0.004,
        )
        for scheme, t in traj[traj["method"] == name].groupby("scheme", sort=False):
            color, ls = styles.get(scheme, ("C4", ":"))
            ax.plot(t["theta"], t["psi"], color=color, ls=ls, lw=1.0, label=scheme)
        ax.plot([0], [0], "k*", ms=8)
        ax.plot(*params["start"], "ko", ms=4)
        ext = float(params["grid_extent"])
        ax.set(
            xlim=(-ext, ext),
            ylim=(-ext, ext),
            title=labels.get(name, name),
            xlabel=r"$\theta$ (generator)",
            ylabel=r"$\psi$ (discriminator)",
        )
        ax.set_aspect("equal")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].legend(loc="lower left", fontsize=7)
    return fig


def fig_dirac_distance(tables: Tables, params: Mapping, reported: Mapping):
    """Distance to the equilibrium vs iteration from (1, 1), one line per method, per scheme."""
    traj = tables["trajectories"]
    labels = dict(zip(tables["spectra"]["method"], tables["spectra"]["label"], strict=False))
    scheme_names = list(dict.fromkeys(traj["scheme"]))
    fig, axes = plots.figure(len(scheme_names), width=3.8, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, scheme in zip(axes, scheme_names, strict=True):
        for i, (name, t) in enumerate(traj[traj["scheme"] == scheme].groupby("method", sort=False)):
            ls = "-" if name in NON_CONVERGENT else "--"
            ax.semilogy(
                t["step"],
                np.hypot(t["theta"], t["psi"]),
                ls=ls,
                color=f"C{i}",
                label=labels.get(name, name),
            )
        ax.axhline(float(params["tol"]), color="k", ls=":", lw=1, label="tolerance")
        ax.set(
            title=scheme,
            xlabel="iteration (generator steps)",
            ylabel=r"$\|(\theta,\psi)\|$ (distance to equilibrium)",
        )
    axes[-1].legend(fontsize=7, loc="lower left")
    return fig


EXPERIMENT = Experiment(
    run=run,
    params=(
        "step_size",
        "n_steps",
        "start",
        "d_steps",
        "wgan_clip",
        "gp_gamma",
        "gp_target",
        "noise_std",
        "r1_gammas",
        "consensus_gamma",
        "tol",
        "n_random_starts",
        "grid_extent",
        "grid_size",
    ),
    metrics=(
        "dist_end_min_unregularised",
        "dist_end_min_wgan",
        "dist_end_max_regularised",
        "dist_end_max_consensus",
        "conv_frac_max_unregularised",
        "conv_frac_min_regularised",
        "linear_agreement",
        "n_linear_decided",
        "eig_max_abs_error",
        "sim_map_eig_max_abs_error",
    ),
    figures={"dirac_fields": fig_dirac_fields, "dirac_distance": fig_dirac_distance},
    doc=__doc__ or "",
)
