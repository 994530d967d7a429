import time

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from edge.config import CameraConfig
from edge.sources.base import SourceError
from edge.sources.opencv_source import OpenCVCamera, _has_gstreamer
from edge.store.models import Recording

W, H = 64, 48


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "belt.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (W, H))
    for index in range(10):
        image = np.full((H, W, 3), 30 + index * 20, np.uint8)  # never all black: that is a camera fault
        writer.write(image)
    writer.release()
    return path


def test_video_file_plays_at_its_own_rate_then_ends(video):
    camera = OpenCVCamera(CameraConfig(id="c1", kind="opencv", source=str(video), resolution=(W, H)))
    camera.open()
    started = time.monotonic()
    frames = [camera.read(1.0) for _ in range(10)]
    elapsed = time.monotonic() - started
    assert [f.seq for f in frames] == list(range(10))
    assert elapsed >= 9 / 25 * 0.9
    assert abs(int(frames[5].image.mean()) - (30 + 5 * 20)) <= 3
    with pytest.raises(SourceError, match="end of video file"):
        camera.read(1.0)
    camera.close()


def test_wrong_size_and_unopenable_sources_are_clear_errors(video, tmp_path):
    wrong = OpenCVCamera(CameraConfig(id="c2", kind="opencv", source=str(video), resolution=(640, 480)))
    wrong.open()
    with pytest.raises(SourceError, match="camera c2: frame is 64x48, config says 640x480"):
        wrong.read(1.0)
    wrong.close()
    with pytest.raises(SourceError, match="no such video file, device or URL"):
        OpenCVCamera(CameraConfig(id="c1", kind="opencv", source=str(tmp_path / "x.mp4"))).open()
    expected = "cannot open" if _has_gstreamer() else "needs OpenCV built with GStreamer"
    with pytest.raises(SourceError, match=expected):
        OpenCVCamera(CameraConfig(id="c1", kind="opencv", source="nosuchelement ! appsink")).open()
    with pytest.raises(SourceError, match="'source' is empty"):
        OpenCVCamera(CameraConfig(id="c1", kind="opencv")).open()


def test_recording_from_a_video_file_keeps_the_simulated_camera_going(make_config, run_recorder, video):
    config = make_config(
        {
            "cameras": [
                {"id": "c1", "kind": "simulated", "resolution": [W, H], "fps": 20},
                {"id": "c2", "kind": "opencv", "source": str(video), "resolution": [W, H]},
            ]
        }
    )
    store, summary = run_recorder(config, 1.5)
    assert summary.written["c2"] >= 10  # the file, replayed after each end-of-file reconnect
    assert summary.errors["c2"] >= 1  # end of file counts as a source error and reconnects
    assert summary.written["c1"] >= 25
    with store.session() as session:
        sources = {r.camera: r.source for r in session.scalars(select(Recording))}
    assert sources["c2"] == f"opencv:{video}"
