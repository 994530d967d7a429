"""Disk quota: evict the oldest frames nobody needs so recording can run for months unattended.

Order: frames of `unlabeled` recordings before labelled ones, oldest first. Never evicted: frames with
ground-truth masks, and recordings the live model was trained on. Every eviction is logged and
counted on its recording (`evicted_frames`, status `evicted` once nothing is left), never silent.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import case, delete, exists, select

from edge.config import RetentionConfig
from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import Frame, Mask, Model, Recording, TrainingRunRecording

log = logging.getLogger(__name__)
EVICTION_BATCH = 200


class QuotaExhausted(RuntimeError):
    """Everything left on disk is protected; new frames cannot be stored without exceeding the quota."""


class DiskQuota:
    """Tracks bytes used by the store and evicts before a write would cross the quota."""

    def __init__(self, store: FrameStore, quota_bytes: int, retention: RetentionConfig) -> None:
        self.store = store
        self.quota_bytes = quota_bytes
        self.retention = retention
        self.used_bytes = store.usage_bytes()
        self.evicted_frames = 0

    def make_room(self, incoming_bytes: int) -> None:
        """Evict until `incoming_bytes` fit; raises QuotaExhausted if only protected data is left."""
        if self.used_bytes + incoming_bytes <= self.quota_bytes:
            return
        target = min(self.quota_bytes * self.retention.low_watermark, self.quota_bytes - incoming_bytes)
        while self.used_bytes > target:
            if not self._evict_batch(self.used_bytes - target):
                break
        if self.used_bytes + incoming_bytes > self.quota_bytes:
            raise QuotaExhausted(
                f"disk quota of {self.quota_bytes / 1e6:.1f} MB is full of protected frames "
                "(masked, or used by the live model); raise storage.disk_quota_mb"
            )

    def added(self, nbytes: int) -> None:
        self.used_bytes += nbytes

    def _evictable(self):
        query = (
            select(
                Frame.id, Frame.path, Frame.bytes, Frame.depth_path, Frame.depth_bytes, Frame.recording_id,
                Frame.missing,
            )
            .join(Recording, Frame.recording_id == Recording.id)
            .order_by(case((Recording.label == "unlabeled", 0), else_=1), Recording.id, Frame.seq)
            .limit(EVICTION_BATCH)
        )
        if self.retention.keep_masked:
            query = query.where(~exists().where(Mask.frame_id == Frame.id))
        if self.retention.keep_live_model_data:
            live_recordings = (
                select(TrainingRunRecording.recording_id)
                .join(Model, Model.run_id == TrainingRunRecording.run_id)
                .where(Model.status == "live")
            )
            query = query.where(Recording.id.not_in(live_recordings))
        return query

    def _evict_batch(self, need_bytes: float) -> bool:
        """Evict the first evictable frames until `need_bytes` are freed (or the batch ends)."""
        with self.store.session() as session:
            rows = []
            freeing = 0
            for row in session.execute(self._evictable()):
                rows.append(row)
                freeing += _stored_bytes(row)
                if freeing >= need_bytes:
                    break
            if not rows:
                return False
            # files first: a crash between the two leaves rows for missing files, which db check
            # reports; the other order would leave files that --repair would adopt again
            for row in rows:
                for path in (row.path, row.depth_path):
                    if path is not None:
                        Path(self.store.absolute(path)).unlink(missing_ok=True)
            session.execute(delete(Frame).where(Frame.id.in_([row.id for row in rows])))
            per_recording: dict[int, int] = {}
            for row in rows:
                per_recording[row.recording_id] = per_recording.get(row.recording_id, 0) + 1
            for recording_id, count in per_recording.items():
                recording = session.get(Recording, recording_id)
                recording.evicted_frames += count
                left = session.scalar(select(exists().where(Frame.recording_id == recording_id)))
                if not left and recording.status != "recording":
                    recording.status = "evicted"
                    recording.evicted_utc = utc_now()
                log.warning(
                    "disk quota: evicted %d frames of recording %d (%s %s)",
                    count,
                    recording_id,
                    recording.camera,
                    recording.label,
                )
        freed = sum(_stored_bytes(row) for row in rows)
        self.used_bytes -= freed
        self.evicted_frames += len(rows)
        return True


def _stored_bytes(row) -> int:
    """What evicting a frame frees: its image (unless already missing) and its depth image."""
    return (0 if row.missing else row.bytes) + row.depth_bytes
