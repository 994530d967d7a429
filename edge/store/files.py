"""Files on disk written atomically, so a crash never leaves half a frame."""

from __future__ import annotations

import os
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def atomic_write(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename: readers see the whole file or none of it.

    The directory entry is made durable by `fsync_directory`, which the writer calls once per batch
    before it commits the batch to the index (file first, index second: the index never names a file
    that a power cut could lose).
    """
    if not path.parent.is_dir():
        make_durable_dirs(path.parent)
    temp = path.with_name(f".{path.name}{TEMP_SUFFIX}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)  # a full disk must not keep half a file around
        raise


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_durable_dirs(directory: Path) -> None:
    """`mkdir -p`, with each new directory's entry fsynced in its parent: after a power cut a folder
    the index already names cannot be missing (the files in it are fsynced by the writer)."""
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        fsync_directory(new.parent)
