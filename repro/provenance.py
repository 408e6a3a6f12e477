"""Where a number came from: commit, dirty flag, device, package versions, time, memory."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "numpy", "scipy", "pandas", "matplotlib", "snakemake", "pot", "scikit-learn")


def pick_device(requested: str = "auto"):
    """CUDA when available (or asked for), else CPU. ``requested`` in {auto, cpu, cuda}."""
    import torch

    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be one of auto, cpu, cuda; got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch.cuda.is_available() is False")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def cpu_info() -> dict[str, str]:
    """The CPU's model, vendor and the vector instruction set its kernels use.

    ``cpu_isa`` is what PyTorch's own kernels dispatch to (``AVX512``, ``AVX2``, ``DEFAULT``);
    ``cpu_flags`` lists the processor's widest vector extensions. MKL and oneDNN also choose
    their kernels by vendor and extension, so two machines that differ here may round
    differently in the last digits (README, "Across machines").
    """
    import torch

    model, vendor, flags = platform.processor() or platform.machine(), "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name" and model in (platform.processor(), platform.machine()):
                model = value
            elif key == "vendor_id" and vendor == "unknown":
                vendor = value
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wide = [f for f in ("avx512f", "avx512_bf16", "amx_tile", "avx2", "fma") if f in flags]
    return {
        "cpu_model": model,
        "cpu_vendor": vendor,
        "cpu_isa": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": " ".join(wide) or "unknown",
    }


def device_name(device) -> str:
    """A human-readable device name: the GPU model, or the CPU model, the vector instruction set
    PyTorch's kernels use, and the thread count."""
    import torch

    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = cpu_info()
    return f"cpu: {cpu['cpu_model']}, {cpu['cpu_isa']} ({torch.get_num_threads()} threads)"


REPO = Path(__file__).resolve().parent.parent


def git_state(root: str | Path = REPO) -> dict[str, Any]:
    """The commit of the code and whether its tree differs from it (``unknown`` outside git)."""

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=True
        )
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        # results/ and figures/ change with every run; only code, specs and config count as dirty
        dirty = bool(git("status", "--porcelain", "--", ".", ":!results", ":!figures"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def params_hash(params: dict[str, Any]) -> str:
    """A short stable hash of a parameter mapping (key order does not matter)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def peak_memory_mb(device=None) -> float:
    """Peak resident memory of this process (and of the GPU when on CUDA), in MiB."""
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    if device is not None and device.type == "cuda":
        import torch

        return rss_mb + torch.cuda.max_memory_allocated(device) / 2**20
    return rss_mb


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
