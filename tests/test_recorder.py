import itertools

from sqlalchemy import select

from edge.capture.report import camera_reports
from edge.simulator.camera import SimulatedCamera
from edge.store.models import Frame, Mask, Recording
from edge.store.reconcile import check_store


def test_recording_fills_the_store_with_paired_labelled_frames(make_config, run_recorder):
    config = make_config({"simulator": {"truth_every": 5}})
    store, summary = run_recorder(config, 2.0)
    assert summary.written["c1"] >= 30 and summary.written["c2"] >= 30
    assert summary.dropped == {"c1": 0, "c2": 0}
    assert summary.paired >= min(summary.written.values()) - 2
    for camera in ("c1", "c2"):  # every frame written is paired, unpaired, or belt the other did not see
        assert summary.paired + summary.unpaired[camera] + summary.outside[camera] == summary.written[camera]
    with store.session() as session:
        recordings = {r.camera: r for r in session.scalars(select(Recording))}
        assert {r.label for r in recordings.values()} == {"before", "after"}
        assert all(r.status == "closed" for r in recordings.values())
        assert recordings["c1"].frame_count == summary.written["c1"]
        assert recordings["c1"].paired_frames == summary.paired
        frames = {f.id: f for f in session.scalars(select(Frame))}
        paired = [f for f in frames.values() if f.pair_frame_id is not None]
        for frame in paired:
            partner = frames[frame.pair_frame_id]
            assert partner.pair_frame_id == frame.id
            assert partner.recording_id != frame.recording_id
            assert abs(partner.capture_ns - frame.capture_ns) <= 50_000_000
        masks = list(session.scalars(select(Mask)))
        assert masks and all(frames[m.frame_id].recording_id == recordings["c1"].id for m in masks)
        assert all(m.origin == "simulator" and isinstance(m.objects, list) for m in masks)
    assert check_store(store).clean


def test_a_full_queue_drops_and_counts_frames_instead_of_blocking(make_config, run_recorder):
    config = make_config({"recorder": {"queue_size": 2}, "simulator": {"realtime": False}})
    store, summary = run_recorder(config, 1.5)
    dropped = sum(summary.dropped.values())
    assert dropped > 0
    with store.session() as session:
        stored = {r.camera: (r.frame_count, r.dropped_frames) for r in session.scalars(select(Recording))}
    assert {camera: count for camera, (count, _) in stored.items()} == summary.written
    assert sum(d for _, d in stored.values()) == dropped


def test_a_failing_camera_reconnects_while_the_other_keeps_recording(make_config, run_recorder):
    """Times are on the simulator's clock (the fault is scripted on it), not from C1's first frame:
    C1 may start a frame or two late on a busy machine, which once shifted the window onto C2's
    return. A busy machine may also starve C1 for a moment; what C2's outage must not do is hold C1
    for as long as it lasts."""
    config = make_config(
        {"simulator": {"faults": [{"camera": "c2", "at_s": 0.5, "kind": "error", "duration_s": 0.8}]}}
    )
    epochs = []

    def simulators_clock(recorder):  # the simulator's t = 0 (its camera inside the health check)
        epochs.append(recorder.workers["c1"].source.source.epoch_ns)

    store, summary = run_recorder(config, 2.5, simulators_clock)
    assert summary.errors["c2"] >= 1 and summary.reconnects["c2"] >= 1
    assert summary.errors["c1"] == 0
    with store.session() as session:
        recordings = {r.camera: r for r in session.scalars(select(Recording))}
        assert recordings["c2"].source_errors == summary.errors["c2"]
        assert recordings["c2"].reconnects == summary.reconnects["c2"]
        seconds = {
            camera: sorted(
                (f.capture_ns - epochs[0]) / 1e9
                for f in session.scalars(select(Frame).where(Frame.recording_id == r.id))
            )
            for camera, r in recordings.items()
        }

    def during_outage(stamps):
        return [t for t in stamps if 0.5 - 1e-6 <= t < 1.3 - 1e-6]

    c1 = [t for t in seconds["c1"] if 0.3 <= t < 1.5]
    assert len(during_outage(c1)) >= 4  # C1 kept going, never held as long as C2 was down
    assert max(later - earlier for earlier, later in itertools.pairwise(c1)) < 0.6
    assert during_outage(seconds["c2"]) == []
    assert seconds["c2"][-1] > 1.5  # and C2 came back


def test_a_stalled_camera_is_reopened(make_config, run_recorder):
    config = make_config(
        {"simulator": {"faults": [{"camera": "c1", "at_s": 0.3, "kind": "stall", "duration_s": 1.0}]}}
    )
    store, summary = run_recorder(config, 2.5)
    assert summary.errors["c1"] >= 1 and summary.reconnects["c1"] >= 1  # the stall, then a reopen
    assert summary.written["c1"] < summary.written["c2"]
    with store.session() as session:
        c1 = session.scalars(select(Recording).where(Recording.camera == "c1")).one()
        stamps = sorted(session.scalars(select(Frame.capture_ns).where(Frame.recording_id == c1.id)))
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(stamps)]
    gap_at = gaps.index(max(gaps))
    assert max(gaps) >= 0.9  # the stall
    assert len(stamps) - gap_at - 1 >= 5  # frames came again after it: the camera was reopened


def test_a_black_camera_is_retried_with_back_off_not_on_every_frame(make_config, run_recorder):
    config = make_config(
        {
            "recorder": {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.4},
            "simulator": {"faults": [{"camera": "c2", "at_s": 0.3, "kind": "black", "duration_s": 2.0}]},
        }
    )
    store, summary = run_recorder(config, 3.2)
    c2 = next(report for report in camera_reports(store) if report.camera == "c2")
    # 2 s of black at 20 fps: without back-off 40 refused frames and 40 reopens; with it, the waits
    # grow 0.05, 0.1, 0.2, 0.4, 0.4... (plus jitter), so about 7 tries in the 2 s
    assert 3 <= c2.counts.invalid_frames <= 12
    assert summary.reconnects["c2"] == c2.counts.invalid_frames
    assert summary.written["c2"] >= 0.3 * 20 * 0.8  # before the fault, and again after it
    assert summary.written["c1"] >= 3.2 * 20 * 0.8  # C1 kept its pace throughout


def test_recordings_roll_over_into_segments(make_config, run_recorder):
    config = make_config(
        {"recorder": {"segment_s": 0.5}, "simulator": {"truth_every": 1, "truth_segments_every": 2}}
    )
    store, summary = run_recorder(config, 1.7)
    with store.session() as session:
        recordings = list(session.scalars(select(Recording).where(Recording.camera == "c1")))
    assert len(recordings) >= 3
    assert all(r.status == "closed" for r in recordings)
    assert sum(r.frame_count for r in recordings) == summary.written["c1"]
    with store.session() as session:
        masked = {session.get(Frame, m.frame_id).recording_id for m in session.scalars(select(Mask))}
    # every frame of every second segment is an evaluation set, the others carry no truth at all
    assert masked == {r.id for r in recordings[::2]}
    assert check_store(store).clean


def test_with_calibrated_offsets_pairs_are_the_same_belt_before_and_after(
    make_config, run_recorder, tmp_path
):
    from calibration.calibration_file import BeltSection, CalibrationFile, OffsetsSection, save_calibration

    calibration = CalibrationFile(
        belt=BeltSection(speed_mm_s=250.0),
        offsets=OffsetsSection(
            c1_to_c2_mm=500.0, c2_clock_offset_ms=0.0, clock_source="measured distance",
            speed_correlation=1.0, object_correlation=1.0,
        ),
    )  # fmt: skip
    save_calibration(calibration, tmp_path / "calibration.yaml", "offsets")
    config = make_config({"calibration_file": "calibration.yaml"})
    store, summary = run_recorder(config, 3.5)
    assert summary.paired >= 15
    with store.session() as session:
        frames = {f.id: f for f in session.scalars(select(Frame))}
        camera_of = {r.id: r.camera for r in session.scalars(select(Recording))}
    lags = [
        frames[f.pair_frame_id].capture_ns - f.capture_ns
        for f in frames.values()
        if f.pair_frame_id is not None and camera_of[f.recording_id] == "c1"
    ]
    assert len(lags) == summary.paired
    assert all(abs(lag - 2_000_000_000) <= 50_000_000 for lag in lags)  # 500 mm at 250 mm/s


def test_an_unexpected_exception_from_a_camera_driver_is_counted_and_the_camera_reopened(
    make_config, run_recorder, monkeypatch
):
    real_read = SimulatedCamera.read
    calls = {"c1": 0}

    def buggy_read(self, timeout_s):
        if self.camera_id == "c1":
            calls["c1"] += 1
            if calls["c1"] == 5:
                raise ZeroDivisionError("division by zero in the driver")
        return real_read(self, timeout_s)

    monkeypatch.setattr(SimulatedCamera, "read", buggy_read)
    store, summary = run_recorder(make_config(), 1.5)
    assert summary.errors["c1"] == 1 and summary.reconnects["c1"] == 1
    assert calls["c1"] > 10  # the camera's thread lived on and read again
    reports = {report.camera: report for report in camera_reports(store)}
    assert "unexpected ZeroDivisionError: division by zero in the driver" in reports["c1"].last_error
