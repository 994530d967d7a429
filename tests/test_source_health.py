"""Frame validation: all-black frames and frozen streams are camera failures, not data."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from edge.config import CameraConfig, SimulatorConfig
from edge.simulator.camera import SimulatedCamera
from edge.sources.base import InvalidFrame, SourceError
from edge.sources.health import FROZEN_AFTER, CheckedSource
from edge.store.models import Frame, Recording


def _checked(kind: str) -> CheckedSource:
    simulator = SimulatorConfig(
        realtime=False, faults=[{"camera": "c1", "at_s": 1.0, "kind": kind, "duration_s": 1.0}]
    )
    camera = SimulatedCamera(CameraConfig(id="c1", kind="simulated", resolution=(64, 48), fps=10), simulator)
    source = CheckedSource(camera, (64, 48))
    source.open()
    return source


def _outcomes(source: CheckedSource, count: int) -> list[str]:
    outcomes = []
    for _ in range(count):
        try:
            source.read(timeout_s=1.0)
            outcomes.append("ok")
        except SourceError as error:
            outcomes.append(str(error))
    return outcomes


def test_black_frames_are_refused_and_the_camera_recovers():
    outcomes = _outcomes(_checked("black"), 25)
    assert outcomes[:10] == ["ok"] * 10
    assert all("all black" in o for o in outcomes[10:20])  # frames 10..19 (t = 1.0 .. 1.9 s)
    assert outcomes[20:] == ["ok"] * 5


def test_a_frozen_stream_is_refused_after_a_few_identical_frames():
    outcomes = _outcomes(_checked("frozen"), 25)
    # frames 10.. repeat frame 9's image, so frame 9 is the first of the identical run
    first_refused = 9 + FROZEN_AFTER - 1
    assert outcomes[:first_refused] == ["ok"] * first_refused
    assert f"frozen: the last {FROZEN_AFTER} frames are identical" in outcomes[first_refused]
    assert all("frozen" in o for o in outcomes[first_refused:20])
    assert outcomes[20:] == ["ok"] * 5


def test_wrong_kind_or_size_of_image_is_refused():
    class Grey(SimulatedCamera):
        def read(self, timeout_s):
            frame = super().read(timeout_s)
            return type(frame)(**{**frame.__dict__, "image": frame.image[..., 0]})

    camera = Grey(
        CameraConfig(id="c1", kind="simulated", resolution=(64, 48), fps=10), SimulatorConfig(realtime=False)
    )
    source = CheckedSource(camera, (64, 48))
    source.open()
    with pytest.raises(InvalidFrame, match=r"frame 0 is uint8 \(48, 64\), expected RGB uint8"):
        source.read(1.0)
    config = CameraConfig(id="c1", kind="simulated", resolution=(64, 48), fps=10)
    wrong_size = CheckedSource(SimulatedCamera(config, SimulatorConfig(realtime=False)), (640, 480))
    wrong_size.open()
    with pytest.raises(InvalidFrame, match="camera c1: frame 0 is 64x48, configured 640x480"):
        wrong_size.read(1.0)


def test_recorder_keeps_the_other_camera_while_one_is_frozen(make_config, run_recorder):
    config = make_config(
        {"simulator": {"faults": [{"camera": "c1", "at_s": 0.5, "kind": "frozen", "duration_s": 1.0}]}}
    )
    store, summary = run_recorder(config, 2.5)
    assert summary.errors["c1"] >= 1 and summary.errors["c2"] == 0
    with store.session() as session:
        recordings = {r.camera: r for r in session.scalars(select(Recording))}
        stamps = {
            camera: np.array(sorted(
                f.capture_ns for f in session.scalars(select(Frame).where(Frame.recording_id == r.id))
            ))
            for camera, r in recordings.items()
        }  # fmt: skip
    start = stamps["c2"][0]
    c2_during = ((stamps["c2"] - start > 0.8e9) & (stamps["c2"] - start < 1.4e9)).sum()
    assert c2_during >= 8  # C2 kept its pace while C1 was frozen
    assert (stamps["c1"] - start > 1.7e9).any()  # and C1 came back
    c1_frozen = ((stamps["c1"] - start > 0.55e9) & (stamps["c1"] - start < 1.45e9)).sum()
    assert c1_frozen <= FROZEN_AFTER  # the repeats before the freeze was seen, none after each reopen
