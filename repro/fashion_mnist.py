"""Fashion-MNIST (Xiao et al. 2017) on disk: where data sets live, the checksummed IDX files,
fetching them from Debian's package, and the ``python -m repro.data`` command line.

``repro.data`` re-exports every public name here (``from repro.data import require_dataset``
keeps working); ``load_images`` / ``load_labels`` there pick the data set by name.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from repro.idx import read_idx, sha256_cached

# Fashion-MNIST (Xiao et al. 2017): 60,000 train / 10,000 test 28x28 grey images, 10 classes.
# The four IDX files come from Debian's package ``dataset-fashion-mnist`` (gzip-compressed, as
# the package ships them) and are checked against these SHA-256 sums before every use.

DATA_DIR_ENV = "GAN_CLAIMS_DATA_DIR"
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_SUBDIR = "fashion-mnist"
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
FASHION_MNIST_SPLITS = {"train": "train", "test": "t10k"}
DATASETS = ("digits", "fashion-mnist")
AUTO = "auto"  # a spec's `dataset: auto`: Fashion-MNIST when its files are intact, else digits


class DataMissingError(FileNotFoundError):
    """A data set the run needs is absent or fails its checksum; the message says what to do."""


def data_dir() -> Path:
    """Where data sets live: $GAN_CLAIMS_DATA_DIR, else ``data/`` at the repository root."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def _fashion_dir(root: str | Path | None = None) -> Path:
    return Path(root) if root is not None else data_dir() / FASHION_MNIST_SUBDIR


def require_dataset(name: str, root: str | Path | None = None) -> None:
    """Raise DataMissingError unless data set ``name`` is present and intact.

    "digits" ships with scikit-learn (nothing to check); "fashion-mnist" needs the four IDX files
    under ``root`` (default ``data_dir() / "fashion-mnist"``) with the expected SHA-256 sums.
    """
    if name in ("digits", AUTO):  # auto falls back to the digits: it never needs a download
        return
    if name != "fashion-mnist":
        raise ValueError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}, {AUTO}")
    where = _fashion_dir(root)
    fix = (
        f"run `make data` (or `python -m repro.data fetch`), or place the four files of Debian's "
        f"{FASHION_MNIST_PACKAGE} under {where} (set {DATA_DIR_ENV} for another data directory)"
    )
    for fname, digest in FASHION_MNIST_SHA256.items():
        path = where / fname
        if not path.is_file():
            raise DataMissingError(f"Fashion-MNIST file {path} is missing: {fix}")
        st = path.stat()
        got = sha256_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)
        if got != digest:
            raise DataMissingError(
                f"Fashion-MNIST file {path} has SHA-256 {got}, expected {digest}: {fix}"
            )


def resolve_dataset(name: str) -> str:
    """The data set a run uses: ``name`` itself, or for ``auto`` "fashion-mnist" when its files
    are present and intact, else "digits"."""
    if name not in (*DATASETS, AUTO):
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}, {AUTO}")
    if name != AUTO:
        return name
    try:
        require_dataset("fashion-mnist")
    except DataMissingError:
        return "digits"
    return "fashion-mnist"


@functools.lru_cache(maxsize=4)
def _fashion_arrays(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = FASHION_MNIST_SPLITS[split]
    images = read_idx(Path(root) / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(Path(root) / f"{prefix}-labels-idx1-ubyte.gz")
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(f"{root}: {split} images {images.shape} and labels {labels.shape} differ")
    return images, labels


def load_fashion_mnist(
    split: str = "train", root: str | Path | None = None, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST ``split`` ("train": 60,000, "test": 10,000) after ``require_dataset``.

    Returns images (N, 1, 28, 28) with pixel v in 0..255 mapped to v / 127.5 - 1 (range [-1, 1],
    like a tanh generator) and labels (N,) int64 in 0..9.
    """
    if split not in FASHION_MNIST_SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(FASHION_MNIST_SPLITS)}")
    where = _fashion_dir(root)
    require_dataset("fashion-mnist", where)
    images, labels = _fashion_arrays(str(where), split)
    x = (
        torch.from_numpy(images.astype(np.float32)).to(dtype or torch.get_default_dtype()) / 127.5
        - 1.0
    )
    return x.unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def fetch_fashion_mnist(dest: str | Path | None = None) -> Path:
    """Put Fashion-MNIST's four IDX files under ``dest`` from Debian's package; verify them.

    ``apt-get download`` (no root needed) into a temporary directory, ``dpkg -x`` the .deb there,
    copy the four files and check their SHA-256. Returns the directory. Files already present and
    intact are kept. Raises DataMissingError when the tools or the package are unavailable.
    """
    dest = _fashion_dir(dest)
    try:
        require_dataset("fashion-mnist", dest)
        return dest
    except DataMissingError:
        pass
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for cmd in (["apt-get", "download", FASHION_MNIST_PACKAGE],):
            try:
                subprocess.run(cmd, cwd=tmp, check=True, capture_output=True, text=True)
            except (OSError, subprocess.CalledProcessError) as e:
                err = getattr(e, "stderr", "") or e
                raise DataMissingError(
                    f"`{' '.join(cmd)}` failed ({err}); on a machine without apt, place the files "
                    f"{', '.join(FASHION_MNIST_SHA256)} under {dest} by hand"
                ) from e
        debs = sorted(Path(tmp).glob(f"{FASHION_MNIST_PACKAGE}_*.deb"))
        if not debs:
            raise DataMissingError(
                f"apt-get download left no {FASHION_MNIST_PACKAGE} .deb in {tmp}"
            )
        subprocess.run(["dpkg", "-x", str(debs[-1]), str(Path(tmp) / "x")], check=True)
        found = {p.name: p for p in (Path(tmp) / "x").rglob("*-ubyte.gz")}
        for fname in FASHION_MNIST_SHA256:
            if fname not in found:
                raise DataMissingError(f"{debs[-1].name} has no {fname}")
            part = dest / f"{fname}.tmp{os.getpid()}"
            shutil.copyfile(found[fname], part)
            os.replace(part, dest / fname)
    require_dataset("fashion-mnist", dest)
    return dest


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m repro.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="fetch Fashion-MNIST into the data directory")
    fetch.add_argument("--dest", help=f"directory for the IDX files (default: {_fashion_dir()})")
    sub.add_parser("check", help="verify the Fashion-MNIST files")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(f"Fashion-MNIST ready in {fetch_fashion_mnist(args.dest)}")
        else:
            require_dataset("fashion-mnist")
            print(f"Fashion-MNIST OK in {_fashion_dir()}")
    except DataMissingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
