#!/usr/bin/env bash
# Snakemake's HTML report as a reader sees it: rendered in headless Chromium (Debian's `chromium`),
# screenshots saved as PNG, and the text a reader sees checked.
#
#   bash report/check_html.sh                 # smoke pipeline + `snakemake --report` in a work
#                                             # folder, then the browser (`make report-check`)
#   bash report/check_html.sh X.html|X.zip    # an existing report (`snakemake --report X.zip` too)
#
# Writes $REPORT_CHECK_DIR/shots (default /tmp/gan-claims-report-check/shots): 00-landing.png/.txt
# (the landing page, whole height) and one NN-<view>.png/.txt per view clicked open
# ($REPORT_CHECK_CLICKS: "|"-separated link texts or css:SELECTOR, default: Claims, then
# js-disjoint-supports, then its figure's caption (the (i) icon), then the figure (the eye icon)).
# Look at the PNGs.
# Passes when the page renders (scripts ran, text and a non-trivial screenshot); the reader-facing
# findings below are printed as WARN, and fail the check with REPORT_CHECK_STRICT=1:
#   - a docutils error in a caption (e.g. "ERROR/3 ... Undefined substitution")
#   - the local interpreter path published in the report
#   - no claims table on the landing page (none of the claim ids in claims/ shown there)
#   - content a reader cannot scroll to (above the top of a scrollable pane)
# Needs root or chromium installed: installs `chromium` with apt-get when missing.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$REPO/.venv}
[[ $VENV = /* ]] || VENV=$REPO/$VENV
WORK=${REPORT_CHECK_DIR:-/tmp/gan-claims-report-check}
OUT=$WORK/shots
CLICKS=${REPORT_CHECK_CLICKS-Claims|js-disjoint-supports|css:[iconname=information-circle]|css:[iconname=eye]}
PY=$VENV/bin/python

say() { printf '[report-check] %s\n' "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

if ! command -v chromium >/dev/null; then
    [[ $(id -u) = 0 ]] || die "no chromium: apt-get install chromium (as root)"
    say "apt-get install chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

mkdir -p "$WORK"
REPORT=${1:-}
if [[ -z $REPORT ]]; then
    export PATH="$VENV/bin:$PATH" PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    sm=("$PY" -m snakemake -s "$REPO/Snakefile" -d "$WORK/run" --config scale=smoke)
    say "smoke pipeline in $WORK/run"
    "${sm[@]}" --cores 2 >"$WORK/smoke.log" 2>&1 || { tail -30 "$WORK/smoke.log"; die "smoke run failed"; }
    REPORT=$WORK/report.html
    say "snakemake --report $REPORT"
    "${sm[@]}" --report "$REPORT" >"$WORK/report.log" 2>&1 ||
        { tail -30 "$WORK/report.log"; die "snakemake --report failed (log: $WORK/report.log)"; }
fi
[[ -f $REPORT ]] || die "no report at $REPORT"
if [[ $REPORT = *.zip ]]; then
    rm -rf "$WORK/unzipped" && mkdir -p "$WORK/unzipped"
    "$PY" -m zipfile -e "$REPORT" "$WORK/unzipped"
    REPORT=$(find "$WORK/unzipped" -name report.html | head -1)
    [[ -n $REPORT ]] || die "no report.html in the zip"
fi
say "report: $REPORT ($(du -h "$REPORT" | cut -f1))"

rm -rf "$OUT"
clicks=()
IFS='|' read -r -a names <<<"$CLICKS"
for n in "${names[@]}"; do [[ -z $n ]] || clicks+=(--click "$n"); done
# a click that finds nothing is reported by browser_shot.py and counted below, not fatal here
"$PY" "$REPO/report/browser_shot.py" "$REPORT" "$OUT" --ready Workflow "${clicks[@]}" |
    tee "$OUT.jsonl" || true

"$PY" - "$REPORT" "$OUT" "$OUT.jsonl" "$VENV" "${REPORT_CHECK_STRICT:-0}" "$REPO/claims" <<'PY'
import json, os, re, sys
from pathlib import Path

report, out, views_file, venv, strict, claims_dir = sys.argv[1:]
html = Path(report).read_text(errors="replace")
views = [json.loads(line) for line in Path(views_file).read_text().splitlines() if line.strip()]
texts = {p.stem: p.read_text() for p in sorted(Path(out).glob("*.txt"))}
fails, warns = [], []

landing = next((v for v in views if v["view"] == "landing"), None)
if landing is None or landing.get("text_chars", 0) < 20 or landing.get("bytes", 0) < 10_000:
    fails.append(f"the landing page did not render: {landing}")
for v in views:
    if "error" in v:
        warns.append(f"no link '{v['view']}' to click on")
    elif v.get("unreachable_px", 0) > 0:
        warns.append(f"view '{v['view']}': {v['unreachable_px']} px of content above the top of "
                     "a scrollable pane, out of the reader's reach (centred overflow)")

# docutils leaves "System Message: ERROR/3 (...)" blocks in captions it could not parse
docutils = sorted(set(re.findall(r"(?:System Message: )?(?:ERROR|SEVERE|WARNING)/\d[^<\"\\]{0,80}", html)))
if docutils:
    warns.append(f"{len(docutils)} distinct docutils messages in the report, e.g. {docutils[:3]}")
paths = {str(Path(venv) / "bin" / "python"), os.path.realpath(Path(venv) / "bin" / "python")}
paths |= set(re.findall(r"/[\w./-]*/\.venv/bin/python3?", html))
published = sorted(p for p in paths if p in html)
if published:
    warns.append(f"the interpreter path is published: {published}")
ids = sorted(p.stem for p in Path(claims_dir).glob("*.yaml"))
shown = [i for i in ids if re.search(rf"(?<![\w-]){re.escape(i)}(?![\w-])", texts.get("00-landing", ""))]
if not shown:
    warns.append(f"no claims table on the landing page (0 of {len(ids)} claim ids shown)")
else:
    print(f"[report-check] landing page names {len(shown)} of {len(ids)} claims")

shown = [f"{v['view']} ({v.get('width')}x{v.get('height')} px)" for v in views if "png" in v]
print(f"[report-check] views: {', '.join(shown)}")
for w in warns:
    print(f"[report-check] WARN: {w}")
for f in fails:
    print(f"[report-check] FAIL: {f}")
bad = fails + (warns if strict == "1" else [])
print(f"[report-check] {'FAILED' if bad else 'ok'}: {len(fails)} failures, {len(warns)} warnings"
      f"{' (strict)' if strict == '1' else ''}; screenshots in {out}")
sys.exit(1 if bad else 0)
PY
