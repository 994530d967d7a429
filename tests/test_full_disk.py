"""A full disk never crashes the recorder and never loses what was recorded: below the free-space
floor the oldest frames go; when nothing can go, recording pauses with an alarm and resumes by itself;
ENOSPC itself (another program filled the disk) is survived the same way. The disk is real: a small
tmpfs mounted by the test, with the data directory and its SQLite index on it."""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from edge.capture.cameras import build_sources
from edge.capture.report import camera_events, camera_reports
from edge.recorder.recorder import Recorder
from edge.store.files import TEMP_SUFFIX, atomic_write
from edge.store.frame_store import FrameStore
from edge.store.models import Recording
from edge.store.reconcile import check_store

MB = 1_000_000


def _site(make_config, disk: Path, **storage):
    return make_config(
        {
            "storage": {"data_dir": str(disk / "data"), "image_format": "png", **storage},
            "recorder": {"segment_s": 1.0},
            "simulator": {"realtime": True},
        }
    )


def _ballast(disk: Path, leave_bytes: int) -> Path:
    """Another program's file, filling the disk up to `leave_bytes` of free space."""
    path = disk / "ballast.bin"
    size = max(0, shutil.disk_usage(disk).free - leave_bytes)
    with path.open("wb") as out:
        out.write(b"\0" * size)
    return path


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"*{TEMP_SUFFIX}") if p.is_file()]


def _recorder(config) -> tuple[FrameStore, Recorder]:
    store = FrameStore.from_config(config.storage)
    return store, Recorder(config, store, build_sources(config))


def test_below_the_floor_the_oldest_frames_go_and_recording_goes_on(make_config, small_disk):
    disk = small_disk(8)
    config = _site(make_config, disk, min_free_mb=3)
    store, recorder = _recorder(config)
    summary = recorder.run(6.0, progress=False)
    assert summary.evicted_frames > 0 and summary.storage_alarm is None
    assert shutil.disk_usage(disk).free >= 2.5 * MB  # the floor held (one frame's worth of slack)
    assert sum(summary.written.values()) > 100
    with store.session() as session:
        assert {r.status for r in session.scalars(select(Recording))} <= {"closed", "evicted"}
    assert check_store(store).clean and _temp_files(disk) == []
    store.close()


def test_when_nothing_can_go_recording_pauses_with_an_alarm_and_resumes_by_itself(make_config, small_disk):
    disk = small_disk(8)
    config = _site(make_config, disk, min_free_mb=1)
    store, recorder = _recorder(config)
    seen_paused, freed_at = [], []

    def fill_then_free() -> None:  # another program takes whatever the recorder frees, for 1.5 s
        time.sleep(1.0)
        ballast = disk / "ballast.bin"
        with ballast.open("ab") as out:
            until = time.monotonic() + 1.5
            while time.monotonic() < until:
                out.write(b"\0" * max(0, shutil.disk_usage(disk).free - 700_000))
                out.flush()
                time.sleep(0.05)
        seen_paused.extend(r for r in camera_reports(store) if r.state == "paused")
        ballast.unlink()
        freed_at.append(time.monotonic_ns())

    helper = threading.Thread(target=fill_then_free)
    helper.start()
    summary = recorder.run(5.0, progress=False)
    helper.join()
    assert {r.camera for r in seen_paused} == {"c1", "c2"}
    assert all("min_free_mb" in r.last_error for r in seen_paused)
    assert sum(summary.dropped.values()) > 0  # frames of the pause, counted
    assert summary.storage_alarm is None  # resumed before the end
    with store.session() as session:
        recordings = list(session.scalars(select(Recording)))
        newest = max(r.id for r in recordings if r.frame_count)
    assert {r.status for r in recordings} <= {"closed", "evicted"}
    times = [f.capture_ns for f in store_frames(store, newest)]
    assert times and max(times) > freed_at[0]  # recording resumed after the space came back
    states = [e.state for e in camera_events(store, "c1", limit=50)]
    assert "paused" in states and states.index("paused") > 0  # newest first: something came after it
    assert check_store(store).clean and _temp_files(disk) == []
    store.close()


def store_frames(store: FrameStore, recording_id: int):
    from edge.store.models import Frame

    with store.session() as session:
        return list(session.scalars(select(Frame).where(Frame.recording_id == recording_id)))


def test_enospc_from_a_disk_filled_by_someone_else_is_survived(make_config, small_disk):
    disk = small_disk(6)
    config = _site(make_config, disk, min_free_mb=0)
    store, recorder = _recorder(config)
    (disk / "data").mkdir(exist_ok=True)
    ballast = _ballast(disk, leave_bytes=400_000)  # the store's own floor is 0: writes hit ENOSPC
    summary = recorder.run(3.0, progress=False)  # no exception: that is the first assertion
    assert summary.storage_alarm is not None and "disk full" in summary.storage_alarm
    assert _temp_files(disk) == []
    ballast.unlink()
    report = check_store(store)
    assert not report.missing_frames  # the index never names a file the full disk lost
    store.close()


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    real_write = os.write

    def write_half_then_fail(fd, data):
        if len(data) > 10:
            real_write(fd, bytes(data[:10]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(tmp_path / "frame.jpg", b"x" * 100)
    assert list(tmp_path.iterdir()) == []


def test_the_index_gives_its_wal_back_on_a_small_disk(make_config, small_disk):
    """On a few MB the SQLite WAL (up to 4 MB between checkpoints) is the biggest file: it is
    truncated after checkpoints and as a last resort before pausing, so the recorder never pauses
    for its own index while frames can be evicted."""
    disk = small_disk(6)
    config = _site(make_config, disk, min_free_mb=1)
    store, recorder = _recorder(config)
    summary = recorder.run(5.0, progress=False)
    wal = disk / "data" / "beltcam.db-wal"
    assert summary.storage_alarm is None and sum(summary.dropped.values()) == 0
    assert summary.evicted_frames > 0
    assert not wal.exists() or wal.stat().st_size <= 1_500_000  # checkpointed every 1 MB, not 4
    store.close()
