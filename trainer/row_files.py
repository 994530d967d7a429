""".npy arrays written and read one row (one frame) at a time.

A plant's night of footage at training size is several gigabytes: the prepared frames, foreground
masks and flows live in files and each row is read with `os.pread` when it is needed. The operating
system's page cache keeps what is hot; this process holds a row, so its memory does not grow with the
footage (a memory map would: every page it touches counts against the process).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class RowFile:
    """Read-only rows of an .npy file: `rows[i]`, `rows[[i, j]]`, `rows[a:b]`, `rows[i, ...]`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self.path.open("rb") as stream:
            major, _ = np.lib.format.read_magic(stream)
            read_header = (
                np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(stream)
            self.offset = stream.tell()
        if fortran:
            raise ValueError(f"{path}: rows of a Fortran-ordered array are not contiguous")
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def _row(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.path}: row {index} of {len(self)}")
        index %= len(self)
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(descriptor, self.row_bytes, self.offset + index * self.row_bytes)
        finally:
            os.close(descriptor)
        return np.frombuffer(data, self.dtype).reshape(self.shape[1:])

    def __getitem__(self, key) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            return self._row(int(key))[rest] if rest else self._row(int(key))
        indices = range(len(self))[key] if isinstance(key, slice) else [int(i) for i in key]
        rows = (
            np.stack([self._row(i) for i in indices])
            if len(indices)
            else np.empty((0, *self.shape[1:]), self.dtype)
        )
        return rows[(slice(None), *rest)] if rest else rows

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


class RowWriter:
    """Writes an .npy file of `count` rows, one row at a time, without holding them."""

    def __init__(self, path: Path, count: int, row_shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.path = Path(path)
        self.count, self.row_shape, self.dtype = count, tuple(row_shape), np.dtype(dtype)
        self.written = 0
        self.stream = self.path.open("wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (count, *self.row_shape)}  # fmt: skip
        np.lib.format.write_array_header_1_0(self.stream, header)

    def append(self, row: np.ndarray) -> None:
        if row.shape != self.row_shape:
            raise ValueError(f"{self.path}: row of shape {row.shape}, expected {self.row_shape}")
        self.stream.write(np.ascontiguousarray(row, self.dtype).tobytes())
        self.written += 1

    def close(self) -> None:
        self.stream.close()
        if self.written != self.count:
            raise ValueError(f"{self.path}: {self.written} rows written of {self.count}")
