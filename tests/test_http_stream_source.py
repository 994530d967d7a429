"""An IP camera serving MJPEG over HTTP (multipart/x-mixed-replace), served on loopback."""

import http.server
import threading
import time

import cv2
import numpy as np
import pytest

from edge.config import CameraConfig
from edge.sources.base import SourceStalled
from edge.sources.opencv_source import OpenCVCamera

W, H, FPS = 96, 64, 20


class MjpegCamera(http.server.ThreadingHTTPServer):
    """Distinct JPEG frames every 1/FPS s to each client until `paused` is set (a hung camera that
    keeps its connection open)."""

    def __init__(self, images: list[np.ndarray]) -> None:
        super().__init__(("127.0.0.1", 0), _MjpegHandler)
        bgr = [cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for image in images]
        self.jpegs = [cv2.imencode(".jpg", image)[1].tobytes() for image in bgr]
        self.paused = threading.Event()
        self.closing = threading.Event()


class _MjpegHandler(http.server.BaseHTTPRequestHandler):
    server: MjpegCamera

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        number = 0
        while not self.server.closing.is_set() and number < 40 * FPS:  # bounded: 40 s at most
            if self.server.paused.is_set():
                time.sleep(0.01)
                continue
            jpeg = self.server.jpegs[number % len(self.server.jpegs)]
            header = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            try:
                self.wfile.write(header.encode() + jpeg + b"\r\n")
                self.wfile.flush()
            except OSError:
                return
            number += 1
            time.sleep(1 / FPS)


@pytest.fixture
def mjpeg_camera():
    images = [
        cv2.resize(
            np.random.default_rng(index).integers(20, 236, (4, 6, 3)).astype(np.uint8), (W, H),
            interpolation=cv2.INTER_CUBIC,
        )
        for index in range(8)
    ]  # fmt: skip
    server = MjpegCamera(images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/video.mjpg", server, images
    server.closing.set()
    server.shutdown()
    server.server_close()


def test_an_mjpeg_camera_delivers_its_frames_stamped_on_arrival_and_stalls_when_silent(mjpeg_camera):
    url, server, images = mjpeg_camera
    config = CameraConfig(id="c1", kind="opencv", source=url, resolution=(W, H))
    camera = OpenCVCamera(config, read_timeout_s=0.5)
    camera.open()
    try:
        frames = [camera.read(0.5) for _ in range(12)]
        server.paused.set()
        with pytest.raises(SourceStalled, match="camera c1: no frame within"):
            for _ in range(FPS):
                camera.read(0.5)
    finally:
        camera.close()
    errors = [min(np.abs(f.image.astype(int) - image.astype(int)).mean() for image in images) for f in frames]
    assert max(errors) < 4
    # OpenCV numbers MJPEG frames as if they came at 25 fps; the camera sends 20: real spacing is kept
    spacing_ms = np.diff([f.capture_ns for f in frames[2:]]) / 1e6
    assert np.median(spacing_ms) == pytest.approx(1000 / FPS, abs=8)
