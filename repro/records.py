"""Run records and what they make trustworthy: ``results/{scale}/{run}/run.json``.

A run record is read only when it parses and holds :data:`RECORD_FIELDS`; its seeds.csv must hold
the seeds it ran (:func:`seeds_problem`). A summary is shown only while it summarises the record
beside it (:func:`fresh_summary`), and a record made by other code or params is outdated
(:func:`outdated_reason`). Nothing here writes a view (REPORT.md, claims.csv): that is
:mod:`repro.heal` and :mod:`repro.report`, which read records through this module.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from repro import io, provenance
from repro.claims import Spec

log = logging.getLogger("repro.records")


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
    """'code changed', 'params changed' or 'seeds changed' when a run (record, or a summary's
    provenance plus params and seeds) no longer matches the experiment's code, the spec's params
    or the scale's first seed; None when current."""
    code = record.get("code_hash")
    if code != provenance.current_code(spec["experiment"])["code_hash"]:
        return "code changed" if code else "code not recorded"
    try:
        params = spec.params(record["scale"], variant)
    except KeyError:
        return "params changed"
    if record.get("params") is not None and record["params"] != params:
        return "params changed"
    # the config may change how many seeds run, never where they start (a scale's first_seed)
    seeds = record.get("seeds")
    if seeds and seeds[0] != spec.seeds(record["scale"], 1)[0]:
        return "seeds changed"
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
