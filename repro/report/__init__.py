"""Tables, REPORT.md, the HTML report's landing page and README's claims table.

Every number here is read from generated files (summary.json, seeds.csv); nothing is typed by hand.

- :mod:`~repro.report.tables`: one claim's metric table over seeds (summary.csv / .md / .tex);
- :mod:`~repro.report.cite`: short citations from report/refs.bib;
- :mod:`~repro.report.claims_table`: the claims table as data (claims.csv), the verdict to show;
- :mod:`~repro.report.history`: history.csv, every verdict shown so far;
- :mod:`~repro.report.markdown`: REPORT.md;
- :mod:`~repro.report.rst`: the Snakemake HTML report's landing page and captions;
- :mod:`~repro.report.readme`: README's claims table.

Their public names are importable from ``repro.report``.
"""

from repro.report.cite import bib_entries, short_cite
from repro.report.claims_table import (
    KIND_TITLE,
    NOT_RUN,
    VERDICT_MARK,
    VERDICT_RULES,
    claims_frame,
    collect,
    measured_text,
    premises_text,
    registration_commits,
    result_outdated,
    summary_checks_hash,
    verdict_label,
)
from repro.report.history import HISTORY_COLUMNS, read_history, update_history
from repro.report.markdown import (
    HISTORY_TEXT,
    basis_lines,
    build_report,
    cpu_line,
    departures_lines,
    repository_url,
)
from repro.report.readme import (
    README_END,
    README_START,
    ROOT_README,
    ROOT_RESULTS,
    readme_table,
    update_readme,
)
from repro.report.rst import check_rst, departures_rst, landing_rst, rst_escape
from repro.report.tables import fmt, metric_table, to_latex, to_markdown, write_claim_tables

__all__ = [
    "HISTORY_COLUMNS", "HISTORY_TEXT", "KIND_TITLE", "NOT_RUN", "README_END", "README_START",
    "ROOT_README", "ROOT_RESULTS", "VERDICT_MARK", "VERDICT_RULES", "basis_lines", "bib_entries",
    "build_report", "check_rst", "claims_frame", "collect", "cpu_line", "departures_lines",
    "departures_rst", "fmt",
    "landing_rst", "measured_text", "metric_table", "premises_text", "read_history",
    "readme_table", "registration_commits", "repository_url", "result_outdated", "rst_escape",
    "short_cite", "summary_checks_hash", "to_latex", "to_markdown", "update_history",
    "update_readme", "verdict_label", "write_claim_tables",
]  # fmt: skip
