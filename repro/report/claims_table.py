"""The claims table as data (``claims.csv``): one row per run, with the verdict to show.

A result is shown only while it is current: :func:`verdict_label` says ``outdated`` when the
spec's checks changed since it was judged, or ``outdated (code changed)`` / ``(params changed)``
when the experiment's code or the spec's params did (:func:`repro.records.outdated_reason`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from repro.claims import LOCK_PATH, VARIANT_SEP, Spec, checks_hash
from repro.records import fresh_summary, outdated_reason
from repro.report.cite import bib_entries, short_cite
from repro.report.tables import fmt

VERDICT_MARK = {
    "reproduced": "✅ reproduced",
    "partial": "🟡 partial",
    "not reproduced": "❌ not reproduced",
    "inconclusive": "⚪ inconclusive",
    "error": "💥 error",
    "outdated": "⏳ outdated (checks revised since this result; see history)",
    "outdated (code changed)": "⏳ outdated (code changed since this result)",
    "outdated (params changed)": "⏳ outdated (params changed since this result)",
    "outdated (code not recorded)": "⏳ outdated (the code it ran was not recorded)",
}
# what the claims table says instead of an outdated result's numbers (the claim's section in
# REPORT.md keeps them as a record, with the reason)
OUTDATED_MEASURED = {
    "outdated": "outdated: judged by earlier checks; rerun for a current result",
    "outdated (code changed)": "outdated: the experiment's code changed since this result; "
    "rerun for a current result",
    "outdated (params changed)": "outdated: the spec's params changed since this result; "
    "rerun for a current result",
    "outdated (code not recorded)": "outdated: the code this result ran was not recorded; "
    "rerun for a current result",
}
KIND_TITLE = {
    "identity": "Identities checked numerically (kind: identity)",
    "empirical": "Empirical claims: the papers' experiments and observations (kind: empirical)",
}
NOT_RUN = "not run"

VERDICT_RULES = (
    "Verdicts are computed from each claim's pre-registered checks (claims/<id>.yaml) alone: "
    "reproduced = every check holds, partial = some, not reproduced = none; inconclusive = smoke "
    "scale, a NaN, or fewer valid seeds than the spec's min_seeds; premises are judged per seed "
    "(e.g. D became near-optimal in that seed), and a seed that misses one votes in no check; "
    "error = the experiment raised "
    "(an invariant included); outdated = the checks, params or code changed since this result "
    "(rerun it); "
    "not run = no current result at this scale. Identities (theorems checked numerically) and "
    "empirical claims are counted apart. A variant (a declared change of setup) has its own "
    "verdict; the primary run's alone is the headline. The departures column counts the "
    "declared differences from the paper's setup (listed in each claim's section): a verdict "
    "speaks about the setup run here, not the paper's."
)


def premises_text(summary: dict[str, Any]) -> str:
    """'premise p: 2 of 3 seeds' for every per-seed premise of a summary ('' if none)."""
    return "; ".join(
        f"premise {p['id']}: {p['n_met']} of {p['n_seeds']} seeds met it"
        for p in summary.get("premises", [])
        if "n_met" in p
    )


def measured_text(summary: dict[str, Any]) -> str:
    """Premises as 'k of n seeds met it', then checks as 'metric aggregate = value (rule ✓/✗)'."""
    parts = [premises_text(summary)] if premises_text(summary) else []
    for c in summary.get("checks", []):
        mark = {True: "✓", False: "✗", None: "?"}[c["passed"]]
        if c.get("not_judged"):
            parts.append(f"{c['metric']}: not judged ({c['not_judged']})")
        elif "test" in c:
            parts.append(f"{c['metric']}: p = {fmt(c['measured'])} ({c['rule']} {mark})")
        elif c.get("op") == "within":
            parts.append(
                f"{c['metric']} {c['aggregate']} = {fmt(c['measured'])} ({c['rule']} {mark})"
            )
        else:
            rule = f"{c['op']} {fmt(c['value'])} {mark}"
            parts.append(f"{c['metric']} {c['aggregate']} = {fmt(c['measured'])} ({rule})")
    return "; ".join(parts) if parts else summary.get("reason", "")


def collect(
    scale: str, results: str | Path, specs: dict[str, Spec]
) -> list[tuple[Spec, str | None, dict[str, Any] | None]]:
    """(spec, variant, current summary or None) for every claim's runs at ``scale``."""
    rows = []
    for cid, spec in sorted(specs.items()):
        for variant in [None, *spec.variants_at(scale)]:
            run = cid if variant is None else f"{cid}{VARIANT_SEP}{variant}"
            rows.append((spec, variant, fresh_summary(Path(results) / scale / run)))
    return rows


def summary_checks_hash(summary: dict[str, Any]) -> str:
    """The hash of the checks a summary was judged by (recomputed for summaries that predate it)."""
    if summary.get("checks_hash"):
        return summary["checks_hash"]
    evaluated = {"measured", "passed", "n_seeds", "mean", "ci95", "per_seed", "rule", "seeds",
                 "met", "n_met", "not_judged"}  # fmt: skip
    checks = [{k: v for k, v in c.items() if k not in evaluated} for c in summary["checks"]]
    premises = [
        {k: v for k, v in c.items() if k not in evaluated} for c in summary.get("premises", [])
    ]
    return checks_hash({"checks": checks, "premises": premises})


def verdict_label(spec: Spec, summary: dict[str, Any] | None) -> str:
    """The verdict to show: 'not run', or the summary's, unless the checks changed since."""
    if summary is None:
        return NOT_RUN
    if summary["verdict"] != "error" and summary_checks_hash(summary) != spec.checks_hash:
        return "outdated"
    stale = result_outdated(spec, summary)
    return f"outdated ({stale})" if stale else summary["verdict"]


def result_outdated(spec: Spec, summary: dict[str, Any]) -> str | None:
    """'code changed' / 'params changed' / 'seeds changed' / 'code not recorded' when the
    summary's run no longer matches the experiment's code or the spec (records.outdated_reason)."""
    record = {**summary.get("provenance", {}), "params": summary.get("params"),
              "seeds": summary.get("seeds")}  # fmt: skip
    return outdated_reason(spec, record, summary.get("variant"))


def claims_frame(rows, commits: dict[str, str] | None = None) -> pd.DataFrame:
    """The claims table, one row per run (what claims.csv holds)."""
    entries = bib_entries()
    commits = commits or {}
    out = []
    for spec, variant, s in rows:
        prov = (s or {}).get("provenance", {})
        shown = verdict_label(spec, s)
        if shown.startswith("outdated"):  # its numbers must not be read as current ones
            measured = OUTDATED_MEASURED[shown]
        else:
            measured = measured_text(s) if s else ""
        out.append(
            {
                "id": spec.id,
                "variant": variant or "",
                "kind": spec.kind,
                "paper": short_cite(spec["paper"], entries),
                "where": spec["where"],
                "statement": spec["statement"].strip(),
                "reported": spec["reported"]["summary"].strip(),
                "measured": measured,
                "verdict": shown,
                "departures": len(spec.data.get("departures", []))
                if spec.kind == "empirical"
                else "",
                "reason": (s or {}).get("reason", ""),
                "seeds": len(s["seeds"]) if s else 0,
                "device": prov.get("device_name", ""),
                "wall_time_s": prov.get("wall_time_s", ""),
                "results_commit": str(prov.get("commit", ""))[:10],
                "checks_hash": spec.checks_hash,
                "checks_registered": commits.get(spec.checks_hash, ""),
            }
        )
    return pd.DataFrame(out)


def md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def registration_commits(hashes: Iterable[str], lock_path: Path | None = None) -> dict[str, str]:
    """checks hash -> the first commit whose claims/checks.lock holds it ('uncommitted' if none)."""
    lock_path = lock_path or LOCK_PATH
    found = {}
    for h in sorted(set(hashes)):
        try:
            out = subprocess.run(
                ["git", "log", "--reverse", "--format=%h", "-S", h, "--", lock_path.name],
                cwd=lock_path.parent,
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.split()
        except (OSError, subprocess.SubprocessError):
            out = []
        found[h] = out[0] if out else "uncommitted"
    return found
