"""The pipeline's steps as plain functions, and the command line the Snakemake rules call.

    results/{scale}/{claim}/run.json        run record: status, provenance, params (written last)
    results/{scale}/{claim}/seeds.csv       per-seed metrics with provenance columns
    results/{scale}/{claim}/tables/*.csv    the experiment's other tables (curves, grids)
    results/{scale}/{claim}/summary.*       verdict (json) and metric table (csv, md, tex)
    figures/{scale}/{claim}/{figure}.png|pdf

Compute and plotting are separate steps, so editing a figure never retrains. Every file is
written atomically. An experiment that raises yields a run record with ``status: error`` (and
the traceback in the log) instead of killing the workflow, so the other claims complete and the
report shows ``error``; the workflow retries such records on its next run (rules/common.smk).

Reading and trusting run records is :mod:`repro.records`; deleting what no longer matches them
and rebuilding REPORT.md is :mod:`repro.heal`; the tables and REPORT.md are :mod:`repro.report`.
"""

from __future__ import annotations

import argparse
import logging
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from repro import experiments, io, provenance, report
from repro.claims import (
    SCALES,
    Spec,
    evaluate_checks,
    evaluate_premises,
    load_spec,
    verdict,
)
from repro.heal import report_lock, retract
from repro.records import load_run, outdated_reason, read_record, run_key

log = logging.getLogger("repro.pipeline")


# ---------------------------------------------------------------- run


def run_claim(
    spec_path: str | Path,
    scale: str,
    out: str | Path,
    device: str = "auto",
    n_seeds: int | None = None,
    threads: int = 1,
    variant: str | None = None,
    figures: str | Path | None = None,
    claims_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run one claim's experiment at ``scale`` (its ``variant``'s params, if given); write its
    results into ``out`` and return the run record.

    With ``figures`` (the run's figures folder), the old summary and figures go first and the
    scale's REPORT.md and claims.csv are rebuilt without them (:func:`retract`).
    """
    import torch

    from repro.engine import use_graphs

    spec = load_spec(spec_path)
    out = Path(out)
    if figures is not None:
        retract(out, figures, claims_dir)
    torch.set_num_threads(max(1, threads))
    dev = provenance.pick_device(device)
    seeds, params = spec.seeds(scale, n_seeds), spec.params(scale, variant)
    record: dict[str, Any] = {
        "claim": spec.id,
        "variant": variant,
        "scale": scale,
        "experiment": spec["experiment"],
        "seeds": seeds,
        "params": params,
        "params_hash": provenance.params_hash(params),
        **provenance.code_state(spec["experiment"]),
        **provenance.git_state(),
        "device": dev.type,
        "device_name": provenance.device_name(dev),
        "cpu": provenance.cpu_info(),
        "threads": torch.get_num_threads(),
        "graphs": use_graphs(dev),  # updates as static steps: captured CUDA graphs on CUDA
        "packages": provenance.package_versions(),
        "started": provenance.now_utc(),
        "run_id": uuid.uuid4().hex,
    }
    log.info("claim %s scale %s: seeds %s on %s", spec.id, scale, seeds, record["device_name"])
    t0 = time.perf_counter()
    try:
        tables = experiments.get(spec["experiment"]).run(params, seeds, dev)
        _check_tables(tables, spec, seeds)
        record["status"] = "ok"
    except Exception as e:  # the claim fails, the workflow goes on
        log.error("experiment %s raised:\n%s", spec["experiment"], traceback.format_exc())
        tables = {"seeds": pd.DataFrame({"seed": seeds})}
        record.update(status="error", error=f"{type(e).__name__}: {e}")
    record["wall_time_s"] = round(time.perf_counter() - t0, 3)
    record["peak_mem_mb"] = round(provenance.peak_memory_mb(dev), 1)
    record["finished"] = provenance.now_utc()
    _write_run(out, record, tables)
    log.info("claim %s: %s in %.1f s", spec.id, record["status"], record["wall_time_s"])
    return record


# A seeds override beyond this multiple of what a spec budgets at a scale is refused before
# training: the batched engine's time and memory grow with the number of seeds.
MAX_SEEDS_FACTOR = 10


def seeds_budget_problem(spec: Spec, scale: str, n: int, results: str | Path) -> str | None:
    """Why ``n`` seeds of ``spec`` at ``scale`` are far beyond the scale (None if they are not),
    with an estimate of time and memory from the last run at that scale when there is one."""
    budget = len(spec.seeds(scale))
    if n <= MAX_SEEDS_FACTOR * budget:
        return None
    factor = n / budget
    record = read_record(Path(results) / scale / spec.id / "run.json")
    if record and record.get("wall_time_s") and record.get("seeds"):
        per_seed = float(record["wall_time_s"]) / len(record["seeds"])
        mem = float(record.get("peak_mem_mb") or 0) / len(record["seeds"])
        guess = f"about {per_seed * n / 3600:,.1f} h and {mem * n / 1024:,.1f} GiB"
        guess += f" (from its last {scale} run: {len(record['seeds'])} seeds)"
    else:
        guess = f"about {factor:,.0f}x the scale's time and memory budget"
    return (
        f"config field 'seeds': {n} seeds for {spec.id} at scale {scale} is {factor:,.0f}x the "
        f"{budget} its spec ({spec.path}) budgets, estimated {guess}; at most "
        f"{MAX_SEEDS_FACTOR * budget} are allowed (or raise the spec's seeds for that scale)"
    )


def _check_tables(tables: dict[str, pd.DataFrame], spec: Spec, seeds: list[int]) -> None:
    """The experiment kept its contract: a seeds table with every seed and every metric."""
    if "seeds" not in tables:
        raise ValueError(f"experiment {spec['experiment']} returned no 'seeds' table")
    table = tables["seeds"]
    exp = experiments.get(spec["experiment"])
    missing = [m for m in ("seed", *exp.metrics) if m not in table.columns]
    if missing:
        raise ValueError(f"'seeds' table lacks columns {missing}")
    if sorted(table["seed"].tolist()) != sorted(seeds):
        raise ValueError(f"'seeds' table has seeds {table['seed'].tolist()}, expected {seeds}")


def _write_run(out: Path, record: dict[str, Any], tables: dict[str, pd.DataFrame]) -> None:
    """Tables first, the run record last: a run.json exists only once everything else does."""
    names = sorted(n for n in tables if n != "seeds")
    for name in names:
        io.write_csv(out / "tables" / f"{name}.csv", tables[name])
    prov = {k: record[k] for k in ("claim", "scale", "params_hash", "commit", "dirty", "device")}
    seeds_table = tables["seeds"].assign(
        **prov, device_name=record["device_name"], batch_wall_time_s=record["wall_time_s"]
    )
    io.write_csv(out / "seeds.csv", seeds_table)
    record["tables"] = names
    io.write_json(out / "run.json", record)


# ---------------------------------------------------------------- summarise


def setup_of(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """What the run used (data, model), from its optional ``setup`` table (columns item, value):
    resolved at run time, e.g. which data set ``dataset: auto`` took."""
    table = tables.get("setup")
    if table is None:
        return {}
    if list(table.columns) != ["item", "value"]:
        raise ValueError(f"'setup' table has columns {list(table.columns)}, expected item, value")
    return {str(k): str(v) for k, v in zip(table["item"], table["value"], strict=True)}


class StaleRunError(ValueError):
    """A run record lacks a metric its spec's checks or premises read (the run predates them)."""


def _require_metrics(spec, record: dict[str, Any], seeds: pd.DataFrame, run_json) -> None:
    """Every metric the spec's premises and checks read is a column of the run's seeds table;
    else StaleRunError naming the run, the metric, the check and how to rerun."""
    for kind, items in (("premise", spec.premises), ("check", spec.checks)):
        for item in items:
            if item["metric"] not in seeds.columns:
                stale = outdated_reason(spec, record, record.get("variant"))
                why = f"outdated ({stale})" if stale else "made by other code"
                raise StaleRunError(
                    f"{run_json}: the run has no metric {item['metric']!r}, which {kind} "
                    f"{item['id']!r} of {spec.path} reads: the run is {why}; rerun it with "
                    f"`repro run {spec.id} --scale {record['scale']}`"
                )


def _mark_unjudged(spec, checks: list[dict[str, Any]]) -> None:
    """A check measured on fewer voting seeds than the spec's ``min_seeds`` decides nothing (the
    verdict is inconclusive): its ``passed`` becomes None and ``not_judged`` says why, so no table
    shows a 'holds' computed on, say, 2 seeds. Its measured value stays, for the record.
    (Here and not in ``repro.claims.verdict``: that module is in every run record's code key, so
    changing it would outdate every record although no number changes.)"""
    for c in checks:
        if c["n_seeds"] < spec.min_seeds:
            c["passed"] = None
            c["not_judged"] = (
                f"{c['n_seeds']} voting seed(s), fewer than min_seeds={spec.min_seeds}"
            )


def summarise_claim(spec_path: str | Path, run_json: str | Path) -> dict[str, Any]:
    """Verdict and metric table for one claim, written beside its run record."""
    spec = load_spec(spec_path)
    record, tables = load_run(run_json)
    scale = record["scale"]
    if record["status"] == "ok":
        _require_metrics(spec, record, tables["seeds"], run_json)
        checks = evaluate_checks(spec, tables["seeds"])
        premises = evaluate_premises(spec, tables["seeds"])
        label, reason = verdict(spec, scale, checks, premises)
        _mark_unjudged(spec, checks)
    else:
        checks, premises = [], []
        label, reason = "error", record.get("error", "the experiment failed")
    summary = {
        "id": spec.id,
        "variant": record.get("variant"),
        "scale": scale,
        "kind": spec.kind,
        "verdict": label,
        "reason": reason,
        "title": spec["title"],
        "paper": spec["paper"],
        "where": spec["where"],
        "quote": spec["quote"],
        "statement": spec["statement"],
        "reported": spec["reported"],
        "checks_hash": spec.checks_hash,
        "run_key": run_key(record),
        "premises": premises,
        "checks": checks,
        "seeds": record["seeds"],
        "provenance": {k: v for k, v in record.items() if k not in ("params", "seeds")},
        "params": record["params"],
        "setup": setup_of(tables),
    }
    out = Path(run_json).parent
    report.write_claim_tables(out, spec, tables["seeds"], checks, premises)
    io.write_json(out / "summary.json", summary)
    return summary


# ---------------------------------------------------------------- figures


def plot_figure(spec_path: str | Path, run_json: str | Path, figure: str, out_png: str | Path):
    """Draw one figure from the results (never trains); write PNG and PDF beside each other."""
    from repro import plots

    spec = load_spec(spec_path)
    record, tables = load_run(run_json)
    if record["status"] == "ok":
        draw = experiments.get(spec["experiment"]).figures[figure]
        fig = draw(tables, record["params"], spec["reported"])
    else:
        fig, ax = plots.figure()
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            f"{spec.id}: experiment failed\n{record.get('error', '')}"[:300],
            ha="center",
            va="center",
            wrap=True,
            color="firebrick",
        )
    fig.suptitle(f"{spec.id} ({record['scale']})", fontsize=9, color="0.4")
    out_png = Path(out_png)
    # at least ~1,200 px wide whatever the figure's size in inches (PDF is vector anyway)
    dpi = max(160, 1200 / fig.get_figwidth())
    for path in (out_png, out_png.with_suffix(".pdf")):
        fmt = path.suffix[1:]
        save = lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=dpi)  # noqa: E731
        io.write_with(path, save, suffix=path.suffix)
    plots.plt.close(fig)


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m repro.pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("run", help="run one claim's experiment")
    p.add_argument("spec")
    p.add_argument("--scale", choices=SCALES, required=True)
    p.add_argument("--out", required=True, help="the claim's results folder")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--seeds", type=int, default=None, help="override the spec's number of seeds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variant", default=None, help="run a variant declared in the spec")
    p.add_argument("--figures", default=None, help="the run's figures folder (retracted first)")
    p.add_argument("--claims-dir", default=None, help="where the specs are (default: claims/)")
    p = sub.add_parser("summarise", help="verdict and tables from a run record")
    p.add_argument("spec")
    p.add_argument("run_json")
    p = sub.add_parser("plot", help="draw one figure from a run record")
    p.add_argument("spec")
    p.add_argument("run_json")
    p.add_argument("--figure", required=True)
    p.add_argument("--out", required=True, help="PNG path; the PDF goes beside it")
    p = sub.add_parser("report", help="REPORT.md and the claims table for one scale")
    p.add_argument("--scale", choices=SCALES, required=True)
    p.add_argument("--out", required=True, help="folder for REPORT.md and claims.csv")
    p.add_argument("--results", required=True, help="this scale's results folder")
    p.add_argument("--figures", required=True, help="this scale's figures folder")
    p.add_argument("--claims-dir", default=None, help="where the specs are (default: claims/)")
    args = parser.parse_args(argv)
    name = Path(getattr(args, "out", "") or "").name if args.step == "run" else args.step
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s [{name}] %(levelname)s %(message)s"
    )

    if args.step == "run":
        run_claim(
            args.spec,
            args.scale,
            args.out,
            args.device,
            args.seeds,
            args.threads,
            args.variant,
            args.figures,
            args.claims_dir,
        )
    elif args.step == "summarise":
        try:
            s = summarise_claim(args.spec, args.run_json)
        except StaleRunError as e:
            raise SystemExit(f"error: {e}") from None
        log.info("%s (%s): %s (%s)", s["id"], s["scale"], s["verdict"], s["reason"])
    elif args.step == "plot":
        plot_figure(args.spec, args.run_json, args.figure, args.out)
    elif args.step == "report":
        results = Path(args.results).parent  # collect() adds the scale
        with report_lock(args.out):
            report.build_report(args.scale, args.out, results, args.figures, args.claims_dir)


if __name__ == "__main__":
    main()
