"""Views kept in step with the run records: stale outputs deleted, REPORT.md rebuilt.

Snakemake alone would keep a summary or figure whose run record went away (it does not rebuild a
missing intermediate file whose downstream outputs exist), and a REPORT.md that still shows it.
:func:`heal` runs before the workflow's DAG is built; :func:`retract` before a run replaces its
record; :func:`rebuild_views` after either, and after a failed workflow (Snakefile ``onerror``).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from repro import report
from repro.claims import VARIANT_SEP
from repro.records import SUMMARY_FILES, fresh_summary, record_problem

log = logging.getLogger("repro.heal")


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
    try:
        table = pd.read_csv(claims_csv, dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return None
    claim, _, variant = run.partition(VARIANT_SEP)
    if not {"id", "variant", "verdict"} <= set(table.columns):
        return None
    rows = table[(table["id"] == claim) & (table["variant"] == variant)]
    return rows["verdict"].iloc[0] if len(rows) else None


def _unlink(*paths: Path) -> list[Path]:
    gone = []
    for path in paths:
        if path.exists():
            path.unlink()
            gone.append(path)
    return gone
