"""GStreamer pipelines as a camera (`kind: gstreamer`), driven through PyGObject."""

import numpy as np
import pytest
from sqlalchemy import select

from edge.capture.cameras import build_sources
from edge.config import CameraConfig, SiteConfig
from edge.sources.base import SourceError, SourceStalled
from edge.sources.gstreamer_source import GStreamerCamera, pipeline_with_sink
from edge.store.models import Recording

W, H, FPS = 90, 64, 20  # 90 px of RGB is 270 bytes a row: GStreamer pads rows to 272
BARS = "videotestsrc is-live=true pattern=smpte horizontal-speed=1"
WHITE, YELLOW, CYAN, GREEN, MAGENTA, RED, BLUE = (
    (255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0), (255, 0, 255), (255, 0, 0), (0, 0, 255)
)  # fmt: skip
RGB_BARS = [WHITE, YELLOW, CYAN, GREEN, MAGENTA, RED, BLUE]


def _camera(pipeline: str, resolution=(W, H)) -> CameraConfig:
    return CameraConfig(id="c1", kind="gstreamer", source=pipeline, resolution=resolution, fps=FPS)


def test_a_pipeline_written_for_opencv_keeps_its_camera_part():
    opencv_style = "v4l2src device=/dev/video0 ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1"
    assert pipeline_with_sink(opencv_style).startswith(
        "v4l2src device=/dev/video0 ! videoconvert ! video/x-raw,format=BGR ! videoconvert ! "
        "video/x-raw,format=RGB ! appsink name=beltcam_sink"
    )
    assert pipeline_with_sink("videotestsrc").startswith("videotestsrc ! videoconvert")


def test_a_test_pattern_arrives_as_rgb_frames_on_the_pipeline_clock():
    pipeline = f"{BARS} ! video/x-raw,width={W},height={H},framerate={FPS}/1 ! videoconvert ! appsink"
    config = SiteConfig(cameras=[_camera(pipeline), {"id": "c2", "kind": "simulated"}])
    camera = build_sources(config)["c1"]  # behind frame validation, like every source
    camera.open()
    try:
        frames = [camera.read(2.0) for _ in range(12)]
    finally:
        camera.close()
    first = frames[0].image
    assert first.shape == (H, W, 3) and first.dtype == np.uint8
    bar_width = W / 7
    colours = [tuple(int(v) for v in first[H // 4, int((bar + 0.5) * bar_width)]) for bar in range(7)]
    for colour, expected in zip(colours, RGB_BARS, strict=True):  # red is red: channel order is RGB
        assert np.abs(np.subtract(colour, expected)).max() <= 40
    spacing_ms = np.diff([frame.capture_ns for frame in frames]) / 1e6
    assert (spacing_ms > 0).all()
    assert np.count_nonzero(np.abs(spacing_ms - 1000 / FPS) < 0.5) >= len(spacing_ms) - 4


def test_bad_pipelines_ends_and_silence_are_clear_source_errors():
    with pytest.raises(SourceError, match=r"camera c1: pipeline: .*nosuchcamerasrc"):
        GStreamerCamera(_camera("nosuchcamerasrc ! videoconvert")).open()
    with pytest.raises(SourceError, match="'source' is empty"):
        GStreamerCamera(_camera("")).open()
    three_frames = f"videotestsrc is-live=true num-buffers=3 ! video/x-raw,width={W},height={H}"
    ending = GStreamerCamera(_camera(three_frames))
    ending.open()
    try:
        assert len([ending.read(2.0) for _ in range(3)]) == 3
        with pytest.raises(SourceError, match="the pipeline ended"):
            ending.read(2.0)
    finally:
        ending.close()
    one_every_5_s = f"videotestsrc is-live=true ! video/x-raw,width={W},height={H},framerate=1/5"
    slow = GStreamerCamera(_camera(one_every_5_s))
    slow.open()
    try:
        slow.read(6.0)  # the first frame comes at once, the next only after 5 s
        with pytest.raises(SourceStalled, match=r"camera c1: no frame within 0\.3 s"):
            slow.read(0.3)
    finally:
        slow.close()


def test_recording_from_a_pipeline_while_the_simulated_camera_records(make_config, run_recorder):
    pipeline = f"{BARS} ! video/x-raw,width={W},height={H},framerate={FPS}/1"
    config = make_config(
        {
            "cameras": [
                {"id": "c1", "kind": "gstreamer", "source": pipeline, "resolution": [W, H], "fps": FPS},
                {"id": "c2", "kind": "simulated", "resolution": [W, H], "fps": FPS},
            ]
        }
    )
    store, summary = run_recorder(config, 1.5)
    assert summary.written["c1"] >= 0.7 * 1.5 * FPS and summary.errors["c1"] == 0
    with store.session() as session:
        sources = {r.camera: r.source for r in session.scalars(select(Recording))}
    assert sources["c1"] == f"gstreamer:{pipeline}"
