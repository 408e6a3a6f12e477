"""Claim specs: load, validate, and turn per-seed results into a verdict.

Three modules: :mod:`repro.claims.spec` (the Spec, loading and validation),
:mod:`repro.claims.verdict` (premises, checks and the verdict) and :mod:`repro.claims.lock`
(pre-registration). Their public names are importable from ``repro.claims``.

A spec (``claims/<id>.yaml``) is checked in two passes before anything trains:

1. structure, against ``claims/schema/claim.schema.yaml`` (JSON Schema);
2. meaning: the experiment exists, every check names a metric the experiment reports, every
   scale gives exactly the experiment's parameters, figures exist, the paper is in refs.bib.

Any failure raises :class:`SpecError`, whose message names the file and the field.

The verdict is computed from the spec's pre-registered checks alone:

- ``reproduced``: every check holds;
- ``partial``: some hold;
- ``not reproduced``: none hold;
- ``inconclusive``: smoke scale, a NaN measurement, or fewer valid seeds than ``min_seeds``.
  A seed is valid when it meets every premise (``premises:``, e.g. "D became near-optimal":
  without it the checks say nothing about the theory). Premises are judged **per seed**
  (``op value`` on that seed's value); a seed that misses any premise votes in no check, and
  with fewer than ``min_seeds`` valid seeds the verdict is ``inconclusive (premise not met:
  <premise id>: k of n seeds met it; per-seed values ...)``;
- ``error``: the experiment raised (the traceback is in the run record and the log), an
  invariant included (:mod:`repro.invariants`).

A check is either ``aggregate op value`` (e.g. the median over the valid seeds is >= 3;
``op: within`` with ``tolerance``: |aggregate - value| <= tolerance) or a one-sided test across
the valid seeds (``test: {name: t|wilcoxon|sign, alternative, alpha}``, H0: the metric's
location equals ``value``; it holds when H0 is rejected at ``alpha``). A spec has at most one
check per metric (two checks on one metric vote twice on one measurement). Every check and
premise has a ``basis:`` (the paper's words it tests, quoted, or the derivation of its
threshold); every empirical spec lists its ``departures:`` from the paper's setup.

Pre-registration: ``claims/checks.lock`` holds a hash of every claim's checks and premises
(:func:`checks_hash`; ``basis`` is documentation and is left out of the hash, so writing or
improving one is not a re-registration); a spec whose checks differ from the lock needs a
``revisions:`` entry naming the new hash (tests/test_claims.py enforces it; ``repro lock``
records it).
"""

from __future__ import annotations

from repro.claims.lock import (
    committed_lock,
    lock_problems,
    read_lock,
    registration_problems,
    write_lock,
)
from repro.claims.spec import (
    CLAIMS_DIR,
    KINDS,
    LOCK_PATH,
    REFS_PATH,
    ROOT,
    SCALES,
    SCHEMA_PATH,
    UNHASHED_FIELDS,
    VARIANT_SEP,
    VERDICTS,
    Spec,
    SpecError,
    UnknownClaimError,
    bib_keys,
    checks_hash,
    load_all,
    load_spec,
    resolve_ids,
    spec_paths,
    validate_meaning,
    validate_structure,
)
from repro.claims.verdict import (
    OPS,
    aggregate,
    check_rule,
    evaluate_check,
    evaluate_checks,
    evaluate_premise,
    evaluate_premises,
    valid_seeds_mask,
    verdict,
    voting_seeds,
)

__all__ = [
    "CLAIMS_DIR", "KINDS", "LOCK_PATH", "OPS", "REFS_PATH", "ROOT", "SCALES", "SCHEMA_PATH",
    "UNHASHED_FIELDS", "VARIANT_SEP", "VERDICTS", "Spec", "SpecError", "UnknownClaimError",
    "aggregate", "bib_keys", "check_rule", "checks_hash", "committed_lock", "evaluate_check",
    "evaluate_checks", "evaluate_premise", "evaluate_premises", "load_all", "load_spec",
    "lock_problems", "read_lock", "registration_problems", "resolve_ids", "spec_paths",
    "valid_seeds_mask", "validate_meaning", "validate_structure", "verdict", "voting_seeds",
    "write_lock",
]  # fmt: skip
