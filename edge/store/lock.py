"""One agent owns a data directory (DESIGN.md): a lock file that the recording process holds, and that
maintenance commands changing the store (`db check --repair`, `db upgrade`, `import`) must take too.

The lock is an OS file lock (`flock`) on `<data_dir>/.beltcam.lock`: the kernel drops it when its
process ends, however it ends (Ctrl-C, SIGKILL, power cut), so a crash never leaves a stale lock.
The file holds who took it, for the refusal message.
"""

from __future__ import annotations

import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

LOCK_FILE = ".beltcam.lock"
NIGHTLY_LOCK_FILE = ".beltcam-nightly.lock"  # one nightly run at a time, beside a running agent


class DataDirLocked(RuntimeError):
    """Another process owns the data directory; the message names it and says what to do."""


class DataDirUnwritable(RuntimeError):
    """The data directory cannot be written (read-only mount, permissions, missing disk): said
    before anything is recorded, in one line naming the folder and the system's reason."""


class DataDirLock:
    def __init__(self, data_dir: Path, holder: str, file_name: str = LOCK_FILE) -> None:
        self.path = data_dir / file_name
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise DataDirUnwritable(
                f"{self.path.parent}: cannot write the data directory ({error.strerror}): "
                "check storage.data_dir and its disk"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise DataDirLocked(
                f"{self.path.parent}: in use by {owner}: stop it first ({self.holder} changes the store)"
            ) from None
        os.ftruncate(fd, 0)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.pwrite(fd, f"{self.holder} (pid {os.getpid()}, since {stamp})\n".encode(), 0)
        self._fd = fd

    def owner(self) -> str | None:
        """Who holds the lock now ("beltcam record (pid N, since T)"), or None when nobody does;
        for read-only commands that want to know whether what they see is being written."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None  # no lock file: nobody ever held it
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
        else:
            return None
        finally:
            os.close(fd)  # also drops the shared lock, if we got it

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock; the file stays for the next holder
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()
