"""An RTSP camera served on loopback by GStreamer's RTSP server (tests/rtsp_server.py)."""

import itertools
import os
import signal
import threading

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from edge.capture.cameras import build_sources
from edge.config import CameraConfig, SiteConfig
from edge.sources.base import SourceStalled
from edge.sources.opencv_source import OpenCVCamera
from edge.store.models import Frame, Recording
from tests.rtsp_server import rtsp_camera

W, H, FPS, COUNT = 96, 64, 20, 10


@pytest.fixture
def served_frames(tmp_path):
    """Ten distinct, smooth RGB frames (JPEG keeps them nearly intact) written as the server's files."""
    folder = tmp_path / "served"
    folder.mkdir()
    frames = []
    for index in range(COUNT):
        coarse = np.random.default_rng(index).integers(20, 236, (4, 6, 3)).astype(np.uint8)
        image = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{index:05d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        frames.append(image)
    return folder, frames


def _closest(image: np.ndarray, frames: list[np.ndarray]) -> tuple[int, float]:
    errors = [float(np.abs(image.astype(int) - frame.astype(int)).mean()) for frame in frames]
    return int(np.argmin(errors)), min(errors)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_an_rtsp_camera_delivers_the_served_frames_in_order_on_its_own_clock(served_frames, transport):
    folder, originals = served_frames
    with rtsp_camera(folder, FPS) as (url, _server):
        camera_config = CameraConfig(
            id="c1", kind="opencv", source=url, resolution=(W, H), fps=FPS, rtsp_transport=transport
        )
        camera = build_sources(SiteConfig(cameras=[camera_config, {"id": "c2", "kind": "simulated"}]))["c1"]
        camera.open()
        try:
            frames = [camera.read(2.0) for _ in range(15)]
        finally:
            camera.close()
    matches = [_closest(frame.image, originals) for frame in frames]
    assert max(error for _, error in matches) < 4  # the same pixels, up to JPEG's rounding
    steps = [(b - a) % COUNT for (a, _), (b, _) in itertools.pairwise(matches)]
    assert steps.count(1) >= len(steps) - 1  # in order, at most one frame lost on loopback
    spacing_ms = np.diff([frame.capture_ns for frame in frames]) / 1e6
    # the stream's own spacing, exact to the microsecond for most frames (arrival times scatter by
    # milliseconds); it shortens only when a frame arrives faster than any before it
    assert (spacing_ms > 0).all()
    assert np.count_nonzero(np.abs(spacing_ms - 1000 / FPS) < 0.1) >= len(spacing_ms) - 4


def test_a_silent_rtsp_camera_is_reported_stalled_within_the_timeout(served_frames):
    folder, _ = served_frames
    with rtsp_camera(folder, FPS) as (url, server):
        camera = OpenCVCamera(
            CameraConfig(id="c2", kind="opencv", source=url, resolution=(W, H), fps=FPS), read_timeout_s=0.5
        )
        camera.open()
        try:
            camera.read(2.0)
            os.kill(server.pid, signal.SIGSTOP)  # the camera hangs without closing its connection
            try:
                with pytest.raises(SourceStalled, match=r"camera c2: no frame within 0\.\d s"):
                    for _ in range(FPS):  # frames already on their way may still arrive
                        camera.read(0.5)
            finally:
                os.kill(server.pid, signal.SIGCONT)
        finally:
            camera.close()


def test_recorder_reconnects_an_rtsp_camera_that_hung_while_the_other_kept_recording(
    served_frames, make_config, run_recorder
):
    folder, _ = served_frames
    with rtsp_camera(folder, FPS) as (url, server):
        config = make_config(
            {
                "cameras": [
                    {"id": "c1", "kind": "simulated", "resolution": [W, H], "fps": FPS},
                    {"id": "c2", "kind": "opencv", "source": url, "resolution": [W, H], "fps": FPS},
                ]
            }
        )
        hang = threading.Timer(1.5, os.kill, (server.pid, signal.SIGSTOP))
        resume = threading.Timer(3.0, os.kill, (server.pid, signal.SIGCONT))
        hang.start()
        resume.start()
        try:
            store, summary = run_recorder(config, 6.0)
        finally:
            hang.cancel()
            resume.cancel()
            os.kill(server.pid, signal.SIGCONT)
    assert summary.errors["c2"] >= 1 and summary.reconnects["c2"] >= 1
    assert summary.written["c1"] >= 0.8 * 6.0 * FPS  # C1 never waited for C2
    # C2 recorded before the hang and again after the reconnect, with a gap in between
    with store.session() as session:
        c2_frames = select(Frame.capture_ns).join(Recording).where(Recording.camera == "c2")
        times = session.scalars(c2_frames.order_by(Frame.capture_ns)).all()
    gaps_s = np.diff(times) / 1e9
    assert gaps_s.max() >= 1.0
    before_gap = int(np.argmax(gaps_s)) + 1
    assert before_gap >= 10 and len(times) - before_gap >= 10


def test_an_rtsp_camera_and_a_gstreamer_camera_are_paired_on_one_time_base(
    served_frames, make_config, run_recorder
):
    """Two real stacks with their own clocks (RTP timestamps, GStreamer's pipeline clock): once both
    are on the host's monotonic clock, frames taken together pair within the 50 ms tolerance."""
    folder, _ = served_frames
    with rtsp_camera(folder, FPS) as (url, _server):
        caps = f"video/x-raw,width={W},height={H},framerate={FPS}/1"
        pattern = f"videotestsrc is-live=true pattern=ball ! {caps}"
        config = make_config(
            {
                "cameras": [
                    {"id": "c1", "kind": "opencv", "source": url, "resolution": [W, H], "fps": FPS},
                    {"id": "c2", "kind": "gstreamer", "source": pattern, "resolution": [W, H], "fps": FPS},
                ]
            }
        )
        _, summary = run_recorder(config, 3.0)
    assert min(summary.written.values()) >= 0.6 * 3.0 * FPS
    assert summary.paired >= 0.8 * min(summary.written.values())
