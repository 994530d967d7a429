"""The disk as a technician needs to see it: bytes in the store against the quota, free space
against the floor, and the days left at the last day's rate (recording pauses when it is full, so
the forecast is what lets someone act before). Shown by the panel and checked by `beltcam doctor`."""

from __future__ import annotations

import shutil
from datetime import timedelta

from sqlalchemy import func, select

from edge.config import StorageConfig
from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import Frame

MB = 1024 * 1024


def disk_report(store: FrameStore, storage: StorageConfig) -> dict:
    """Bytes used, the limits, and the days left at the last 24 hours' rate (None: nothing written)."""
    used = store.usage_bytes()
    free = shutil.disk_usage(store.data_dir).free
    room = free - storage.min_free_mb * MB
    if storage.disk_quota_mb is not None:
        room = min(room, storage.disk_quota_mb * MB - used)
    since = utc_now() - timedelta(days=1)
    with store.session() as session:
        last_day = int(session.scalar(
            select(func.coalesce(func.sum(Frame.bytes), 0)).where(Frame.capture_utc >= since)
        ))  # fmt: skip
    return {
        "used_mb": round(used / MB, 1),
        "quota_mb": storage.disk_quota_mb,
        "free_mb": round(free / MB, 1),
        "min_free_mb": storage.min_free_mb,
        "last_day_mb": round(last_day / MB, 1),
        "days_left": round(max(room, 0) / last_day, 1) if last_day else None,
    }
