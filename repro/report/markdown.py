"""REPORT.md: the provenance header, the claims tables, one section per claim, the history.

Every number here is read from generated files (summary.json, seeds.csv); nothing is typed by hand.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from repro import io, provenance
from repro.claims import CLAIMS_DIR, ROOT, Spec, load_all
from repro.report.claims_table import (
    KIND_TITLE,
    NOT_RUN,
    VERDICT_MARK,
    VERDICT_RULES,
    claims_frame,
    collect,
    md_cell,
    registration_commits,
    summary_checks_hash,
)
from repro.report.history import read_history, update_history
from repro.report.tables import fmt, holds_label, to_markdown

# The one change of every number (issue 15): disclosed in every report's header.
RANDOM_NUMBERS = (
    "every draw after network initialisation comes from `repro.engine.streams.Stream`: a "
    "counter-based hash of (seed, stream, call, position) computed on the run's device, the same "
    "numbers on a CPU and a GPU; weights are initialised from per-seed CPU generators. Results "
    "recorded before 2026-12-06 (history) drew everything from per-seed CPU generators: other "
    "random numbers, the same checks"
)


def repository_url(citation: Path = ROOT / "CITATION.cff") -> str | None:
    """CITATION.cff's ``repository-code`` when it is set (a commented placeholder is not)."""
    if not citation.exists():
        return None
    m = re.search(r"(?m)^repository-code:\s*[\"']?([^\"'\s]+)", citation.read_text("utf-8"))
    return m.group(1) if m else None


def build_report(
    scale: str,
    out_dir: str | Path,
    results: str | Path,
    figures_dir: str | Path,
    claims_dir: str | Path | None = None,
    history: bool = True,
) -> Path:
    """REPORT.md, claims.csv and history.csv in ``out_dir``: every claim of ``claims_dir``,
    with its current result under ``results/{scale}`` or 'not run'. ``history=False`` (a
    rebuild after a result went away) leaves history.csv as it is."""
    specs = load_all(claims_dir or CLAIMS_DIR)
    rows = collect(scale, results, specs)
    out_dir = Path(out_dir)
    figures_rel = os.path.relpath(Path(figures_dir), out_dir)
    commits = registration_commits(spec.checks_hash for spec in specs.values())
    table = claims_frame(rows, commits)
    done = [s for _, _, s in rows if s is not None]
    git = provenance.git_state()
    devices = sorted({s["provenance"].get("device_name", "?") for s in done}) or ["—"]
    cpus = sorted({cpu_line(s["provenance"].get("cpu")) for s in done}) or ["—"]
    result_commits = sorted({str(s["provenance"].get("commit", "?"))[:10] for s in done})
    versions = provenance.package_versions()
    primary = table[table["variant"] == ""]
    lines = [
        f"# gan-claims report: {scale} scale",
        "",
        "| | |",
        "|---|---|",
        f"| report commit | `{git['commit']}` (dirty: {git['dirty']}) |",
        f"| repository | {repository_url() or '— (CITATION.cff sets no repository-code yet)'} |",
        f"| results from commits | {', '.join(f'`{c}`' for c in result_commits) or '—'} |",
        f"| scale | {scale} |",
        f"| device(s) | {'; '.join(devices)} |",
        f"| CPU(s): model, vendor, PyTorch kernels, vector extensions | {'; '.join(cpus)} |",
        f"| generated | {provenance.now_utc()} |",
        f"| packages | {', '.join(f'{k} {v}' for k, v in versions.items())} |",
        f"| random numbers | {RANDOM_NUMBERS} |",
    ]
    for kind in ("identity", "empirical"):
        counts = primary[primary["kind"] == kind]["verdict"].value_counts().to_dict()
        said = ", ".join(f"{v}: {n}" for v, n in sorted(counts.items())) or "none"
        lines.append(f"| verdicts, {kind} claims | {said} |")
    lines += ["", VERDICT_RULES, ""]
    for kind in ("identity", "empirical"):
        lines += [f"## {KIND_TITLE[kind]}", "", *_claims_table(rows, table, kind, specs)]
        lines.append("")
    for (spec, variant, s), row in zip(rows, table.itertuples(index=False), strict=True):
        if variant is None:
            variants = [(v, r) for (sp, v, _), r in zip(rows, table.itertuples(), strict=True)
                        if sp.id == spec.id and v is not None]  # fmt: skip
            lines += ["", *_claim_section(spec, s, row, variants, figures_rel)]
    history = (
        update_history(out_dir / "history.csv", table, rows)
        if history
        else read_history(out_dir / "history.csv")
    )
    lines += ["", "## History of verdicts", "", HISTORY_TEXT, "", to_markdown(history)]
    report_md = io.write_text(out_dir / "REPORT.md", "\n".join(lines) + "\n")
    io.write_csv(out_dir / "claims.csv", table)
    return report_md


HISTORY_TEXT = (
    "Every verdict this report has shown, under the checks it was judged by (checks hash; "
    "claims/checks.lock and each spec's `revisions:` say when and why checks changed)."
)


def _claims_table(rows, table: pd.DataFrame, kind: str, specs) -> list[str]:
    lines = [
        "| claim | paper | where | reported | measured | verdict | departures | variants |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (spec, variant, _), row in zip(rows, table.itertuples(index=False), strict=True):
        if variant is not None or spec.kind != kind:
            continue
        variants = "; ".join(
            f"{r.variant}: {r.verdict}"
            for r in table[(table["id"] == spec.id) & (table["variant"] != "")].itertuples()
        )
        cells = [
            f"[`{row.id}`](#{row.id})",
            row.paper,
            row.where,
            row.reported,
            row.measured or "—",
            VERDICT_MARK.get(row.verdict, row.verdict),
            str(row.departures) if row.departures != "" else "—",
            variants or "—",
        ]
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    return lines


def _checks_rows(checks: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| check | metric | rule | measured | 95% CI of mean | per seed | reported | holds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        ci = f"[{fmt(c['ci95'][0])}, {fmt(c['ci95'][1])}]"
        per_seed = ", ".join(fmt(v) for v in c["per_seed"])
        rule = c.get("rule") or f"{c['aggregate']} {c['op']} {fmt(c['value'])}"
        cells = [
            c["id"],
            c["metric"],
            rule,
            fmt(c["measured"]),
            ci,
            per_seed,
            fmt(c.get("reported")),
            holds_label(c) + (f": {c['not_judged']}" if c.get("not_judged") else ""),
        ]
        lines.append("| " + " | ".join(md_cell(x) for x in cells) + " |")
    return lines


def _premise_rows(premises: list[dict[str, Any]]) -> list[str]:
    """Per-seed premises: how many seeds met each, and every seed's value and flag."""
    lines = [
        "| premise | metric | rule | seeds that met it | per seed (value, met) | holds for all |",
        "|---|---|---|---|---|---|",
    ]
    for p in premises:
        per_seed = ", ".join(
            f"{fmt(v)} {'✓' if m else '✗'}" for v, m in zip(p["per_seed"], p["met"], strict=True)
        )
        cells = [
            p["id"],
            p["metric"],
            p["rule"],
            f"{p['n_met']} of {p['n_seeds']}",
            per_seed,
            holds_label(p),
        ]
        lines.append("| " + " | ".join(md_cell(x) for x in cells) + " |")
    return lines


def departures_lines(spec: Spec) -> list[str]:
    """The spec's declared departures from the paper's setup, as a Markdown table."""
    deps = spec.data.get("departures")
    if spec.kind != "empirical" or deps is None:
        return []
    if not deps:
        return ["*Departures from the paper's setup:* none declared.", ""]
    lines = [
        f"*Departures from the paper's setup* ({len(deps)}; the verdict speaks about the setup "
        "run here):",
        "",
        "| what | paper | here | why |",
        "|---|---|---|---|",
    ]
    for d in deps:
        cells = [d["what"], d["paper"].strip(), d["here"].strip(), d["why"].strip()]
        lines.append("| " + " | ".join(md_cell(x) for x in cells) + " |")
    return lines + [""]


def basis_lines(spec: Spec) -> list[str]:
    """What each premise and check rests on (its ``basis:``)."""
    items = [(p["id"], p.get("basis", "")) for p in spec.premises]
    items += [(c["id"], c.get("basis", "")) for c in spec.checks]
    if not any(b for _, b in items):
        return []
    lines = ["*Basis of each premise and check:*", ""]
    lines += [f"- `{cid}`: {' '.join(str(b).split())}" for cid, b in items if b]
    return lines + [""]


def _outdated_note(spec: Spec, s: dict[str, Any]) -> str:
    """Why a result is outdated by code or params, in a sentence for its section."""
    prov = s["provenance"]
    now = provenance.current_code(spec["experiment"])["code_hash"]
    return (
        f"*This result ran code `{prov.get('code_hash') or 'not recorded'}` with params hash "
        f"`{prov.get('params_hash')}`; the experiment's code is now `{now}` and the spec's params "
        f"hash `{provenance.params_hash(spec.params(s['scale'], s.get('variant')))}`: rerun the "
        "claim for a current verdict (its verdict below is kept as a record).*"
    )


def _claim_section(spec: Spec, s, row, variants, figures_rel: str) -> list[str]:
    quote = spec["quote"]
    lines = [
        f"## {spec.id}",
        "",
        f"**{spec['title']}** ({row.paper}, {spec['where']}; kind: {spec.kind})",
        "",
        f"*The paper{'' if quote['verbatim'] else ' (paraphrased)'}:* “{quote['text'].strip()}”",
        "",
        f"*Statement.* {spec['statement'].strip()}",
        "",
        f"*Reported.* {spec['reported']['summary'].strip()}",
        "",
        f"*Checks registered in:* `{row.checks_registered}` (checks hash `{row.checks_hash}`)",
        "",
        *departures_lines(spec),
        *basis_lines(spec),
    ]
    if s is None:
        return lines + [f"*Verdict:* **{NOT_RUN}** at this scale.", ""]
    prov = s["provenance"]
    lines += [
        f"*Verdict:* **{row.verdict}** ({s['reason']})",
        "",
        f"*Seeds:* {s['seeds']}; *device:* {prov.get('device_name')}{graphs_note(prov)}; "
        f"*wall time:* {fmt(prov.get('wall_time_s'))} s; "
        f"*peak memory:* {fmt(prov.get('peak_mem_mb'))} MiB; "
        f"*results commit:* `{str(prov.get('commit'))[:10]}` (dirty: {prov.get('dirty')}); "
        f"*params hash:* `{prov.get('params_hash')}`",
        "",
    ]
    if s.get("setup"):
        used = "; ".join(f"{k}: {v}" for k, v in s["setup"].items())
        lines += [f"*Setup used:* {used}", ""]
    if row.verdict == "outdated":
        lines += [
            f"*This result was judged by checks `{summary_checks_hash(s)}`; the spec now has "
            f"`{row.checks_hash}`: rerun the claim for a current verdict.*",
            "",
        ]
    if row.verdict.startswith("outdated ("):
        lines += [_outdated_note(spec, s), ""]
    if s.get("premises") and all("n_met" in p for p in s["premises"]):
        lines += ["*Premises* (judged per seed; only seeds that met every premise vote):", ""]
        lines += [*_premise_rows(s["premises"]), ""]
    elif s.get("premises"):
        lines += ["*Premises* (all must hold for the checks to count):", ""]
        lines += [*_checks_rows(s["premises"]), ""]
    if s["checks"]:
        lines += [*_checks_rows(s["checks"]), ""]
    for variant, vrow in variants:
        lines.append(
            f"*Variant `{variant}`* ({spec.variants[variant]['description']}): "
            f"**{vrow.verdict}**; {vrow.measured or vrow.reason or ''}"
        )
        lines.append("")
    for f in spec.figures:
        image = f"![{f['name']}]({figures_rel}/{spec.id}/{f['name']}.png)"
        lines += [image, "", f"*{f['caption'].strip()}*", ""]
    if spec.data.get("notes"):
        lines += [f"*Notes.* {spec['notes'].strip()}", ""]
    return lines


def graphs_note(prov: dict[str, Any]) -> str:
    """How the run's updates ran, when not plainly eager (run.json's ``graphs``)."""
    if not prov.get("graphs"):
        return ""
    if prov.get("device") == "cuda":
        return " (updates as CUDA graphs)"
    return " (updates on the static-step path, eager)"


def cpu_line(cpu: dict | None) -> str:
    """``AMD EPYC (AuthenticAMD; kernels AVX512; avx512f avx2 fma)``: what tells two CPUs'
    rounding apart (results from before this was recorded say "not recorded")."""
    if not cpu:
        return "not recorded"
    return (
        f"{cpu.get('cpu_model', '?')} ({cpu.get('cpu_vendor', '?')}; kernels "
        f"{cpu.get('cpu_isa', '?')}; {cpu.get('cpu_flags', '?')})"
    )
