from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from edge.config import RetentionConfig
from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Mask, Model, Recording, TrainingRun, TrainingRunRecording
from edge.store.retention import DiskQuota, QuotaExhausted, other_bytes
from tests.conftest import simulated_cameras

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def add_recording(store, label, frames=5, size=1000, masked=()):
    recording_id = store.begin_recording("c1", label, "test", "jpg", (64, 48), 10.0)
    with store.session() as session:
        for seq in range(frames):
            path = store.frame_relpath("c1", recording_id, seq, "jpg")
            store.write_file(path, b"x" * size)
            frame = Frame(recording_id=recording_id, seq=seq, path=path, bytes=size, capture_utc=NOW)
            session.add(frame)
            if seq in masked:
                session.flush()
                mask_path = store.mask_relpath("c1", recording_id, seq)
                store.write_file(mask_path, b"m" * 100)
                session.add(
                    Mask(frame_id=frame.id, path=mask_path, bytes=100, origin="import", created_utc=NOW)
                )
    store.close_recording(recording_id)
    return recording_id


def frames_left(store):
    with store.session() as session:
        return {(f.recording_id, f.seq) for f in session.scalars(select(Frame))}


def test_unlabeled_go_first_then_oldest_and_masked_frames_stay(store):
    labelled = add_recording(store, "before", masked={1})
    unlabeled = add_recording(store, "unlabeled")
    newer = add_recording(store, "after")
    quota = DiskQuota(
        store, quota_bytes=other_bytes(store.data_dir) + 14_200, retention=RetentionConfig(low_watermark=1.0)
    )
    quota.make_room(5_000)
    left = frames_left(store)
    assert not any(r == unlabeled for r, _ in left)  # all unlabeled frames went first
    assert (labelled, 0) not in left  # then the oldest labelled frame
    assert (labelled, 1) in left  # but not the masked one
    assert {(newer, s) for s in range(5)} <= left
    assert quota.used_bytes + quota.other_bytes + 5_000 <= quota.quota_bytes
    assert quota.used_bytes == store.usage_bytes()
    with store.session() as session:
        gone = session.get(Recording, unlabeled)
        assert (gone.status, gone.evicted_frames) == ("evicted", 5)
        assert session.get(Recording, labelled).evicted_frames >= 1
    assert not store.recording_dir("c1", unlabeled).exists() or not any(
        store.recording_dir("c1", unlabeled).iterdir()
    )


def test_recordings_of_the_live_model_are_kept(store):
    trained_on = add_recording(store, "unlabeled")
    add_recording(store, "unlabeled")
    with store.session() as session:
        run = TrainingRun(method="ours", status="finished", run_dir="runs/1", started_utc=NOW)
        session.add(run)
        session.flush()
        session.add(TrainingRunRecording(run_id=run.id, recording_id=trained_on))
        session.add(Model(run_id=run.id, path="runs/1/model.onnx", status="live", created_utc=NOW))
    quota = DiskQuota(store, quota_bytes=other_bytes(store.data_dir) + 6_000, retention=RetentionConfig())
    quota.make_room(1_000)
    assert {(trained_on, s) for s in range(5)} <= frames_left(store)
    with pytest.raises(QuotaExhausted, match=r"MB of protected frames \(masked, or used by the live model\)"):
        quota.make_room(2_000)


def folder_bytes(data_dir):
    return sum(
        p.stat().st_size for top in ("frames", "masks") for p in (data_dir / top).rglob("*") if p.is_file()
    )


def everything_bytes(data_dir):
    return sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())


def record_under_quota(make_config, run_recorder, monkeypatch, quota_mb, duration_s=6.0, frame_bytes=None):
    """Record under `quota_mb` with the database measured before every write; returns the store,
    the summary and the most the data directory ever held right after a file was written. With
    `frame_bytes`, record until that many bytes of frames were written (within `duration_s`): a
    busy machine writes fewer frames a second, and the test is about volume, not speed."""
    import edge.store.retention as retention

    monkeypatch.setattr(retention, "OTHER_REFRESH_S", 0.0)  # measure the database before every write
    config = make_config(
        {
            "cameras": simulated_cameras(320, 240),
            "storage": {"disk_quota_mb": quota_mb, "image_format": "png"},
            "recorder": {"segment_s": 1.0},
            "simulator": {"realtime": False, "truth_every": 20},
        }
    )
    peak = [0]
    frames_written = [0]
    recorders = []
    write_file = FrameStore.write_file

    def measured_write(self, relative, data):
        written = write_file(self, relative, data)  # only the writer thread writes or evicts
        peak[0] = max(peak[0], everything_bytes(config.storage.data_dir))
        if str(relative).startswith("frames"):
            frames_written[0] += len(data)
            if frame_bytes is not None and frames_written[0] > frame_bytes:
                recorders[0].stop()
        return written

    monkeypatch.setattr(FrameStore, "write_file", measured_write)
    store, summary = run_recorder(config, duration_s, on_recorder=recorders.append)
    return config, store, summary, peak[0], frames_written[0]


def test_recording_for_long_under_a_tiny_quota(make_config, run_recorder, monkeypatch):
    """The quota holds for everything in the data directory: frames, masks and the database too."""
    quota_mb = 6.0  # the index and its WAL (checkpointed every 1 MB) take a good part of it
    config, store, summary, peak, frames_written = record_under_quota(
        make_config, run_recorder, monkeypatch, quota_mb, duration_s=60.0, frame_bytes=2.5 * quota_mb * 1e6
    )
    assert summary.evicted_frames > 0
    assert frames_written > 2 * quota_mb * 1e6  # far more than fits was written
    # the index grows by one commit's WAL pages between two measurements: that is the only slack
    assert peak <= quota_mb * 1e6 * 1.02
    with store.session() as session:
        masks = list(session.scalars(select(Mask)))
        assert masks
        for mask in masks:
            assert store.absolute(mask.path).is_file()
            assert store.absolute(session.get(Frame, mask.frame_id).path).is_file()
    reopened = FrameStore.from_config(config.storage)
    assert reopened.usage_bytes() == folder_bytes(config.storage.data_dir)


def test_a_new_recordings_commit_is_measured_before_its_first_frame(make_config, run_recorder, monkeypatch):
    """Starting a recording commits the last batch and closes the old one; when that commit grows
    the index (a WAL checkpoint copies up to a megabyte into the database file), the first frame of
    the new recording must still fit under the quota."""
    begin_recording = FrameStore.begin_recording
    growth = 300_000  # what a checkpoint may add at once, far beyond the test's 2 % slack

    def growing_begin(self, *args, **kwargs):
        with open(self.data_dir / "index-growth.bin", "ab") as grown:
            grown.write(b"\0" * growth)
        return begin_recording(self, *args, **kwargs)

    monkeypatch.setattr(FrameStore, "begin_recording", growing_begin)
    quota_mb = 8.0
    _, _, summary, peak, _ = record_under_quota(
        make_config, run_recorder, monkeypatch, quota_mb, duration_s=5.0
    )
    assert summary.evicted_frames > 0
    assert peak <= quota_mb * 1e6 * 1.02
