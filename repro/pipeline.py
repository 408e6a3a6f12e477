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

from repro import experiments, io, provenance
from repro.claims import (
    SCALES,
    Spec,
    evaluate_checks,
    evaluate_premises,
    load_spec,
    verdict,
)

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
) -> dict[str, Any]:
    """Run one claim's experiment at ``scale`` (its ``variant``'s params, if given); write its
    results into ``out`` and return the run record."""
    import torch

    spec = load_spec(spec_path)
    out = Path(out)
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
        **provenance.git_state(),
        "device": dev.type,
        "device_name": provenance.device_name(dev),
        "cpu": provenance.cpu_info(),
        "threads": torch.get_num_threads(),
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


def run_key(record: dict[str, Any]) -> str | None:
    """What ties a summary to the run it summarises (records before run ids: the finish time)."""
    return record.get("run_id") or record.get("finished")


def read_record(run_json: str | Path) -> dict[str, Any] | None:
    """A run record, or None if it is absent or does not parse (a truncated file is absent)."""
    try:
        record = io.read_json(run_json)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "status" in record else None


def fresh_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The summary in ``run_dir`` if it summarises the run record there now, else None.

    A summary whose run record is missing, corrupt or from another run (an interrupted forced
    rerun deletes run.json but leaves the old summary) is stale and must never be shown.
    """
    run_dir = Path(run_dir)
    record = read_record(run_dir / "run.json")
    try:
        summary = io.read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return None
    if record is None or not isinstance(summary, dict):
        return None
    if summary.get("run_key", summary.get("provenance", {}).get("finished")) != run_key(record):
        return None
    return summary


SUMMARY_FILES = ("summary.json", "summary.csv", "summary.md", "summary.tex")


def heal(results: str | Path, figures: str | Path, scale: str) -> list[Path]:
    """Delete what no longer matches a run record at ``scale``; return what was deleted.

    - a run.json that does not parse is treated as absent (deleted, with its seeds.csv), so the
      claim reruns;
    - a summary (and the run's figures) whose run record is absent or from another run is
      deleted, so it is rebuilt and can never be cited;
    - if anything was deleted, the scale's REPORT.md and claims.csv go too.
    Snakemake alone would keep them: it does not rebuild a missing intermediate file whose
    downstream outputs exist.
    """
    results, figures = Path(results) / scale, Path(figures) / scale
    removed: list[Path] = []
    if not results.is_dir():
        return removed
    for run_dir in sorted(p for p in results.iterdir() if p.is_dir() and p.name != "logs"):
        record_path = run_dir / "run.json"
        if record_path.exists() and read_record(record_path) is None:
            removed += _unlink(record_path, run_dir / "seeds.csv")
        has_summary = any((run_dir / n).exists() for n in SUMMARY_FILES)
        if has_summary and fresh_summary(run_dir) is None:
            removed += _unlink(*(run_dir / n for n in SUMMARY_FILES))
            fig_dir = figures / run_dir.name
            if fig_dir.is_dir():
                removed += _unlink(*fig_dir.glob("*.png"), *fig_dir.glob("*.pdf"))
    if removed:
        removed += _unlink(results / "REPORT.md", results / "claims.csv")
    for path in removed:
        log.warning("removed stale %s (its run record is missing, corrupt or newer)", path)
    return removed


def _unlink(*paths: Path) -> list[Path]:
    gone = []
    for path in paths:
        if path.exists():
            path.unlink()
            gone.append(path)
    return gone


def load_run(run_json: str | Path) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The run record and its tables (``seeds`` included)."""
    run_json = Path(run_json)
    record = io.read_json(run_json)
    tables = {"seeds": pd.read_csv(run_json.parent / "seeds.csv")}
    for name in record.get("tables", []):
        tables[name] = pd.read_csv(run_json.parent / "tables" / f"{name}.csv")
    return record, tables


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


def summarise_claim(spec_path: str | Path, run_json: str | Path) -> dict[str, Any]:
    """Verdict and metric table for one claim, written beside its run record."""
    from repro import report

    spec = load_spec(spec_path)
    record, tables = load_run(run_json)
    scale = record["scale"]
    if record["status"] == "ok":
        checks = evaluate_checks(spec, tables["seeds"])
        premises = evaluate_premises(spec, tables["seeds"])
        label, reason = verdict(spec, scale, checks, premises)
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
            args.spec, args.scale, args.out, args.device, args.seeds, args.threads, args.variant
        )
    elif args.step == "summarise":
        s = summarise_claim(args.spec, args.run_json)
        log.info("%s (%s): %s (%s)", s["id"], s["scale"], s["verdict"], s["reason"])
    elif args.step == "plot":
        plot_figure(args.spec, args.run_json, args.figure, args.out)
    elif args.step == "report":
        from repro import report

        results = Path(args.results).parent  # collect() adds the scale
        report.build_report(args.scale, args.out, results, args.figures, args.claims_dir)


if __name__ == "__main__":
    main()
