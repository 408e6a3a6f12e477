"""`repro`: list the claims, rerun some through the pipeline, show one.

repro list [--scale S]                 every claim with its latest verdict at S
repro run ID [ID ...] [--scale S]      rerun just these claims (and their variants) via Snakemake
repro show ID [--scale S] [--json]     spec, premises per seed (which seeds vote), checks, verdict
repro validate                         check every spec and claims/checks.lock; train nothing
repro lock                             register new claims' checks in claims/checks.lock
repro report [--scale S]               Snakemake's HTML report of S from the results present
repro data                             fetch Fashion-MNIST into data/ (as `make data`)
repro readme                           refresh README's claims table from the full-scale results
repro backfill [--scale S]             add code hashes to run records that predate them
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from repro.claims import (
    ROOT,
    SCALES,
    SpecError,
    UnknownClaimError,
    load_all,
    resolve_ids,
    voting_seeds,
)

CONFIG = ROOT / "config" / "config.yaml"


class ConfigError(ValueError):
    """config/config.yaml cannot be read; the message names the file and the line."""


def config() -> dict[str, Any]:
    return read_config(CONFIG)


def read_config(path: Path) -> dict[str, Any]:
    """A config YAML file as a mapping; ConfigError naming the file and line when it is not."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (offset {e.start})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings (scale, seeds, ...)")
    return data


def call_snakemake(cmd: list[str]) -> int:
    """Run Snakemake and return its exit code; on Ctrl-C, let it stop cleanly.

    Snakemake runs in its own process group and gets exactly one SIGINT, sent to that group by
    us, as a terminal's Ctrl-C would (a second one, e.g. the terminal's and a forwarded one, breaks
    its cleanup). It cancels its jobs, removes their incomplete outputs and releases its lock;
    we wait for it, then exit 130 without a traceback. Also when the SIGINT was sent to this
    process alone.
    """
    import signal

    # A handler, not KeyboardInterrupt: a SIGINT that lands while the child is being started
    # (before a try block could catch it) would otherwise kill us and orphan Snakemake.
    state: dict[str, Any] = {"proc": None, "pending": False, "interrupted": False}

    def forward(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def on_sigint(*_: Any) -> None:
        state["interrupted"] = True
        print("\ninterrupted: waiting for Snakemake to stop its jobs...", file=sys.stderr)
        if state["proc"] is None:
            state["pending"] = True  # forwarded as soon as the child exists
        else:
            forward(state["proc"])

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        proc = subprocess.Popen(cmd, start_new_session=True)
        state["proc"] = proc
        if state["pending"]:
            forward(proc)
        code = proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    return 130 if state["interrupted"] else code


def cores_arg(value: str) -> str:
    """--cores: 'all' or a positive integer (Snakemake waits forever on 0)."""
    if value == "all" or (value.isdigit() and int(value) > 0):
        return value
    raise argparse.ArgumentTypeError(f"{value!r}: give a positive integer or 'all'")


def load_summary(claim: str, scale: str, results: Path) -> dict[str, Any] | None:
    """The claim's current summary at ``scale``; None if absent or stale (no matching run)."""
    from repro.records import fresh_summary

    return fresh_summary(results / scale / claim)


def cmd_list(args: argparse.Namespace) -> int:
    from repro.report import bib_entries, short_cite, verdict_label

    specs, entries = load_all(), bib_entries()
    width = max(len(i) for i in specs)
    print(f"{'claim':<{width}}  {'kind':<9}  {'verdict (' + args.scale + ')':<26}  paper, where")
    for cid, spec in specs.items():
        label = verdict_label(spec, load_summary(cid, args.scale, args.results))
        cite = short_cite(spec["paper"], entries)
        print(f"{cid:<{width}}  {spec.kind:<9}  {label:<26}  {cite}, {spec['where']}")
    return 0


def claim_targets(claim: str, scale: str, spec) -> list[str]:
    """The summaries and figures of the claim's primary run and its variants at ``scale``."""
    from repro.claims import VARIANT_SEP

    res, fig = config().get("results_dir", "results"), config().get("figures_dir", "figures")
    runs = [claim] + [f"{claim}{VARIANT_SEP}{v}" for v in spec.variants_at(scale)]
    return [
        t
        for run in runs
        for t in [
            f"{res}/{scale}/{run}/summary.json",
            *(f"{fig}/{scale}/{run}/{f['name']}.png" for f in spec.figures),
        ]
    ]


def cmd_run(args: argparse.Namespace) -> int:
    specs = load_all()
    ids = resolve_ids(args.ids, specs)
    targets = [t for i in ids for t in claim_targets(i, args.scale, specs[i])]
    # the report always covers every claim (those without results show "not run")
    targets.append(f"{config().get('results_dir', 'results')}/{args.scale}/REPORT.md")
    force = [t.replace("summary.json", "run.json") for t in targets if t.endswith("summary.json")]
    snakefile = ["-s", str(ROOT / "Snakefile"), "-d", str(args.workdir)]
    # only the named claims enter the DAG: other claims without results stay "not run" in the
    # report instead of being built too
    only = f"claims=[{', '.join(ids)}]"
    settings = ["--cores", str(args.cores), "--config", f"scale={args.scale}", only]
    cmd = [sys.executable, "-m", "snakemake", *snakefile, *settings, "--forcerun", *force]
    cmd += ["--", *targets]
    print("+", " ".join(cmd), flush=True)
    code = call_snakemake(cmd)
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
        if summary is not None:
            from repro.report import verdict_label

            out = {**out, "verdict": verdict_label(spec, summary), "last_verdict": out["verdict"]}
            voting = voting_seeds(summary.get("premises") or [], summary["seeds"])
            if voting is not None:  # the seeds that met every premise
                out["voting_seeds"] = voting
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
    from repro.report import fmt, verdict_label

    label = verdict_label(spec, summary)
    if label != summary["verdict"]:
        print(f"  verdict ({args.scale}): {label}; rerun: `repro run {cid} --scale {args.scale}`")
        print(f"  last verdict: {summary['verdict']} ({summary['reason']})")
    else:
        print(f"  verdict ({args.scale}): {summary['verdict']} ({summary['reason']})")
    for line in premise_lines(summary):
        print(f"  {line}")
    for c in summary.get("checks", []):
        mark = {True: "holds", False: "fails", None: "n/a"}[c["passed"]]
        rule = c.get("rule") or f"{c['aggregate']} {c['op']} {c['value']}"
        voters = "voting " if summary.get("premises") else ""
        over = f" over {c['n_seeds']} {voters}seed(s)" if "n_seeds" in c else ""
        print(
            f"  check {c['id']}: {c['metric']}: measured {fmt(c['measured'])}{over} ({rule}) "
            f"-> {mark}; reported: {c.get('reported', '—')}"
        )
    prov = summary["provenance"]
    print(
        f"  seeds: {summary['seeds']}; device: {prov.get('device_name')}; "
        f"commit: {str(prov.get('commit'))[:10]} (dirty: {prov.get('dirty')})"
    )
    return 0


# at most this many seeds are listed one by one under a premise; beyond, their range
LIST_SEEDS = 12


def premise_lines(summary: dict[str, Any]) -> list[str]:
    """What `show` says of the premises: as the verdict used them, per seed.

    Per premise, how many seeds met it and each seed's value (their range beyond LIST_SEEDS
    seeds, with the seeds that missed it); then which seeds vote in the checks (those that met
    every premise). A summary from before per-seed premises (no ``met`` field) was judged on an
    aggregate, and is shown so.
    """
    from repro.report import fmt

    premises = summary.get("premises") or []
    lines = []
    for p in premises:
        if "met" not in p:  # an older summary: the premise was one aggregate over seeds
            mark = {True: "holds", False: "fails", None: "n/a"}[p["passed"]]
            rule = p.get("rule") or f"{p['aggregate']} {p['op']} {p['value']}"
            lines.append(
                f"premise {p['id']}: {p['metric']}: measured {fmt(p['measured'])} ({rule}) -> "
                f"{mark} (judged on an aggregate over seeds: rerun for per-seed premises)"
            )
            continue
        seeds = p.get("seeds") or summary["seeds"]
        lines.append(
            f"premise {p['id']}: {p['metric']} ({p['rule']}): {p['n_met']} of {p['n_seeds']} "
            "seeds met it"
        )
        if len(seeds) <= LIST_SEEDS:
            per_seed = ", ".join(
                f"{s}: {fmt(v)} {'✓' if m else '✗'}"
                for s, v, m in zip(seeds, p["per_seed"], p["met"], strict=True)
            )
            lines.append(f"  per seed (seed: value, met): {per_seed}")
        else:
            finite = [v for v in p["per_seed"] if math.isfinite(v)]
            span = f"{fmt(min(finite))} to {fmt(max(finite))}" if finite else "none finite"
            missed = [s for s, m in zip(seeds, p["met"], strict=True) if not m]
            lines.append(
                f"  per-seed values {span} (range); missed by seeds "
                f"{', '.join(map(str, missed)) or 'none'}"
            )
    voting = voting_seeds(premises, summary["seeds"])
    if premises and voting is not None:
        lines.append(
            f"seeds that vote in the checks (met every premise): "
            f"{', '.join(map(str, voting)) or 'none'} ({len(voting)} of {len(summary['seeds'])})"
        )
    return lines


def cmd_validate(args: argparse.Namespace) -> int:
    from repro.claims import registration_problems

    specs = load_all()
    print(f"{len(specs)} claim specs valid: {', '.join(specs)}")
    problems = registration_problems(specs)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 2 if problems else 0


def cmd_lock(args: argparse.Namespace) -> int:
    from repro.claims import LOCK_PATH, write_lock

    lock = write_lock(load_all())
    print(f"{LOCK_PATH.relative_to(ROOT)}: {len(lock)} claims registered")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Snakemake's HTML report of one scale, from the results present (trains nothing)."""
    out = args.out or args.results / args.scale / "report.html"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
    cmd += ["-d", str(args.workdir), "--config", f"scale={args.scale}", "--report", str(out)]
    print("+", " ".join(cmd), flush=True)
    return call_snakemake(cmd)


def cmd_data(args: argparse.Namespace) -> int:
    from repro import data

    fetch = getattr(data, "fetch_fashion_mnist", None)
    if fetch is None:
        print("error: this version has no Fashion-MNIST fetcher", file=sys.stderr)
        return 2
    try:
        fetch(data.data_dir())
    except (OSError, subprocess.CalledProcessError) as e:  # DataMissingError is an OSError
        print(f"error: repro data: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_readme(args: argparse.Namespace) -> int:
    from repro.report import update_readme

    changed = update_readme(ROOT / "README.md", args.results)
    print("README.md updated" if changed else "README.md already up to date")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """Code hashes for records made before run.json had them, from their recorded commit."""
    from repro.records import backfill_code_hash, outdated_reason, read_record

    specs = load_all()
    folder = args.results / args.scale
    runs = (
        sorted(p for p in folder.iterdir() if (p / "run.json").exists()) if folder.is_dir() else []
    )
    for run_dir in runs:
        fields = backfill_code_hash(run_dir)
        record = read_record(run_dir / "run.json")
        spec = specs.get((record or {}).get("claim"))
        if fields is None or spec is None:
            continue
        stale = outdated_reason(spec, record, record.get("variant"))
        print(f"{run_dir.name}: code {fields['code_hash']}: {stale or 'current'}")
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
    p.add_argument("--cores", default="all", type=cores_arg)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("show", help="one claim: spec, measured vs reported, verdict")
    p.add_argument("id", metavar="ID")
    p.add_argument("--scale", **scale_kw)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("validate", help="validate every claim spec")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("lock", help="register the specs' checks in claims/checks.lock")
    p.set_defaults(func=cmd_lock)
    p = sub.add_parser("report", help="Snakemake's HTML report from the results present")
    p.add_argument("--scale", **scale_kw)
    p.add_argument("--out", type=Path, default=None, help="default results/<scale>/report.html")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("data", help="fetch Fashion-MNIST into data/ (as `make data`)")
    p.set_defaults(func=cmd_data)
    p = sub.add_parser("backfill", help="add code hashes to run records that predate them")
    p.add_argument("--scale", **scale_kw)
    p.set_defaults(func=cmd_backfill)
    p = sub.add_parser("readme", help="refresh README's claims table (full scale)")
    p.set_defaults(func=cmd_readme)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if getattr(args, "scale", "x") is None:
        args.scale = cfg.get("scale", "quick")
    if not args.workdir.is_dir():
        print(f"error: --workdir {args.workdir}: no such folder", file=sys.stderr)
        return 2
    args.workdir = args.workdir.resolve()
    args.results = args.workdir / config().get("results_dir", "results")
    if args.results.exists() and not args.results.is_dir():
        print(f"error: results_dir {args.results} exists and is not a folder", file=sys.stderr)
        return 2
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except (SpecError, UnknownClaimError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `repro list | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
