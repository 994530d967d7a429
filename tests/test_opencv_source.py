import functools
import http.server
import threading
import time

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from edge.capture.cameras import build_sources
from edge.capture.report import camera_events, camera_reports
from edge.config import CameraConfig, SiteConfig
from edge.sources.base import InvalidFrame, SourceError
from edge.sources.folder_source import ImageFolderCamera
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
    wrong_config = CameraConfig(id="c2", kind="opencv", source=str(video), resolution=(640, 480))
    wrong = build_sources(SiteConfig(cameras=[wrong_config, {"id": "c1", "kind": "simulated"}]))["c2"]
    wrong.open()
    with pytest.raises(InvalidFrame, match="camera c2: frame 0 is 64x48, configured 640x480"):
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
    assert summary.written["c2"] == 10  # the file once: its end ends that camera's recording
    assert summary.errors["c2"] == 0 and summary.reconnects["c2"] == 0  # an end is not a failure
    assert summary.written["c1"] >= 25  # while the simulated camera went on
    with store.session() as session:
        sources = {r.camera: r.source for r in session.scalars(select(Recording))}
    assert sources["c2"] == f"opencv:{video}"
    c2 = next(report for report in camera_reports(store) if report.camera == "c2")
    assert c2.state == "stopped"
    assert "end of video file" in camera_events(store, "c2", limit=1)[0].detail


def test_when_every_camera_has_ended_the_recording_stops_by_itself(make_config, run_recorder, video):
    cameras = [{"id": c, "kind": "opencv", "source": str(video), "resolution": [W, H]} for c in ("c1", "c2")]
    config = make_config({"cameras": cameras})
    started = time.monotonic()
    _, summary = run_recorder(config, None)  # no duration: it must end when the files end
    assert summary.written == {"c1": 10, "c2": 10}
    assert time.monotonic() - started < 10


def test_a_looped_video_file_starts_again_instead_of_ending(video):
    camera = OpenCVCamera(
        CameraConfig(id="c1", kind="opencv", source=str(video), resolution=(W, H), loop=True)
    )
    camera.open()
    try:
        frames = [camera.read(1.0) for _ in range(13)]
    finally:
        camera.close()
    brightness = [int(f.image.mean()) for f in frames]
    assert abs(brightness[10] - brightness[0]) <= 3 and abs(brightness[12] - brightness[2]) <= 3


def _folder(tmp_path, names):
    folder = tmp_path / "stills"
    folder.mkdir()
    for index, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((H, W, 3), 40 + 20 * index, np.uint8))
    return folder


def test_an_image_folder_plays_in_natural_order_at_the_configured_rate(tmp_path):
    folder = _folder(tmp_path, ["img1.png", "img2.png", "img10.png"])  # written in this order
    config = CameraConfig(id="c1", kind="opencv", source=str(folder), resolution=(W, H), fps=20)
    sources = build_sources(SiteConfig(cameras=[config, {"id": "c2", "kind": "simulated"}]))
    camera = sources["c1"]
    camera.open()
    started = time.monotonic()
    frames = [camera.read(1.0) for _ in range(3)]
    elapsed = time.monotonic() - started
    assert [int(f.image.mean()) for f in frames] == [40, 60, 80]  # img1, img2, img10
    assert elapsed >= 2 / 20 * 0.9
    with pytest.raises(SourceError, match="end of image folder"):
        camera.read(1.0)
    camera.close()
    looped = ImageFolderCamera(config.model_copy(update={"loop": True}))
    looped.open()
    assert [int(looped.read(1.0).image.mean()) for _ in range(4)] == [40, 60, 80, 40]


def test_an_unreadable_image_in_a_folder_is_a_clear_error(tmp_path):
    folder = _folder(tmp_path, ["a.png"])
    (folder / "b.png").write_bytes(b"not a png")
    camera = ImageFolderCamera(CameraConfig(id="c1", kind="opencv", source=str(folder), resolution=(W, H)))
    camera.open()
    camera.read(1.0)
    with pytest.raises(SourceError, match=r"b\.png: not a readable image"):
        camera.read(1.0)


@pytest.fixture
def http_server(video):
    """The test video served over HTTP on loopback, as an IP camera's stream URL would be."""
    handler = functools.partial(_QuietHandler, directory=str(video.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_a_network_stream_url_is_read_through_ffmpeg(http_server):
    camera = OpenCVCamera(CameraConfig(id="c2", kind="opencv", source=http_server, resolution=(W, H)))
    camera.open()
    try:
        frames = [camera.read(2.0) for _ in range(10)]
        with pytest.raises(SourceError, match=r"no frame \(disconnected\?\)"):
            camera.read(2.0)
    finally:
        camera.close()
    assert [round(f.image.mean() / 10) for f in frames] == [round((30 + 20 * i) / 10) for i in range(10)]
