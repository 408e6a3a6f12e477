"""Pre-registration: ``claims/checks.lock`` holds each claim's checks hash.

A spec whose checks or premises differ from the lock needs a ``revisions:`` entry naming the new
hash (:func:`lock_problems`); ``repro lock`` records it (:func:`write_lock`). The lock is also
read from git history (:func:`committed_lock`), so a deleted or hand-edited lock cannot register
a change that has no revision entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from repro.claims.spec import LOCK_PATH, Spec, SpecError


def read_lock(path: Path = LOCK_PATH) -> dict[str, str]:
    """claim id -> registered checks hash (empty when there is no lock file)."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SpecError(path, "<yaml>", f"not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict) or not isinstance(data.get("claims", {}), dict):
        raise SpecError(path, "claims", "must map claim ids to checks hashes; see `repro lock`")
    return {str(k): str(v) for k, v in data.get("claims", {}).items()}


def lock_problems(specs: Mapping[str, Spec], lock: Mapping[str, str]) -> list[str]:
    """What disagrees with the lock: unregistered claims, checks changed with no revision."""
    problems = []
    for cid, spec in sorted(specs.items()):
        current = spec.checks_hash
        revised = {r["checks_hash"] for r in spec.data.get("revisions", [])}
        if cid not in lock:
            problems.append(f"{spec.path}: not registered in {LOCK_PATH.name} (run `repro lock`)")
        elif current != lock[cid] and current not in revised:
            problems.append(
                f"{spec.path}: field 'checks': checks/premises hash {current} differs from the "
                f"registered {lock[cid]}; add a 'revisions:' entry with checks_hash: {current} "
                "(date, what changed, why, citing the paper), then `repro lock`"
            )
    return problems


def write_lock(specs: Mapping[str, Spec], path: Path = LOCK_PATH) -> dict[str, str]:
    """Record every claim's current checks hash, refusing a change that has no revision entry."""
    from repro import io

    lock = {**committed_lock(path), **read_lock(path)}
    problems = [p for p in lock_problems(specs, lock) if "not registered" not in p]
    if problems:
        raise SpecError(path, "claims", "; ".join(problems))
    new = {cid: spec.checks_hash for cid, spec in sorted(specs.items())}
    header = (
        "# Registered checks: claim id -> 12 hex digits of SHA-256 over its checks and premises.\n"
        "# Written by `repro lock`; a change needs a `revisions:` entry in the spec (see README).\n"
    )
    io.write_text(path, header + yaml.safe_dump({"claims": new}, sort_keys=True))
    return new


def committed_lock(path: Path = LOCK_PATH, max_commits: int = 200) -> dict[str, str]:
    """claim id -> the hash that the lock file last registered for it in git history (the
    newest commit holding the claim), so a deleted or truncated lock cannot register a changed
    hash without a revision entry. Empty outside git."""
    import subprocess

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", "-C", str(Path(path).resolve().parent), *args],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode:
            return {}
        rel = Path(path).resolve().relative_to(Path(top.stdout.strip()).resolve()).as_posix()
        commits = git("log", f"-{max_commits}", "--format=%H", "--", f":(top){rel}").stdout.split()
        found: dict[str, str] = {}
        for commit in commits:  # newest first
            shown = git("show", f"{commit}:{rel}")
            if shown.returncode:
                continue  # the commit deleted it
            try:
                data = yaml.safe_load(shown.stdout) or {}
            except yaml.YAMLError:
                continue
            for cid, h in (data.get("claims") or {}).items():
                found.setdefault(str(cid), str(h))
        return found
    except (OSError, ValueError, subprocess.SubprocessError):
        return {}


def registration_problems(specs: Mapping[str, Spec], path: Path = LOCK_PATH) -> list[str]:
    """:func:`lock_problems` against the lock file and against the lock as last committed, so a
    hand-edited or deleted lock cannot pre-register a change that has no revision entry."""
    problems = lock_problems(specs, read_lock(path))
    committed = committed_lock(path)
    known = {cid: spec for cid, spec in specs.items() if cid in committed}
    for problem in lock_problems(known, committed):
        problem = problem.replace("the registered", "the committed")
        if problem not in problems and not any(p.split(":")[0] == problem.split(":")[0]
                                               for p in problems):  # fmt: skip
            problems.append(f"{problem} (in git history of {path.name})")
    return problems
