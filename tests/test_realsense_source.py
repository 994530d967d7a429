"""The real pyrealsense2 pipeline without hardware: a recording written by pyrealsense2's software
device from simulated belt frames, played back through the RealSense source."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from edge.config import CameraConfig
from edge.simulator.calibration_truth import render_clip, simulated_pair
from edge.sources.base import EndOfStream, InvalidFrame, SourceError
from edge.sources.health import CheckedSource
from edge.sources.realsense_recording import write_recording
from edge.sources.realsense_source import RealSenseCamera, global_capture_time


def _recording(tmp_path, frames: int = 6):
    c1, _ = simulated_pair(resolution=(96, 72), fps=10.0, seed=2)
    images, times_s = render_clip(c1, frames)
    times_ms = [1000.0 + t * 1000 for t in times_s]
    return write_recording(tmp_path / "c1.db3", images, times_ms, fps=10.0), images, times_ms


def _camera(path, resolution=(96, 72), depth=False) -> RealSenseCamera:
    return RealSenseCamera(
        CameraConfig(id="c1", kind="realsense", source=str(path), resolution=resolution, fps=10, depth=depth)
    )


def test_playback_gives_back_the_recorded_pixels_and_timestamps(tmp_path):
    path, images, times_ms = _recording(tmp_path)
    camera = _camera(path)
    camera.open()
    try:
        frames = [camera.read(timeout_s=2.0) for _ in images]
        with pytest.raises(SourceError, match="has ended"):
            camera.read(timeout_s=0.5)
    finally:
        camera.close()
    for frame, image in zip(frames, images, strict=True):
        assert np.array_equal(frame.image, image)
    spacing_ms = np.diff([f.capture_ns for f in frames]) / 1e6
    assert np.allclose(spacing_ms, np.diff(times_ms), atol=1e-3)  # the device's own clock, one time base
    assert [f.seq for f in frames] == list(range(len(images)))


def test_wrong_size_and_missing_recording_are_clear_errors(tmp_path):
    path, _, _ = _recording(tmp_path, frames=3)
    camera = CheckedSource(_camera(path, resolution=(640, 480)), (640, 480))
    camera.open()
    try:
        with pytest.raises(InvalidFrame, match="frame 0 is 96x72, configured 640x480"):
            camera.read(timeout_s=2.0)
    finally:
        camera.close()
    with pytest.raises(SourceError, match=r"recording .*missing.db3 not found"):
        _camera(tmp_path / "missing.db3").open()


def test_depth_is_aligned_to_the_colour_image(tmp_path):
    """Depth sensor 5 cm beside the colour sensor: a point at z metres appears fx * 0.05 / z pixels
    further right in colour (fx = 96 px), so a box at 0.5 m moves 9.6 px and the belt at 1 m 4.8 px."""
    images = [np.full((72, 96, 3), 60 + 10 * i, np.uint8) for i in range(4)]
    depth = np.full((72, 96), 1000, np.uint16)
    depth[20:50, 20:40] = 500
    path = write_recording(
        tmp_path / "d.db3", images, [1000.0 + 100 * i for i in range(4)], fps=10.0,
        depth_mm=[depth] * 4, depth_to_colour_m=(0.05, 0.0, 0.0),
    )  # fmt: skip
    camera = _camera(path, depth=True)
    camera.open()
    frames = []
    try:
        with contextlib.suppress(EndOfStream):  # playback keeps the recorded pace: a busy machine
            while len(frames) < len(images):  # may miss a frameset, never repeat or reorder one
                frames.append(camera.read(timeout_s=2.0))
    finally:
        camera.close()
    shown = [int(f.image[0, 0, 0]) for f in frames]
    assert shown and shown == sorted(set(shown)) and set(shown) <= {60, 70, 80, 90}
    aligned = frames[-1].depth_mm
    assert aligned.dtype == np.uint16 and aligned.shape == (72, 96)
    row = aligned[35]
    assert row[45] == 500  # box pixel 35 seen 9.6 px to the right (unaligned: belt, 1000)
    assert row[22] == 1000  # belt pixel 17 seen 4.8 px to the right (unaligned: box, 500)
    assert (row[:4] == 0).all()  # nothing of the depth image lands on the colour image's left edge
    assert (frames[-1].depth_mm[35, 52:] == 1000).all()


def test_depth_asked_of_a_recording_without_depth_is_a_clear_error(tmp_path):
    path, _, _ = _recording(tmp_path, frames=2)
    with pytest.raises(SourceError, match=r"depth is configured but .*c1\.db3 has no depth stream"):
        _camera(path, depth=True).open()


def test_global_timestamps_are_the_hosts_wall_clock_on_the_monotonic_time_base():
    now_ms = time.time() * 1000
    capture_ns, capture_utc = global_capture_time(now_ms - 250.0)  # a frame captured 250 ms ago
    assert (time.monotonic_ns() - capture_ns) / 1e6 == pytest.approx(250.0, abs=20)
    assert (datetime.now(UTC) - capture_utc).total_seconds() == pytest.approx(0.25, abs=0.02)
