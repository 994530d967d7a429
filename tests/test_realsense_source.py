"""The real pyrealsense2 pipeline without hardware: a recording written by pyrealsense2's software
device from simulated belt frames, played back through the RealSense source."""

from __future__ import annotations

import numpy as np
import pytest

from edge.config import CameraConfig
from edge.simulated_calibration import render_clip, simulated_pair
from edge.sources.base import SourceError
from edge.sources.realsense_source import RealSenseCamera, write_recording


def _recording(tmp_path, frames: int = 6):
    c1, _ = simulated_pair(resolution=(96, 72), fps=10.0, seed=2)
    images, times_s = render_clip(c1, frames)
    times_ms = [1000.0 + t * 1000 for t in times_s]
    return write_recording(tmp_path / "c1.db3", images, times_ms, fps=10.0), images, times_ms


def _camera(path, resolution=(96, 72)) -> RealSenseCamera:
    return RealSenseCamera(
        CameraConfig(id="c1", kind="realsense", source=str(path), resolution=resolution, fps=10)
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
    camera = _camera(path, resolution=(640, 480))
    camera.open()
    try:
        with pytest.raises(SourceError, match="frame is 96x72, configured 640x480"):
            camera.read(timeout_s=2.0)
    finally:
        camera.close()
    with pytest.raises(SourceError, match=r"recording .*missing.db3 not found"):
        _camera(tmp_path / "missing.db3").open()
