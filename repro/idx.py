"""IDX files (the MNIST / Fashion-MNIST format) and SHA-256 checks of data files.

read_idx(path) -> ndarray        an IDX file, gzip-compressed if its name ends in .gz
sha256_file(path) -> str         hex SHA-256 of a file's bytes
sha256_cached(path, size, mtime_ns)  the same, once per (file, size, modification time)
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from pathlib import Path

import numpy as np

# IDX type byte -> numpy dtype (big-endian), see http://yann.lecun.com/exdb/mnist/
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed if its name ends in .gz) into a numpy array.

    Format: two zero bytes, a type byte (0x08 = uint8, ...), the number of dimensions n, then n
    big-endian uint32 sizes, then the data in C order. Raises ValueError naming the file for a
    bad magic number, an unknown type, or a file shorter (or longer) than its header says.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # e.g. a truncated gzip stream
        raise ValueError(f"{path}: cannot read IDX file ({e})") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    kind, ndim = raw[2], raw[3]
    if kind not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX data type 0x{kind:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[kind]
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path}: truncated or corrupt IDX file: {len(raw)} bytes, header {dims} needs "
            f"{expected}"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))
    )


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=16)
def sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    """``sha256_file`` once per (file, size, modification time): a run checks the data often."""
    return sha256_file(path)
