"""The recorder's writing side: files, index rows, C1/C2 pairing, segments, quota and counters.

Frames are written one by one as they arrive but indexed in batches (every `commit_every_s`), after
their directories are fsynced: one transaction per batch keeps SQLite fast, and the order (durable
file, then row) means a crash can only leave unindexed files, never rows without files. A write or
a commit that fails (full disk, read-only disk, database unavailable) pauses recording through the
`StorageGuard` instead of ending it: frames are dropped and counted until writing works again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, update
from sqlalchemy.exc import OperationalError

from calibration import load_calibration
from edge.capture.camera_health import PAUSED, HealthSnapshot
from edge.capture.mounts import source_change_event
from edge.capture.stream_pair import StreamPair
from edge.capture.worker import CaptureWorker
from edge.config import CameraConfig, SiteConfig, redact_credentials
from edge.recorder.storage_guard import StorageGuard
from edge.sources.base import Frame
from edge.sources.image_files import encode_image
from edge.store.files import fsync_directory
from edge.store.frame_store import FrameStore, WrittenFile, utc_now
from edge.store.models import CameraEvent, CameraStatus, Mask, Recording
from edge.store.models import Frame as FrameRow

log = logging.getLogger(__name__)
CAMERA_LABELS = {"c1": "before", "c2": "after"}
TEXT_LIMIT = 512  # the store's column width for sources and error messages
CAMERA_EVENT_DAYS = 30  # camera state changes older than this are deleted when recording starts


def _source_label(camera: CameraConfig) -> str:
    return redact_credentials(f"{camera.kind}:{camera.source}")[:TEXT_LIMIT] if camera.source else camera.kind


def _clip(text: str | None) -> str | None:
    return text if text is None or len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 3] + "..."


@dataclass
class _Segment:
    recording_id: int
    started_ns: int
    index: int  # how many segments this camera had before this one
    next_seq: int = 0  # our own numbering: a camera's counter may restart when it reconnects
    synced_counters: dict[str, int] = field(
        default_factory=lambda: {"dropped": 0, "errors": 0, "reconnects": 0}
    )


@dataclass(frozen=True)
class EncodedFrame:
    frame: Frame
    frame_data: bytes
    mask_data: bytes  # empty when the frame carries no ground truth to store
    depth_data: bytes = b""  # 16-bit PNG of the aligned depth image, when the camera gives one


@dataclass
class _Pending:
    camera: str
    row: FrameRow
    mask: Mask | None


class FrameWriter:
    def __init__(
        self, store: FrameStore, config: SiteConfig, session_name: str, workers: dict[str, CaptureWorker]
    ) -> None:
        self.store = store
        self.workers = workers
        self.config = config
        self.session_name = session_name
        self.guard = StorageGuard(store, config.storage)
        self.pairing = StreamPair(round(config.recorder.pair_tolerance_ms * 1e6), *self._c2_timing())
        self._segments: dict[str, _Segment] = {}
        self._pending: list[_Pending] = []
        self._dirty_dirs: set[Path] = set()
        self._last_commit = time.monotonic()
        self.written = {"c1": 0, "c2": 0}
        self.quota_drops = {"c1": 0, "c2": 0}  # frames that found no room or could not be written
        self.recording_ids: set[int] = set()
        self._forget_old_camera_events()

    def _forget_old_camera_events(self) -> None:
        """A camera flapping for weeks must not grow the index without end: keep recent history."""
        cutoff = utc_now() - timedelta(days=CAMERA_EVENT_DAYS)
        with self.store.session() as session:
            session.execute(delete(CameraEvent).where(CameraEvent.utc < cutoff))

    def _c2_timing(self) -> tuple[int, int]:
        """C2's clock offset and the belt's C1-to-C2 travel time, in ns: from the site calibration when
        it has them (`beltcam calibrate speed` and `offsets`), else the simulator's clock offset."""
        offset_ns = round(self.config.simulator.c2_clock_offset_ms * 1e6) if self._simulated else 0
        path = self.config.calibration_file
        calibration = load_calibration(path) if path is not None else None
        if calibration is None or calibration.offsets is None:
            return offset_ns, 0
        offset_ns = round(calibration.offsets.c2_clock_offset_ms * 1e6)
        speed = calibration.belt.speed_mm_s
        lag_ns = round(calibration.offsets.c1_to_c2_mm / speed * 1e9) if speed else 0
        return offset_ns, lag_ns

    @property
    def _simulated(self) -> bool:
        return all(camera.kind == "simulated" for camera in self.config.cameras)

    def encode(self, frame: Frame) -> EncodedFrame:
        """The CPU-heavy part, free of shared state: the recorder runs it on a thread pool."""
        storage = self.config.storage
        truth_every = self.config.simulator.truth_every
        with_truth = (
            frame.camera == "c1" and frame.truth is not None and truth_every and frame.seq % truth_every == 0
        )
        return EncodedFrame(
            frame=frame,
            frame_data=encode_image(frame.image, storage.image_format, storage.jpeg_quality),
            mask_data=encode_image(frame.truth.label_map, "png") if with_truth else b"",
            depth_data=encode_image(frame.depth_mm, "png") if frame.depth_mm is not None else b"",
        )

    def write(self, encoded: EncodedFrame) -> None:
        """Write one encoded frame in capture order; call from one thread only. A frame that cannot
        be stored is dropped and counted, and leaves no file behind."""
        camera = encoded.frame.camera
        nbytes = len(encoded.frame_data) + len(encoded.mask_data) + len(encoded.depth_data)
        if not self.guard.room_for(nbytes):
            self.quota_drops[camera] += 1
            return
        written: list[WrittenFile] = []
        try:
            if self._segment_ends(encoded.frame):
                self._roll_over(encoded.frame)
                # that committed a batch and two recordings (and may have checkpointed the WAL): the
                # index grew after the quota measured it, so measure again before the files go down
                self.guard.index_changed()
                if not self.guard.room_for(nbytes):
                    self.quota_drops[camera] += 1
                    return
            pending = self._write_files(encoded, written)
        except (OSError, OperationalError) as error:
            for done in written:
                self.store.absolute(done.path).unlink(missing_ok=True)
            self.guard.failed(f"{camera} frame {encoded.frame.seq}", error)
            self.quota_drops[camera] += 1
            return
        self.guard.written(sum(done.bytes for done in written))
        self._pending.append(pending)
        self.written[camera] += 1

    def _write_files(self, encoded: EncodedFrame, written: list[WrittenFile]) -> _Pending:
        """The frame's files (image, mask, depth), each added to `written` as soon as it exists."""
        frame = encoded.frame
        segment = self._segments[frame.camera]
        camera, recording_id, seq = frame.camera, segment.recording_id, segment.next_seq
        with_truth = (
            bool(encoded.mask_data) and segment.index % self.config.simulator.truth_segments_every == 0
        )
        image_format = self.config.storage.image_format
        frame_file = self._write_file(
            self.store.frame_relpath(camera, recording_id, seq, image_format), encoded.frame_data
        )
        written.append(frame_file)
        depth = None
        if encoded.depth_data:
            depth = self._write_file(self.store.depth_relpath(camera, recording_id, seq), encoded.depth_data)
            written.append(depth)
        mask = None
        if with_truth:
            mask_path = self.store.mask_relpath(camera, recording_id, seq)
            mask_file = self._write_file(mask_path, encoded.mask_data)
            written.append(mask_file)
            mask = Mask(
                path=mask_file.path,
                bytes=mask_file.bytes,
                origin="simulator",
                objects=[vars(obj) | {"extent_mm": list(obj.extent_mm)} for obj in frame.truth.objects],
                created_utc=utc_now(),
            )
        segment.next_seq += 1
        row = FrameRow(
            recording_id=recording_id,
            seq=seq,
            path=frame_file.path,
            bytes=frame_file.bytes,
            capture_utc=frame.capture_utc,
            capture_ns=frame.capture_ns,
            depth_path=depth.path if depth else None,
            depth_bytes=depth.bytes if depth else 0,
        )
        return _Pending(camera, row, mask)

    def _write_file(self, relative: str, data: bytes) -> WrittenFile:
        """Write a file now; its folder is fsynced before the batch that indexes it commits."""
        written = self.store.write_file(relative, data)
        self._dirty_dirs.add(self.store.absolute(written.path).parent)
        return written

    def commit_due(self) -> bool:
        return time.monotonic() - self._last_commit >= self.config.recorder.commit_every_s

    def commit(self) -> None:
        """Make the batch durable, index it, pair it, and bring the counters up to date. When that
        fails (full disk, database gone) the batch is kept for the next commit and recording
        pauses; pairs found in the failed attempt are lost, the frames are not."""
        self._last_commit = time.monotonic()
        pending, self._pending = self._pending, []
        synced = {camera: dict(segment.synced_counters) for camera, segment in self._segments.items()}
        try:
            for directory in self._dirty_dirs:
                fsync_directory(directory)
            self._dirty_dirs.clear()
            self._index(pending)
        except (OSError, OperationalError) as error:
            self._pending = pending + self._pending
            for camera, counters in synced.items():
                self._segments[camera].synced_counters = counters
            self.guard.failed("the index", error)
            return
        self.guard.events.clear()  # stored with this batch

    def _index(self, pending: list[_Pending]) -> None:
        with self.store.session() as session:
            session.add_all(item.row for item in pending)
            session.flush()
            for item in pending:
                if item.mask is not None:
                    item.mask.frame_id = item.row.id
                    session.add(item.mask)
            recording_ids = {item.row.recording_id for item in pending}
            recording_ids |= {segment.recording_id for segment in self._segments.values()}
            recordings = {rid: session.get(Recording, rid) for rid in recording_ids}
            for item in pending:
                recordings[item.row.recording_id].frame_count += 1
                pair = self.pairing.add(item.camera, item.row.id, item.row.capture_ns)
                if pair is not None:
                    self._link_pair(session, pair, recordings)
            health = {camera: worker.health.snapshot() for camera, worker in self.workers.items()}
            for camera, segment in self._segments.items():
                self._sync_counters(recordings[segment.recording_id], segment, health.get(camera), camera)
            for camera, snapshot in health.items():
                self._sync_status(session, camera, snapshot)

    def _link_pair(self, session, pair: tuple[int, int], recordings: dict[int, Recording]) -> None:
        c1_id, c2_id = pair
        for frame_id, partner in ((c1_id, c2_id), (c2_id, c1_id)):
            session.execute(update(FrameRow).where(FrameRow.id == frame_id).values(pair_frame_id=partner))
        for camera in ("c1", "c2"):
            segment = self._segments.get(camera)
            if segment is not None:
                recordings[segment.recording_id].paired_frames += 1

    def _sync_counters(
        self, recording: Recording, segment: _Segment, health: HealthSnapshot | None, camera: str
    ) -> None:
        now = {
            "dropped": (health.counts.dropped if health else 0) + self.quota_drops[camera],
            "errors": health.counts.failures if health else 0,
            "reconnects": health.counts.reconnects if health else 0,
        }
        delta = {key: now[key] - segment.synced_counters[key] for key in now}
        recording.dropped_frames += delta["dropped"]
        recording.source_errors += delta["errors"]
        recording.reconnects += delta["reconnects"]
        segment.synced_counters = now

    def _sync_status(self, session, camera: str, health: HealthSnapshot) -> None:
        """The camera's row in camera_status (what the panel shows) and its new state changes."""
        status = session.get(CameraStatus, camera)
        if status is None:
            status = CameraStatus(camera=camera)
            session.add(status)
        source = _source_label(self.config.camera(camera))
        if status.source is not None and status.source != source:  # the calibration may no longer hold
            session.add(source_change_event(camera, status.source, source))
        status.source = source
        status.session = self.session_name
        status.state, status.since_utc = health.state, health.since_utc
        status.updated_utc = utc_now()
        status.last_frame_utc = health.last_frame_utc
        for name, count in vars(health.counts).items():
            setattr(status, name, count)
        status.dropped += self.quota_drops[camera]
        status.paired, status.unpaired = self.pairing.stats.paired, self.pairing.stats.unpaired[camera]
        status.last_error = _clip(health.last_error)
        if self.guard.paused:  # the camera is fine, but nothing of it is being stored
            status.state, status.since_utc = PAUSED, self.guard.paused_since
            status.last_error = _clip(f"recording paused: {self.guard.alarm}")
        session.add_all(
            CameraEvent(camera=camera, utc=event.utc, state=event.state, detail=_clip(event.detail))
            for event in health.events
        )
        session.add_all(
            CameraEvent(
                camera=camera,
                utc=event.utc,
                state=event.state if event.state == PAUSED else health.state,
                detail=_clip(event.detail or "recording resumed"),
            )
            for event in self.guard.events
        )

    def _segment_ends(self, frame: Frame) -> bool:
        """True when `frame` is its camera's first, or falls past its current recording's length."""
        segment = self._segments.get(frame.camera)
        segment_ns = self.config.recorder.segment_s * 1e9
        return segment is None or frame.capture_ns - segment.started_ns >= segment_ns

    def _roll_over(self, frame: Frame) -> None:
        """Close the camera's current recording (indexing its batch) and begin the one `frame` opens."""
        segment = self._segments.get(frame.camera)
        if segment is not None:
            self.commit()
            self.store.close_recording(segment.recording_id)
        camera = self.config.camera(frame.camera)
        height, width = frame.image.shape[:2]
        recording_id = self.store.begin_recording(
            camera=frame.camera,
            label=CAMERA_LABELS[frame.camera],
            source=_source_label(camera),
            image_format=self.config.storage.image_format,
            size=(width, height),
            fps=camera.fps,
            session_name=self.session_name,
        )
        carried = segment.synced_counters if segment is not None else None
        new_segment = _Segment(
            recording_id, frame.capture_ns, segment.index + 1 if segment is not None else 0
        )
        if carried is not None:
            new_segment.synced_counters = dict(carried)
        self._segments[frame.camera] = new_segment
        self.recording_ids.add(recording_id)

    def close(self) -> None:
        """Index what is left and close the recordings; what the store cannot take now (full disk)
        is said in the log and left to `beltcam db check --repair`, never raised."""
        self.commit()
        self.pairing.finish()
        if self._pending:
            log.error(
                "%d frames could not be indexed (%s): their files stay; `beltcam db check --repair` "
                "adopts them",
                len(self._pending),
                self.guard.alarm,
            )
        for segment in self._segments.values():
            try:
                self.store.close_recording(segment.recording_id)
            except OperationalError as error:
                log.error(
                    "recording %d could not be closed (%s): `beltcam db check --repair` marks it interrupted",
                    segment.recording_id,
                    error.orig,
                )
