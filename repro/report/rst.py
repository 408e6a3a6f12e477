"""The Snakemake HTML report's reStructuredText: the landing page and escaped captions.

Snakemake renders captions as reStructuredText; spec text goes through :func:`rst_escape` so a
"|theta|" never reads as a substitution, and :func:`check_rst` stops the report on any docutils
warning.
"""

from __future__ import annotations

import re
from pathlib import Path

from repro import provenance
from repro.claims import CLAIMS_DIR, Spec, load_all
from repro.report.claims_table import (
    KIND_TITLE,
    VERDICT_RULES,
    claims_frame,
    collect,
    registration_commits,
)
from repro.report.markdown import repository_url

_RST_SPECIAL = re.compile(r"([\\*`_|\[\]<>])")


def rst_escape(text: str) -> str:
    """``text`` as literal RST: markup characters (``*``, backquote, ``_``, ``|``...) escaped,
    so a spec's "|theta|" never reads as a substitution."""
    return _RST_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def check_rst(text: str, source: str) -> None:
    """Raise ValueError naming ``source`` if docutils reports any warning or error in ``text``."""
    import io as _io

    from docutils.core import publish_doctree
    from docutils.utils import SystemMessage

    stream = _io.StringIO()
    settings = {"halt_level": 2, "report_level": 2, "warning_stream": stream}
    try:
        publish_doctree(text, settings_overrides=settings)
    except SystemMessage as e:
        raise ValueError(f"{source}: not valid reStructuredText: {e}") from None


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def landing_rst(scale: str, results: str | Path, claims_dir: str | Path | None = None) -> str:
    """The HTML report's landing page: provenance, verdict counts and the claims table."""
    specs = load_all(claims_dir or CLAIMS_DIR)
    rows = collect(scale, results, specs)
    table = claims_frame(rows, registration_commits(s.checks_hash for s in specs.values()))
    done = [s for _, _, s in rows if s is not None]
    git = provenance.git_state()
    devices = sorted({s["provenance"].get("device_name", "?") for s in done}) or ["none"]
    commits = sorted({str(s["provenance"].get("commit", "?"))[:10] for s in done}) or ["none"]
    lines = [
        # Snakemake's landing pane centres its content vertically; a table taller than the window
        # would start above the top, out of a reader's reach: align it to the top instead
        ".. raw:: html",
        "",
        "   <style>div.items-center.justify-center.h-screen { align-items: flex-start; }</style>",
        "",
        f"gan-claims: each classic claim about GAN training as a pre-registered experiment with a "
        f"computed verdict. Scale: **{scale}**.",
        "",
        f"Report commit ``{git['commit'][:10]}`` (dirty: {git['dirty']})"
        + (f" of {repository_url()}" if repository_url() else "")
        + "; results from commits "
        f"{', '.join(f'``{c}``' for c in commits)}; device(s): {rst_escape('; '.join(devices))}.",
        "",
        rst_escape(VERDICT_RULES),
        "",
    ]
    for kind in ("identity", "empirical"):
        part = table[(table["kind"] == kind)]
        counts = part[part["variant"] == ""]["verdict"].value_counts().to_dict()
        said = ", ".join(f"{v}: {n}" for v, n in sorted(counts.items())) or "none"
        if part.empty:
            lines += [f"**{rst_escape(KIND_TITLE[kind])}**: none.", ""]
            continue
        # empirical claims: how many declared departures from the paper's setup (each listed in
        # the caption of the claim's metric table, under Claims, and in REPORT.md)
        departures = kind == "empirical"
        lines += [
            f".. list-table:: {rst_escape(KIND_TITLE[kind])} ({said})",
            "   :header-rows: 1",
            "   :widths: " + ("16 16 10 8 25 25" if departures else "18 18 10 27 27"),
            "",
            "   * - claim",
            "     - paper, where",
            "     - verdict",
            *(["     - departures"] if departures else []),
            "     - measured",
            "     - reported (in full in REPORT.md)",
        ]
        for row in part.itertuples(index=False):
            name = row.id + (f" @ {row.variant}" if row.variant else "")
            cells = [
                f"{row.paper}, {row.where}",
                row.verdict,
                *([str(row.departures)] if departures else []),
                _short(row.measured or "—", 200),
                _short(row.reported, 140),
            ]
            lines.append(f"   * - {rst_escape(name)}")
            lines += [f"     - {rst_escape(c) or '—'}" for c in cells]
        lines.append("")
    lines += [
        "Each claim's figures and metric tables are under *Claims* (one subcategory per claim; "
        "the metric table's caption lists the claim's departures from the paper's setup); "
        "REPORT.md (under *Report*) holds every check with its per-seed values, the paper's "
        "quote, and the history of verdicts.",
        "",
    ]
    return "\n".join(lines)


def departures_rst(spec: Spec) -> str:
    """An empirical claim's declared departures from the paper's setup as RST, for the caption
    of its metric table in the HTML report (REPORT.md's section shows the same table); '' for an
    identity, which has no setup to depart from."""
    deps = spec.data.get("departures")
    if spec.kind != "empirical" or deps is None:
        return ""
    if not deps:
        return "**Departures from the paper's setup:** none declared."
    lines = [
        f".. list-table:: Departures from the paper's setup ({len(deps)}; the verdict speaks "
        "about the setup run here)",
        "   :header-rows: 1",
        "   :widths: 16 28 28 28",
        "",
        "   * - what",
        "     - paper",
        "     - here",
        "     - why",
    ]
    for d in deps:
        cells = [d["what"], d["paper"], d["here"], d["why"]]
        lines.append(f"   * - {rst_escape(cells[0]) or '—'}")
        lines += [f"     - {rst_escape(c) or '—'}" for c in cells[1:]]
    return "\n".join(lines) + "\n"
