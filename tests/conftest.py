"""Shared fixtures: the toy experiments (tests/fixtures) made visible to the registry."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOY_ENV = (
    "toy=toy_experiments:TOY,boom=toy_experiments:BOOM,slow=toy_experiments:SLOW,"
    "invariant=toy_experiments:INVARIANT"
)


@pytest.fixture
def toy_env(monkeypatch):
    """Register the toy experiments, in this process and in subprocesses (Snakemake jobs)."""
    monkeypatch.setenv("GAN_CLAIMS_EXTRA_EXPERIMENTS", TOY_ENV)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FIXTURES), str(ROOT)]))
    monkeypatch.syspath_prepend(str(FIXTURES))
    return os.environ.copy()


@pytest.fixture
def toy_claims(tmp_path, toy_env):
    """A claims folder holding the toy specs."""
    claims = tmp_path / "claims"
    claims.mkdir()
    for spec in FIXTURES.glob("toy-*.yaml"):
        shutil.copy(spec, claims)
    register(claims)
    return claims


def register(claims_dir: Path) -> None:
    """Pre-register the specs in ``claims_dir`` (its checks.lock), as `repro lock` does."""
    from repro.claims import load_all, write_lock

    write_lock(load_all(claims_dir), claims_dir / "checks.lock")


def snakemake_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), *args]
