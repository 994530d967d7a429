import os
import signal
import subprocess
import sys
import time

import numpy as np
from sqlalchemy import func, select

from edge.config import load_config
from edge.sources.image_files import read_image
from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Recording
from edge.store.reconcile import check_store, repair_store
from tests.conftest import simulated_cameras


def indexed_count(config) -> int:
    store = FrameStore.from_config(config.storage)
    try:
        with store.session() as session:
            return session.scalar(select(func.count(Frame.id)))
    finally:
        store.close()


def frames_on_disk(config) -> int:
    return sum(1 for p in (config.storage.data_dir / "frames").rglob("*.png") if p.is_file())


def test_sigkill_mid_write_is_repaired_without_losing_written_frames(write_config):
    path = write_config(
        {
            "cameras": simulated_cameras(640, 480, 15),
            "storage": {"image_format": "png"},
            "recorder": {"commit_every_s": 4.0},  # a wide window of written, not yet indexed frames
        }
    )
    config = load_config(path)
    recorder = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "record", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # kill once a batch is indexed and the next is on disk only
            time.sleep(0.2)
            if not config.storage.data_dir.joinpath("beltcam.db").exists():
                continue
            indexed = indexed_count(config)
            if indexed >= 20 and frames_on_disk(config) >= indexed + 6:
                break
    finally:
        os.kill(recorder.pid, signal.SIGKILL)
        recorder.wait()

    store = FrameStore.from_config(config.storage)
    report = check_store(store)
    assert not report.clean
    assert len(report.open_recordings) == 2
    assert report.orphan_frames  # written, not yet indexed when the recorder died
    assert not report.missing_frames  # the index never names a file that was not written
    repair_store(store, report)
    assert check_store(store).clean
    with store.session() as session:
        for recording in session.scalars(select(Recording)):
            assert recording.status == "interrupted"
            seqs = sorted(session.scalars(select(Frame.seq).where(Frame.recording_id == recording.id)))
            assert seqs == list(range(len(seqs)))  # every written frame is there, no holes
            assert recording.frame_count == len(seqs) > 10
        frames = list(session.scalars(select(Frame)))
    on_disk = {
        p.relative_to(store.data_dir).as_posix()
        for p in (store.data_dir / "frames").rglob("*")
        if p.is_file()
    }
    assert on_disk == {f.path for f in frames}
    for frame in frames[-4:]:
        assert read_image(store.absolute(frame.path)).shape == (480, 640, 3)
    store.close()


def test_repair_adopts_orphans_removes_temp_files_and_marks_missing(store):
    recording_id = store.begin_recording("c1", "before", "test", "png", (8, 8), 10.0)
    image = np.zeros((8, 8, 3), np.uint8)
    from edge.sources.image_files import encode_image

    with store.session() as session:
        for seq in range(3):
            written = store.write_file(
                store.frame_relpath("c1", recording_id, seq, "png"), encode_image(image, "png")
            )
            session.add(
                Frame(
                    recording_id=recording_id,
                    seq=seq,
                    path=written.path,
                    bytes=written.bytes,
                    capture_utc=store.recordings()[0].started_utc,
                )
            )
    store.close_recording(recording_id)
    orphan = store.write_file(store.frame_relpath("c1", recording_id, 3, "png"), encode_image(image, "png"))
    store.absolute(store.frame_relpath("c1", recording_id, 0, "png")).unlink()
    temp = store.recording_dir("c1", recording_id) / ".00000004.png.tmp"
    temp.write_bytes(b"half a frame")
    stranger = store.data_dir / "frames" / "c1" / "999" / "00000000.png"
    stranger.parent.mkdir(parents=True)
    stranger.write_bytes(b"?")

    report = check_store(store)
    assert report.orphan_frames == [orphan.path]
    assert report.missing_frames == [store.frame_relpath("c1", recording_id, 0, "png")]
    assert report.temp_files == [temp.relative_to(store.data_dir).as_posix()]
    assert report.unknown_files == ["frames/c1/999/00000000.png"]
    repair_store(store, report)
    after = check_store(store)
    assert after.unknown_files == ["frames/c1/999/00000000.png"] and stranger.exists()  # never deleted
    assert not (after.orphan_frames or after.missing_frames or after.temp_files or after.count_mismatches)
    assert after.already_missing == 1
    with store.session() as session:
        adopted = session.scalars(select(Frame).where(Frame.seq == 3)).one()
        first = session.scalars(select(Frame).where(Frame.seq == 2)).one()
        assert adopted.capture_estimated
        assert (adopted.capture_utc - first.capture_utc).total_seconds() == 0.1
        assert session.get(Recording, recording_id).frame_count == 4
