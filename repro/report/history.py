"""``history.csv``: every verdict a report has shown, under the checks it was judged by.

Append-only, so an earlier verdict under earlier checks stays visible after a re-registration.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import pandas as pd

from repro import io
from repro.report.claims_table import summary_checks_hash

log = logging.getLogger("repro.report")

HISTORY_COLUMNS = ["claim", "variant", "checks_hash", "results_commit", "run_finished", "verdict"]
_CONFLICT = re.compile(r"^(<{7}|={7}|>{7}|\|{7})( |$)")


def read_history(path: Path) -> pd.DataFrame:
    """history.csv as strings (empty when absent).

    Git conflict markers (a merge of two branches that both appended rows) are dropped and both
    sides' rows kept: the file is append-only, so their union is the resolution. Anything else
    malformed raises ValueError naming the file and the line.
    """
    if not path.exists():
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read: {e}") from None
    kept = [(n, line) for n, line in enumerate(lines, 1) if not _CONFLICT.match(line)]
    if len(kept) < len(lines):
        log.warning("%s: git conflict markers dropped, both sides' rows kept", path)
    if not kept or next(csv.reader([kept[0][1]]), []) != HISTORY_COLUMNS:
        raise ValueError(
            f"{path}: line 1: header must be {','.join(HISTORY_COLUMNS)}; fix or restore the "
            "file from git (`git checkout -- <file>`)"
        )
    rows, header = [], kept[0][1]
    for n, line in kept[1:]:
        if line == header or not line.strip():  # the other side's header, a blank line
            continue
        cells = next(csv.reader([line]))
        if len(cells) != len(HISTORY_COLUMNS):
            raise ValueError(
                f"{path}: line {n}: {len(cells)} fields, expected {len(HISTORY_COLUMNS)} "
                f"({', '.join(HISTORY_COLUMNS)}); fix the line or restore the file from git"
            )
        rows.append(cells)
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS).drop_duplicates(ignore_index=True)


def update_history(path: Path, table: pd.DataFrame, rows) -> pd.DataFrame:
    """Append this report's verdicts to history.csv (one row per claim, checks hash and result).

    Rows are only ever added, so an earlier verdict under earlier checks stays visible.
    """
    cols = HISTORY_COLUMNS
    old = read_history(path)
    new = []
    for (spec, variant, s), row in zip(rows, table.itertuples(index=False), strict=True):
        if s is None:
            continue
        new.append(
            {
                "claim": spec.id,
                "variant": variant or "",
                "checks_hash": summary_checks_hash(s),
                "results_commit": row.results_commit,
                "run_finished": str(s["provenance"].get("finished", "")),
                "verdict": s["verdict"],
            }
        )
    both = pd.concat([old, pd.DataFrame(new, columns=cols).astype(str)], ignore_index=True)
    both = both.drop_duplicates(subset=["claim", "variant", "checks_hash", "run_finished"])
    io.write_csv(path, both)
    return both
