"""Per-claim tables: each metric's centre and 95% interval over seeds, as CSV, Markdown and
LaTeX (``summary.csv``, ``summary.md``, ``summary.tex``), and :func:`fmt` for every number shown."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from repro import experiments, io
from repro.claims import Spec
from repro.stats import interval


def holds_label(c: dict[str, Any]) -> str:
    """A check's or premise's state in a table: yes / no / n/a, or 'not judged' for a check
    measured on fewer voting seeds than min_seeds (``not_judged``, set by the summary)."""
    if c.get("not_judged"):
        return "not judged"
    return {True: "yes", False: "no", None: "n/a"}[c["passed"]]


def fmt(x: Any) -> str:
    """A number for humans: 4 significant digits, NaN as an em dash."""
    if x is None:
        return "—"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "—" if math.isnan(x) else f"{x:.4g}"


def metric_table(spec: Spec, seeds_table: pd.DataFrame) -> pd.DataFrame:
    """One row per metric: seeds, centre and 95% interval over seeds, spread, checks using it.

    The interval is Student's t on the mean, or, for a metric the experiment declares positive
    (``Experiment.positive_metrics``: an iteration count, a ratio) whose t-interval would reach
    zero or below, the t-interval of its logarithm around the geometric mean (``interval`` says
    which: ``t`` or ``log-t``). A log10 ratio is signed: it keeps the t-interval.
    """
    exp = experiments.get(spec["experiment"])
    rows = []
    for m in exp.metrics:
        v = seeds_table[m].to_numpy(dtype=float) if m in seeds_table else np.array([])
        how, centre, low, high = interval(v, positive=m in exp.positive_metrics)
        finite = v[np.isfinite(v)]
        rows.append(
            {
                "metric": m,
                "n_seeds": int(finite.size),
                "interval": how,
                "centre": centre,
                "ci95_low": low,
                "ci95_high": high,
                "std": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
                "min": float(finite.min()) if finite.size else float("nan"),
                "max": float(finite.max()) if finite.size else float("nan"),
                "checks": " ".join(c["id"] for c in spec.checks if c["metric"] == m),
            }
        )
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame) -> str:
    cells = df.map(fmt) if hasattr(df, "map") else df.applymap(fmt)
    header = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(row) + " |" for row in cells.astype(str).to_numpy().tolist()]
    return "\n".join([header, rule, *body]) + "\n"


def _tex_escape(s: str) -> str:
    return re.sub(r"([_%&#$])", r"\\\1", s)


def to_latex(df: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    cols = "l" + "r" * (len(df.columns) - 1)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption{{{_tex_escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(_tex_escape(c) for c in df.columns) + r" \\",
        r"\midrule",
    ]
    for row in df.itertuples(index=False):
        lines.append(" & ".join(_tex_escape(fmt(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_claim_tables(
    out: Path,
    spec: Spec,
    seeds_table: pd.DataFrame,
    checks: list[dict[str, Any]],
    premises: list[dict[str, Any]] = (),
) -> None:
    """summary.csv / .md / .tex: metrics with centre and 95% interval over seeds, and the
    premises and checks."""
    table = metric_table(spec, seeds_table)
    check_rows = pd.DataFrame(
        [
            {
                "role": role,
                "check": c["id"],
                "metric": c["metric"],
                "rule": c["rule"],
                "measured": c["measured"],
                "passed": holds_label(c),
            }
            if role == "check" or "n_met" not in c
            else {
                "role": role,
                "check": c["id"],
                "metric": c["metric"],
                "rule": c["rule"],
                "measured": f"{c['n_met']} of {c['n_seeds']} seeds met it",
                "passed": holds_label(c),
            }
            for role, group in (("premise", premises), ("check", checks))
            for c in group
        ]
    )
    io.write_csv(out / "summary.csv", table)
    md = (
        f"## {spec.id}: metrics over seeds\n\ncentre and 95% interval: mean and Student-t "
        "interval (`t`), or for positive skewed quantities geometric mean and t-interval of the "
        "log (`log-t`)\n\n" + to_markdown(table)
    )
    if len(check_rows):
        md += "\n### Pre-registered checks\n\n" + to_markdown(check_rows)
    io.write_text(out / "summary.md", md)
    caption = f"{spec.id}: per-metric centre and 95\\% interval over seeds (t, or log-t)"
    io.write_text(out / "summary.tex", to_latex(table, caption, f"tab:{spec.id}"))
