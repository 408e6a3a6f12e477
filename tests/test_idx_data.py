"""Fashion-MNIST data code: the IDX reader, checksums, the digits' held-out split."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from repro import data, idx


def write_idx(path, array: np.ndarray, kind: int = 0x08, compress: bool = False) -> bytes:
    raw = bytes([0, 0, kind, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(">u1" if kind == 0x08 else ">i4").tobytes()
    (gzip.open if compress else open)(path, "wb").write(raw)
    return raw


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.gz" if compress else "x")
    write_idx(path, arr, compress=compress)
    out = idx.read_idx(path)
    assert out.shape == (2, 3, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)


def test_read_idx_int32_big_endian(tmp_path):
    arr = np.array([1, -2, 70000], dtype=np.int32)
    write_idx(tmp_path / "y", arr, kind=0x0C)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "y"), arr)


def test_read_idx_truncated_names_file(tmp_path):
    path = tmp_path / "trunc-idx3-ubyte"
    raw = write_idx(path, np.zeros((5, 28, 28), dtype=np.uint8))
    path.write_bytes(raw[:-7])
    with pytest.raises(ValueError, match="trunc-idx3-ubyte.*truncated"):
        idx.read_idx(path)


def test_read_idx_wrong_magic_names_file(tmp_path):
    path = tmp_path / "bad-magic"
    path.write_bytes(b"\x1f\x8b\x08\x03" + bytes(16))
    with pytest.raises(ValueError, match="bad-magic.*magic"):
        idx.read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "t.gz"
    write_idx(path, np.zeros((50, 28, 28), dtype=np.uint8), compress=True)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="t.gz"):
        idx.read_idx(path)


def test_data_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.data_dir() == tmp_path
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert data.data_dir().name == "data"


def test_require_dataset_missing_and_mismatch(tmp_path):
    data.require_dataset("digits", tmp_path)  # no-op: nothing to check
    with pytest.raises(data.DataMissingError, match="make data"):
        data.require_dataset("fashion-mnist", tmp_path)
    for name in data.FASHION_MNIST_SHA256:
        (tmp_path / name).write_bytes(b"not the real file")
    with pytest.raises(data.DataMissingError, match="SHA-256.*make data"):
        data.require_dataset("fashion-mnist", tmp_path)
    assert issubclass(data.DataMissingError, FileNotFoundError)
    with pytest.raises(ValueError, match="unknown data set"):
        data.require_dataset("lsun", tmp_path)


def test_load_fashion_mnist_checks_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(data.DataMissingError, match="make data"):
        data.load_fashion_mnist("test")
    with pytest.raises(data.DataMissingError, match="make data"):
        data.load_images("fashion-mnist", "train")


def test_sha256_file(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert idx.sha256_file(tmp_path / "a") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_digits_held_out_split_is_fixed_and_disjoint():
    train, test = data.digits_split_indices()
    assert len(train) == 1500 and len(test) == data.DIGITS_TEST_SIZE == 297
    assert not set(train) & set(test)
    np.testing.assert_array_equal(test, data.digits_split_indices()[1])
    x_all = data.load_digits_images()
    torch.testing.assert_close(data.load_images("digits", "test"), x_all[torch.from_numpy(test)])
    assert data.load_labels("digits", "test").shape == (297,)
