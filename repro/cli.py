"""`repro`: list the claims, rerun some through the pipeline, show one.

repro list [--scale S]                 every claim with its latest verdict at S
repro run ID [ID ...] [--scale S]      rerun just these claims through Snakemake
repro show ID [--scale S] [--json]     spec, measured vs reported, verdict
repro validate                         check every spec (schema + meaning), train nothing
repro readme                           refresh README's claims table from the full-scale results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from repro import io
from repro.claims import ROOT, SCALES, SpecError, UnknownClaimError, load_all, resolve_ids

CONFIG = ROOT / "config" / "config.yaml"


def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text()) if CONFIG.exists() else {}


def load_summary(claim: str, scale: str, results: Path) -> dict[str, Any] | None:
    path = results / scale / claim / "summary.json"
    return io.read_json(path) if path.exists() else None


def cmd_list(args: argparse.Namespace) -> int:
    specs = load_all()
    width = max(len(i) for i in specs)
    print(f"{'claim':<{width}}  {'verdict (' + args.scale + ')':<18}  paper / where")
    for cid, spec in specs.items():
        s = load_summary(cid, args.scale, args.results)
        label = s["verdict"] if s else "not run"
        print(f"{cid:<{width}}  {label:<18}  {spec['paper']} / {spec['where']}")
    return 0


def claim_targets(claim: str, scale: str, spec) -> list[str]:
    res, fig = config().get("results_dir", "results"), config().get("figures_dir", "figures")
    figs = [f"{fig}/{scale}/{claim}/{f['name']}.png" for f in spec.figures]
    return [f"{res}/{scale}/{claim}/summary.json", *figs]


def cmd_run(args: argparse.Namespace) -> int:
    specs = load_all()
    ids = resolve_ids(args.ids, specs)
    targets = [t for i in ids for t in claim_targets(i, args.scale, specs[i])]
    others = [i for i in specs if i not in ids]
    # the report covers every claim: refresh it only when the others already have results
    if all(load_summary(i, args.scale, args.results) for i in others):
        targets.append(f"{config().get('results_dir', 'results')}/{args.scale}/REPORT.md")
    else:
        print(f"note: REPORT.md not refreshed; other claims have no {args.scale} results yet")
    force = [t.replace("summary.json", "run.json") for t in targets if t.endswith("summary.json")]
    snakefile = ["-s", str(ROOT / "Snakefile"), "-d", str(args.workdir)]
    settings = ["--cores", str(args.cores), "--config", f"scale={args.scale}"]
    cmd = [sys.executable, "-m", "snakemake", *snakefile, *settings, "--forcerun", *force]
    cmd += ["--", *targets]
    print("+", " ".join(cmd), flush=True)
    code = subprocess.call(cmd)
    if code:
        return code
    failed = [
        i
        for i in ids
        if (load_summary(i, args.scale, args.results) or {}).get("verdict") == "error"
    ]
    for i in ids:
        s = load_summary(i, args.scale, args.results)
        print(f"{i}: {s['verdict'] if s else 'no result'}")
    return 1 if failed else 0


def cmd_show(args: argparse.Namespace) -> int:
    specs = load_all()
    (cid,) = resolve_ids([args.id], specs)
    spec, summary = specs[cid], load_summary(cid, args.scale, args.results)
    if args.json:
        out = summary or {
            "id": cid,
            "scale": args.scale,
            "verdict": "not run",
            "checks": [],
            "provenance": None,
        }
        out = {**out, "spec": dict(spec.data)}
        print(json.dumps(out, indent=2, default=str))
        return 0
    print(f"{cid}: {spec['title']}")
    print(f"  paper: {spec['paper']}, {spec['where']}")
    print(f"  statement: {spec['statement'].strip()}")
    print(f"  reported: {spec['reported']['summary'].strip()}")
    if summary is None:
        print(f"  verdict ({args.scale}): not run; `repro run {cid} --scale {args.scale}`")
        return 0
    print(f"  verdict ({args.scale}): {summary['verdict']} ({summary['reason']})")
    for c in summary["checks"]:
        mark = {True: "holds", False: "fails", None: "n/a"}[c["passed"]]
        print(
            f"  check {c['id']}: {c['metric']} {c['aggregate']} = {c['measured']:.4g} "
            f"{c['op']} {c['value']} -> {mark}; reported: {c.get('reported', '—')}"
        )
    prov = summary["provenance"]
    print(
        f"  seeds: {summary['seeds']}; device: {prov.get('device_name')}; "
        f"commit: {str(prov.get('commit'))[:10]} (dirty: {prov.get('dirty')})"
    )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    specs = load_all()
    print(f"{len(specs)} claim specs valid: {', '.join(specs)}")
    return 0


def cmd_readme(args: argparse.Namespace) -> int:
    from repro.report import update_readme

    changed = update_readme(ROOT / "README.md", args.results)
    print("README.md updated" if changed else "README.md already up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repro", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=ROOT,
        help="where results/ and figures/ live, as Snakemake's -d (default: the repository)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    scale_kw = {
        "choices": SCALES,
        "default": None,
        "help": "smoke, quick or full (default: config)",
    }
    p = sub.add_parser("list", help="every claim with its latest verdict")
    p.add_argument("--scale", **scale_kw)
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("run", help="rerun claims through the pipeline")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--scale", **scale_kw)
    p.add_argument("--cores", default="all")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("show", help="one claim: spec, measured vs reported, verdict")
    p.add_argument("id", metavar="ID")
    p.add_argument("--scale", **scale_kw)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("validate", help="validate every claim spec")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("readme", help="refresh README's claims table (full scale)")
    p.set_defaults(func=cmd_readme)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "scale", "x") is None:
        args.scale = config().get("scale", "quick")
    args.workdir = args.workdir.resolve()
    args.results = args.workdir / config().get("results_dir", "results")
    try:
        return args.func(args)
    except (SpecError, UnknownClaimError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
