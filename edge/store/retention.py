"""Disk quota and free-space floor: evict the oldest frames nobody needs so recording can run for
months unattended, and never fill the disk the store lives on.

Two limits, either of which makes room: the site's quota on everything in the data directory
(`storage.disk_quota_mb`, optional: the frame, mask and depth files the index counts, plus the
database, its WAL, training runs and caches, measured every `OTHER_REFRESH_S`), and a floor of free
space on the data directory's filesystem
(`storage.min_free_mb`), measured with `shutil.disk_usage`, so that everything on that disk counts
(database, its WAL, training runs, other programs).

Order: frames of `unlabeled` recordings before labelled ones, oldest first. Never evicted: frames with
ground-truth masks, and recordings the live model was trained on. Every eviction is logged and
counted on its recording (`evicted_frames` up, `frame_count` down, status `evicted` once nothing is
left), never silent.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from sqlalchemy import case, delete, exists, select

from edge.config import RetentionConfig
from edge.store.files import fsync_directory
from edge.store.frame_store import DEPTH_DIR, FRAMES_DIR, MASKS_DIR, FrameStore, utc_now
from edge.store.models import Frame, Mask, Model, Recording, TrainingRunRecording

log = logging.getLogger(__name__)
EVICTION_BATCH = 200
OTHER_REFRESH_S = 10.0


class QuotaExhausted(RuntimeError):
    """Everything left to evict is protected: a new frame would cross the quota or the free-space
    floor. The message says which, and what to do."""


class DiskQuota:
    """Tracks bytes used by the store and free space on its disk; evicts before a write would cross
    the quota (when there is one) or go below the free-space floor."""

    def __init__(
        self,
        store: FrameStore,
        quota_bytes: int | None,
        retention: RetentionConfig,
        min_free_bytes: int = 0,
    ) -> None:
        self.store = store
        self.quota_bytes = quota_bytes
        self.retention = retention
        self.min_free_bytes = min_free_bytes
        self.used_bytes = store.usage_bytes()  # the indexed files: kept up to date as frames come and go
        self.other_bytes = 0  # everything else in the data directory, measured now and then
        self._other_measured = float("-inf")
        self.evicted_frames = 0

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.store.data_dir).free

    def make_room(self, incoming_bytes: int) -> None:
        """Evict until `incoming_bytes` fit under the quota and above the floor; raises
        QuotaExhausted if only protected data is left."""
        self._make_quota_room(incoming_bytes)
        self._make_free_room(incoming_bytes)

    def _make_quota_room(self, incoming_bytes: int) -> None:
        if self.quota_bytes is None:
            return
        if time.monotonic() - self._other_measured >= OTHER_REFRESH_S:
            self.other_bytes = other_bytes(self.store.data_dir)
            self._other_measured = time.monotonic()
        room = self.quota_bytes - self.other_bytes  # what the indexed files may take
        if self.used_bytes + incoming_bytes <= room:
            return
        target = min(room - self.quota_bytes * (1 - self.retention.low_watermark), room - incoming_bytes)
        while self.used_bytes > target:
            if not self._evict_batch(self.used_bytes - target):
                break
        if self.used_bytes + incoming_bytes > room:
            raise QuotaExhausted(
                f"disk quota of {self.quota_bytes / 1e6:.1f} MB is full: {self.used_bytes / 1e6:.1f} MB of "
                f"protected frames (masked, or used by the live model) and {self.other_bytes / 1e6:.1f} MB "
                "of database, runs and caches; raise storage.disk_quota_mb"
            )

    def _make_free_room(self, incoming_bytes: int) -> None:
        free = self.free_bytes()
        if free - incoming_bytes >= self.min_free_bytes:
            return
        # evict a little more than the shortfall, as the quota's low watermark does, so that the
        # next frames do not each pay for an eviction
        want = self.min_free_bytes + incoming_bytes + self.min_free_bytes * (1 - self.retention.low_watermark)
        while free < want and self._evict_batch(want - free):
            free = self.free_bytes()
        if free - incoming_bytes < self.min_free_bytes:
            self.store.shrink_index()  # the index's own WAL may hold megabytes a small disk needs
            free = self.free_bytes()
        if free - incoming_bytes < self.min_free_bytes:
            raise QuotaExhausted(
                f"{self.store.data_dir}: {free / 1e6:.1f} MB free on its disk, not enough for a "
                f"{incoming_bytes / 1e6:.2f} MB frame above storage.min_free_mb "
                f"({self.min_free_bytes / 1e6:.1f} MB), and nothing left to evict (masked frames or the "
                "live model's recordings): free space on that disk; recording resumes by itself"
            )

    def added(self, nbytes: int) -> None:
        self.used_bytes += nbytes

    def remeasure(self) -> None:
        """Measure the database, runs and caches at the next check, whenever they were last measured."""
        self._other_measured = float("-inf")

    def _evictable(self):
        query = (
            select(
                Frame.id,
                Frame.path,
                Frame.bytes,
                Frame.depth_path,
                Frame.depth_bytes,
                Frame.recording_id,
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
            folders = set()
            for row in rows:
                for path in (row.path, row.depth_path):
                    if path is not None:
                        file = Path(self.store.absolute(path))
                        file.unlink(missing_ok=True)
                        folders.add(file.parent)
            for folder in folders:  # the deletions are durable before the rows go: a power cut
                fsync_directory(folder)  # must not bring back files the index has forgotten
            session.execute(delete(Frame).where(Frame.id.in_([row.id for row in rows])))
            per_recording: dict[int, int] = {}
            for row in rows:
                per_recording[row.recording_id] = per_recording.get(row.recording_id, 0) + 1
            for recording_id, count in per_recording.items():
                recording = session.get(Recording, recording_id)
                recording.evicted_frames += count
                recording.frame_count -= count  # frames it holds: what `db check` counts
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


def other_bytes(data_dir: Path) -> int:
    """Everything in the data directory but the frame, mask and depth trees the index accounts for:
    the database and its WAL, training runs, caches, the simulator's files."""
    total = 0
    for entry in data_dir.iterdir() if data_dir.is_dir() else ():
        if entry.name in (FRAMES_DIR, MASKS_DIR, DEPTH_DIR):
            continue
        paths = [entry] if entry.is_file() else entry.rglob("*")
        total += sum(path.stat().st_size for path in paths if path.is_file())
    return total
