"""The disk as a technician needs to see it: bytes in the store against the quota, free space
against the floor, and the days left at the last day's rate (recording pauses when it is full, so
the forecast is what lets someone act before). Shown by the panel and checked by `beltcam doctor`."""

from __future__ import annotations

import shutil
from datetime import timedelta

from sqlalchemy import func, select

from edge.config import StorageConfig
from edge.store.frame_store import FrameStore, as_utc, utc_now
from edge.store.models import Frame
from edge.store.retention import other_bytes

MB = 1024 * 1024
DAY_S = 86_400.0
MIN_SPAN_S = 60.0  # a few seconds of footage say little about a day's


def disk_report(store: FrameStore, storage: StorageConfig) -> dict:
    """Bytes used, the limits, and the days until the quota and until the free-space floor at the
    rate of the last 24 hours: the bytes recorded
    in that window over the time it actually covers (a site recording for an hour fills its disk at
    that hour's pace, not at a 24th of it). None when nothing was recorded in the window."""
    used = store.usage_bytes() + other_bytes(store.data_dir)  # as the quota counts: runs, caches too
    free = shutil.disk_usage(store.data_dir).free
    to_floor = max(free - storage.min_free_mb * MB, 0)  # then recording pauses
    to_quota = None if storage.disk_quota_mb is None else max(storage.disk_quota_mb * MB - used, 0)
    now = utc_now()
    with store.session() as session:
        recent, first = session.execute(
            select(func.coalesce(func.sum(Frame.bytes), 0), func.min(Frame.capture_utc)).where(
                Frame.capture_utc >= now - timedelta(days=1)
            )
        ).one()
    per_day = None
    if recent and first is not None:
        first = as_utc(first)
        covered_s = max((now - first).total_seconds(), MIN_SPAN_S)
        per_day = int(recent) * DAY_S / covered_s
    return {
        "used_mb": round(used / MB, 1),
        "quota_mb": storage.disk_quota_mb,
        "free_mb": round(free / MB, 1),
        "min_free_mb": storage.min_free_mb,
        "rate_mb_per_day": round(per_day / MB, 1) if per_day else None,
        # the quota is a rolling buffer: reaching it starts eviction of the oldest unprotected frames
        "days_to_quota": round(to_quota / per_day, 2) if per_day and to_quota is not None else None,
        # the free-space floor pauses recording; a quota that fits on the disk keeps it away
        "days_to_full": (
            round(to_floor / per_day, 2) if per_day and (to_quota is None or to_quota > to_floor) else None
        ),
    }
