"""Whether the recorder may write the next frame: the disk quota and free-space floor, and the pause
that follows a full disk or a failed write.

A full disk must never crash the agent (DESIGN.md): when nothing more can be evicted, or a write
fails (ENOSPC, a read-only remount, a database that cannot commit), recording pauses with an alarm
that `beltcam cameras` and the panel show, frames are dropped and counted, and every `RETRY_S` the
guard tries again; the first write that fits ends the pause by itself.
"""

from __future__ import annotations

import errno
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import OperationalError

from edge.capture.camera_health import PAUSED
from edge.config import StorageConfig
from edge.store.frame_store import FrameStore, utc_now
from edge.store.retention import DiskQuota, QuotaExhausted

log = logging.getLogger(__name__)
RETRY_S = 1.0
ENOSPC_FLOOR_BYTES = 16_000_000  # what a disk that filled below the configured floor keeps free from then on


@dataclass(frozen=True)
class StorageEvent:
    utc: datetime
    state: str  # PAUSED, or "resumed"
    detail: str | None


class StorageGuard:
    def __init__(self, store: FrameStore, storage: StorageConfig) -> None:
        quota = int(storage.disk_quota_mb * 1e6) if storage.disk_quota_mb else None
        self.quota = DiskQuota(store, quota, storage.retention, int(storage.min_free_mb * 1e6))
        self.alarm: str | None = None  # why recording is paused; None while it is not
        self.paused_since: datetime | None = None
        self.events: list[StorageEvent] = []  # pause and resume, until the writer stores them
        self._retry_at = 0.0

    @property
    def paused(self) -> bool:
        return self.alarm is not None

    def room_for(self, nbytes: int) -> bool:
        """True when a frame of `nbytes` may be written now (evicting first if needed)."""
        if self.paused and time.monotonic() < self._retry_at:
            return False
        try:
            self.quota.make_room(nbytes)
        except QuotaExhausted as exc:
            self.pause(str(exc))
            return False
        except OperationalError as error:  # evicting writes to the index too: it may be full itself
            self.failed("the index while making room", error)
            return False
        if self.paused:
            self._resume()
        return True

    def written(self, nbytes: int) -> None:
        self.quota.added(nbytes)

    def index_changed(self) -> None:
        """The index committed more than one batch's rows: the next check measures it again."""
        self.quota.remeasure()

    def failed(self, what: str, error: Exception) -> None:
        """A write failed (an OSError, or the database's OperationalError): pause, and on a full disk
        keep more free from now on (the configured floor proved too small, or something else filled
        the disk)."""
        if _disk_full(error):
            if self.quota.min_free_bytes < ENOSPC_FLOOR_BYTES:
                log.warning(
                    "the disk filled up below storage.min_free_mb: keeping %d MB free from now on",
                    ENOSPC_FLOOR_BYTES // 1_000_000,
                )
                self.quota.min_free_bytes = ENOSPC_FLOOR_BYTES
            reason = f"disk full writing {what}"
        else:
            reason = f"cannot write {what}: {_reason(error)}"
        self.pause(reason)

    def pause(self, reason: str) -> None:
        self._retry_at = time.monotonic() + RETRY_S
        if self.alarm == reason:
            return
        if self.alarm is None:
            log.error("recording paused: %s", reason)
            self.paused_since = utc_now()
        self.alarm = reason
        self.events.append(StorageEvent(utc_now(), PAUSED, reason))

    def _resume(self) -> None:
        log.warning("recording resumed (was paused: %s)", self.alarm)
        self.alarm = None
        self.paused_since = None
        self.events.append(StorageEvent(utc_now(), "resumed", None))


def _disk_full(error: Exception) -> bool:
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return "full" in str(getattr(error, "orig", "")).lower()  # SQLite: "database or disk is full"


def _reason(error: Exception) -> str:
    """The driver's or the system's own words, without SQLAlchemy's statement and help link."""
    return str(getattr(error, "orig", None) or getattr(error, "strerror", None) or error)
