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
from contextlib import contextmanager
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
    figures: str | Path | None = None,
    claims_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run one claim's experiment at ``scale`` (its ``variant``'s params, if given); write its
    results into ``out`` and return the run record.

    With ``figures`` (the run's figures folder), the old summary and figures go first and the
    scale's REPORT.md and claims.csv are rebuilt without them (:func:`retract`).
    """
    import torch

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


def run_key(record: dict[str, Any]) -> str | None:
    """What ties a summary to the run it summarises (records before run ids: the finish time)."""
    return record.get("run_id") or record.get("finished")


# what a run record must hold to be read at all (older records have these too)
RECORD_FIELDS = ("claim", "scale", "status", "seeds", "params")


def read_record(run_json: str | Path) -> dict[str, Any] | None:
    """A run record, or None if it is absent, does not parse or lacks a field of RECORD_FIELDS
    (a truncated or hand-edited record counts as absent)."""
    try:
        record = io.read_json(run_json)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or any(k not in record for k in RECORD_FIELDS):
        return None
    return record if run_key(record) else None


def seeds_problem(run_dir: str | Path, record: dict[str, Any]) -> str | None:
    """Why seeds.csv is not the evidence ``record`` says it is (None when it is)."""
    path = Path(run_dir) / "seeds.csv"
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        return f"{path}: missing"
    except (OSError, ValueError) as e:
        return f"{path}: unreadable ({type(e).__name__})"
    if "seed" not in table.columns:
        return f"{path}: field 'seed': no such column"
    got, want = table["seed"].tolist(), list(record["seeds"])
    if sorted(got) != sorted(want):
        return f"{path}: field 'seed': rows for seeds {got}, but run.json ran seeds {want}"
    return None


def record_problem(run_dir: str | Path) -> str | None:
    """Why the run record in ``run_dir`` cannot be trusted, or None (also when there is none):
    unreadable, missing fields, or its seeds.csv missing or not matching its seeds."""
    path = Path(run_dir) / "run.json"
    if not path.exists():
        return None
    record = read_record(path)
    if record is None:
        return f"{path}: unreadable or missing one of the fields {', '.join(RECORD_FIELDS)}"
    return seeds_problem(run_dir, record)


def outdated_reason(spec: Spec, record: dict[str, Any], variant: str | None = None) -> str | None:
    """'code changed' or 'params changed' when a run (record, or a summary's provenance plus
    params) no longer matches the experiment's code or the spec's params; None when current."""
    code = record.get("code_hash")
    if code != provenance.current_code(spec["experiment"])["code_hash"]:
        return "code changed" if code else "code not recorded"
    try:
        params = spec.params(record["scale"], variant)
    except KeyError:
        return "params changed"
    if record.get("params") is not None and record["params"] != params:
        return "params changed"
    return None


def rerun_reason(run_dir: str | Path, spec: Spec, variant: str | None) -> str | None:
    """Why the run in ``run_dir`` must run again although its run.json exists (None if not):
    a failed or untrustworthy record, or one made by other code or params."""
    path = Path(run_dir) / "run.json"
    if not path.exists():
        return None
    problem = record_problem(run_dir)
    if problem:
        return problem
    record = read_record(path)
    if record["status"] != "ok":
        return "the last run failed"
    stale = outdated_reason(spec, record, variant)
    return f"outdated ({stale})" if stale else None


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
    if not (run_dir / "seeds.csv").exists():  # the evidence is gone
        return None
    if summary.get("run_key", summary.get("provenance", {}).get("finished")) != run_key(record):
        return None
    return summary


SUMMARY_FILES = ("summary.json", "summary.csv", "summary.md", "summary.tex")


def missing_outputs(run_dir: str | Path, fig_dir: str | Path, figures: list[str]) -> list[Path]:
    """The summary files and figures (PNG and PDF) of a run that are not on disk."""
    run_dir, fig_dir = Path(run_dir), Path(fig_dir)
    wanted = [run_dir / n for n in SUMMARY_FILES]
    wanted += [fig_dir / f"{name}.{ext}" for name in figures for ext in ("png", "pdf")]
    return [p for p in wanted if not p.exists()]


def heal(
    results: str | Path,
    figures: str | Path,
    scale: str,
    claims_dir: str | Path | None = None,
    dry_run: bool = False,
) -> list[Path]:
    """Delete what no longer matches a run record at ``scale``; return what was (or, with
    ``dry_run``, would be) deleted.

    - a run.json that does not parse, lacks a field, or whose seeds.csv is missing or holds
      other seeds is treated as absent (deleted, with its seeds.csv), so the claim reruns;
    - a summary (and the run's figures) whose run record is absent or from another run is
      deleted, so it is rebuilt and can never be cited; so is a current summary.json one of whose
      companion files (summary.csv, .md, .tex) is missing, and a PNG whose PDF is missing;
    - if anything was deleted, the scale's REPORT.md and claims.csv are rebuilt from what is
      current (``claims_dir`` given), or else deleted.
    Snakemake alone would keep them: it does not rebuild a missing intermediate file whose
    downstream outputs exist. A dry run deletes nothing.
    """
    results, figures = Path(results) / scale, Path(figures) / scale
    doomed: list[tuple[Path, str]] = []
    if not results.is_dir():
        return []
    for run_dir in sorted(p for p in results.iterdir() if p.is_dir() and p.name != "logs"):
        record_path = run_dir / "run.json"
        problem = record_problem(run_dir)
        if problem:
            doomed += [(p, problem) for p in (record_path, run_dir / "seeds.csv") if p.exists()]
        gone = {p for p, _ in doomed}
        has_summary = any((run_dir / n).exists() for n in SUMMARY_FILES)
        fig_dir = figures / run_dir.name
        figs = sorted([*fig_dir.glob("*.png"), *fig_dir.glob("*.pdf")]) if fig_dir.is_dir() else []
        summary_ok = record_path not in gone and fresh_summary(run_dir) is not None
        if has_summary and not summary_ok:
            why = "its run record is missing, corrupt or from another run"
            doomed += [(run_dir / n, why) for n in SUMMARY_FILES if (run_dir / n).exists()]
            doomed += [(f, why) for f in figs]
        elif has_summary and not all((run_dir / n).exists() for n in SUMMARY_FILES):
            doomed.append((run_dir / "summary.json", "a summary file beside it is missing"))
        if summary_ok or not has_summary:
            for png in (f for f in figs if f.suffix == ".png"):
                if not png.with_suffix(".pdf").exists():
                    doomed.append((png, "its PDF is missing"))
    for path, why in doomed:
        log.warning("%s stale %s (%s)", "would remove" if dry_run else "removed", path, why)
    if dry_run or not doomed:
        return [p for p, _ in doomed]
    removed = _unlink(*(p for p, _ in doomed))
    if claims_dir is not None:
        rebuild_views(results.parent, figures.parent, scale, claims_dir)
    else:
        removed += _unlink(results / "REPORT.md", results / "claims.csv")
    return removed


@contextmanager
def report_lock(results_scale: str | Path):
    """Serialise the jobs that rewrite a scale's REPORT.md/claims.csv (an exclusive flock)."""
    import fcntl

    path = Path(results_scale) / ".report.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def rebuild_views(
    results: str | Path, figures: str | Path, scale: str, claims_dir: str | Path | None
) -> bool:
    """Rewrite the scale's REPORT.md and claims.csv from the current results, if either exists
    (a claim whose record went away shows ``not run``); history.csv is left alone. True if
    rebuilt."""
    from repro import report

    out = Path(results) / scale
    with report_lock(out):
        if not ((out / "REPORT.md").exists() or (out / "claims.csv").exists()):
            return False
        report.build_report(scale, out, results, Path(figures) / scale, claims_dir, history=False)
    log.info("rebuilt %s and claims.csv from the current results", out / "REPORT.md")
    return True


def retract(run_dir: str | Path, figures_run_dir: str | Path, claims_dir=None) -> list[Path]:
    """Before a run replaces its record: its old summary and figures go, and the scale's
    REPORT.md and claims.csv are rebuilt without them (also when the run is then killed)."""
    run_dir, fig_dir = Path(run_dir), Path(figures_run_dir)
    figs = [*fig_dir.glob("*.png"), *fig_dir.glob("*.pdf")] if fig_dir.is_dir() else []
    removed = _unlink(*(run_dir / n for n in SUMMARY_FILES), *figs)
    listed = _listed_verdict(run_dir.parent / "claims.csv", run_dir.name)
    if removed or listed not in (None, "not run"):
        rebuild_views(run_dir.parent.parent, fig_dir.parent.parent, run_dir.parent.name, claims_dir)
    return removed


def _listed_verdict(claims_csv: Path, run: str) -> str | None:
    """The verdict claims.csv shows for ``run`` (<claim> or <claim>@<variant>), or None."""
    from repro.claims import VARIANT_SEP

    try:
        table = pd.read_csv(claims_csv, dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return None
    claim, _, variant = run.partition(VARIANT_SEP)
    if not {"id", "variant", "verdict"} <= set(table.columns):
        return None
    rows = table[(table["id"] == claim) & (table["variant"] == variant)]
    return rows["verdict"].iloc[0] if len(rows) else None


def backfill_code_hash(run_dir: str | Path) -> dict[str, Any] | None:
    """Give a run record that predates code hashes its ``code_hash`` and ``code_files``, computed
    from the files at the commit it records (``git show``), in run.json and its summary.json.

    Returns the fields written, or None when the record has them already or is unreadable.
    The files keep their modification times, so Snakemake sees nothing new.
    """
    import os

    run_dir = Path(run_dir)
    record = read_record(run_dir / "run.json")
    if record is None or "code_hash" in record:
        return None
    commit = str(record.get("commit", "unknown"))
    fields: dict[str, Any] = {"code_hash": None, "code_files": []}
    if commit != "unknown":
        try:
            read = provenance.git_reader(commit)
            fields = provenance.code_state(record["experiment"], read)
        except (FileNotFoundError, KeyError, SyntaxError) as e:
            log.warning("%s: code at %s not found (%s)", run_dir, commit[:10], e)
    dirty = " (its tree was dirty: uncommitted changes are not in the hash)"
    fields["code_hash_source"] = f"recorded afterwards from commit {commit[:10]}'s files" + (
        dirty if record.get("dirty") else ""
    )
    summary = fresh_summary(run_dir)
    for name, obj in (("run.json", record), ("summary.json", summary)):
        if obj is None:
            continue
        target = obj if name == "run.json" else obj["provenance"]
        target.update(fields)
        path = run_dir / name
        stat = path.stat()
        io.write_json(path, obj)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return fields


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
    record = read_record(run_json)
    if record is None:
        raise ValueError(
            f"{run_json}: unreadable or missing one of the fields {', '.join(RECORD_FIELDS)}; "
            "rerun the claim"
        )
    problem = seeds_problem(run_json.parent, record)
    if problem:
        raise ValueError(f"{problem}; rerun the claim")
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
        s = summarise_claim(args.spec, args.run_json)
        log.info("%s (%s): %s (%s)", s["id"], s["scale"], s["verdict"], s["reason"])
    elif args.step == "plot":
        plot_figure(args.spec, args.run_json, args.figure, args.out)
    elif args.step == "report":
        from repro import report

        results = Path(args.results).parent  # collect() adds the scale
        with report_lock(args.out):
            report.build_report(args.scale, args.out, results, args.figures, args.claims_dir)


if __name__ == "__main__":
    main()
