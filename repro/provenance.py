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


# ---------------------------------------------------------------- code hash

# Top-level assignments to these names are left out of the code hash: a registry only names the
# experiments, so adding one to it changes no result. REGISTRY: the hand-written registry of
# commits before issue 15 (read when hashing an old record).
UNHASHED_NAMES = ("REGISTRY",)
PACKAGE = "repro"


def _module_path(module: str, read) -> str | None:
    """The repository-relative source file of a ``repro`` module (via ``read``), or None."""
    base = module.replace(".", "/")
    for rel in (f"{base}.py", f"{base}/__init__.py"):
        if read(rel) is not None:
            return rel
    return None


def _imported_modules(source: str, rel: str) -> set[str]:
    """Every ``repro`` module that ``source`` (file ``rel``) imports, anywhere in it."""
    import ast

    here = rel[: -len(".py")].replace("/", ".")
    if rel.endswith("__init__.py"):
        package = here[: -len(".__init__")]
    else:
        package = here.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=rel)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)  # submodules imported by name
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def _hashed_text(source: str, rel: str) -> str:
    """``source`` less its top-level assignments to UNHASHED_NAMES."""
    import ast

    lines = source.splitlines()
    for node in ast.parse(source, filename=rel).body:
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        if any(getattr(t, "id", None) in UNHASHED_NAMES for t in targets):
            for i in range(node.lineno - 1, node.end_lineno):
                lines[i] = ""
    return "\n".join(lines)


def code_files(module: str, read=None, origin: str | None = None) -> dict[str, str]:
    """The source of ``module`` and of every ``repro`` module it imports, transitively.

    Returns {repository-relative path: text}. ``read(rel) -> str | None`` reads a file (default:
    the working tree; :func:`git_reader` reads a commit). Imports are found with ``ast`` anywhere
    in a file (function-level imports too); only modules of the ``repro`` package are followed.
    ``origin``: the file of a module outside the repository (a test's toy experiment).
    """
    read = read or tree_reader()
    start = _module_path(module, read)
    files: dict[str, str] = {}
    todo: list[tuple[str, str]] = []
    if start is not None:
        todo.append((start, read(start)))
    elif origin is not None:
        todo.append((f"<{module}>", Path(origin).read_text(encoding="utf-8")))
    else:
        raise FileNotFoundError(f"no source for module {module!r}")
    while todo:
        rel, text = todo.pop()
        if rel in files:
            continue
        files[rel] = text
        for mod in sorted(_imported_modules(text, "x.py" if rel.startswith("<") else rel)):
            path = _module_path(mod, read)
            if path is not None and path not in files:
                todo.append((path, read(path)))
    return dict(sorted(files.items()))


def hash_files(files: dict[str, str]) -> str:
    """12 hex digits of SHA-256 over the files' paths and (hashed) text."""
    h = hashlib.sha256()
    for rel, text in sorted(files.items()):
        h.update(f"{rel}\0{_hashed_text(text, rel)}\0".encode())
    return h.hexdigest()[:12]


def tree_reader(root: str | Path = REPO):
    def read(rel: str) -> str | None:
        path = Path(root) / rel
        return path.read_text(encoding="utf-8") if path.is_file() else None

    return read


def git_reader(commit: str, root: str | Path = REPO):
    """Read files as they were at ``commit``."""

    def read(rel: str) -> str | None:
        out = subprocess.run(
            ["git", "show", f"{commit}:{rel}"], cwd=root, capture_output=True, text=True
        )
        return out.stdout if out.returncode == 0 else None

    return read


def _registry_at(read) -> dict[str, str]:
    """The hand-written ``REGISTRY`` (name -> "module:attr") of the commit ``read`` reads, or {}.

    Before issue 15 experiments were registered by hand and lived in multi-claim modules; a
    record made then names its experiment as that commit's registry did.
    """
    import ast

    text = read("repro/experiments/__init__.py")
    if text is None:
        return {}
    for node in ast.parse(text).body:
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        if any(getattr(t, "id", None) == "REGISTRY" for t in targets):
            value = ast.literal_eval(node.value)
            return dict(value) if isinstance(value, dict) else {}
    return {}


def experiment_module(name: str, read=None) -> tuple[str, str | None]:
    """(module, its file) holding the experiment a spec calls ``name``; with ``read`` (a commit's
    files, :func:`git_reader`), as that commit's hand-written registry had it, if it had one."""
    import importlib.util

    from repro import experiments

    if read is not None and name in (old := _registry_at(read)):
        return old[name].split(":")[0], None

    table = experiments._table()
    if name not in table:
        raise KeyError(f"unknown experiment {name!r}; valid: {', '.join(sorted(table))}")
    module = table[name].split(":")[0]
    spec = importlib.util.find_spec(module)
    return module, (spec.origin if spec else None)


def code_state(experiment: str, read=None) -> dict[str, Any]:
    """``code_hash`` and ``code_files`` of an experiment: its module and the repro modules it
    imports (what a run record is keyed on besides the spec)."""
    module, origin = experiment_module(experiment, read)
    files = code_files(module, read, origin)
    return {"code_hash": hash_files(files), "code_files": list(files)}


_CODE_CACHE: dict[str, dict[str, Any]] = {}


def current_code(experiment: str) -> dict[str, Any]:
    """:func:`code_state` of the working tree, computed once per process."""
    if experiment not in _CODE_CACHE:
        _CODE_CACHE[experiment] = code_state(experiment)
    return _CODE_CACHE[experiment]
