"""OpenCV cameras: a USB device index, an RTSP/HTTP URL, a GStreamer pipeline or a video file.

A video file plays at its own frame rate, like a camera would deliver it, so recordings made from a
file have realistic timestamps. Frames of the wrong size are refused rather than silently resized:
a camera delivering another resolution than configured is a commissioning error worth seeing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import cv2

from edge.config import CameraConfig
from edge.sources.base import Frame, FrameSource, SourceError

URL_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://")


def _has_gstreamer() -> bool:
    return any(
        line.strip().startswith("GStreamer:") and "YES" in line
        for line in cv2.getBuildInformation().splitlines()
    )


class OpenCVCamera(FrameSource):
    def __init__(self, camera: CameraConfig) -> None:
        self.camera_id = camera.id
        self.camera = camera
        self._capture: cv2.VideoCapture | None = None
        self._seq = 0
        self._period_ns = 0
        self._next_ns = 0

    @property
    def _is_file(self) -> bool:
        return Path(self.camera.source).is_file()

    def _open_capture(self) -> cv2.VideoCapture:
        source = self.camera.source.strip()
        if not source:
            raise SourceError(
                f"camera {self.camera_id}: 'source' is empty (device index, URL, pipeline or file)"
            )
        if source.isdigit():
            capture = cv2.VideoCapture(int(source))
            width, height = self.camera.resolution
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            capture.set(cv2.CAP_PROP_FPS, self.camera.fps)
            return capture
        if "!" in source:
            if not _has_gstreamer():
                raise SourceError(
                    f"camera {self.camera_id}: a GStreamer pipeline needs OpenCV built with GStreamer; "
                    "this OpenCV has none (install the distribution's opencv with GStreamer)"
                )
            return cv2.VideoCapture(source, cv2.CAP_GSTREAMER)
        if source.startswith(URL_PREFIXES):
            return cv2.VideoCapture(source, cv2.CAP_FFMPEG)
        if not Path(source).is_file():
            raise SourceError(f"camera {self.camera_id}: {source}: no such video file, device or URL")
        return cv2.VideoCapture(source)

    def open(self) -> None:
        capture = self._open_capture()
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"camera {self.camera_id}: cannot open {self.camera.source}")
        self._capture = capture
        file_fps = capture.get(cv2.CAP_PROP_FPS) if self._is_file else 0.0
        self._period_ns = round(1e9 / file_fps) if file_fps and file_fps > 0 else 0
        self._next_ns = time.monotonic_ns()

    def read(self, timeout_s: float) -> Frame:
        if self._capture is None:
            raise SourceError(f"camera {self.camera_id} is not open")
        if self._period_ns:  # a file: deliver at its own pace
            wait_s = (self._next_ns - time.monotonic_ns()) / 1e9
            if wait_s > 0:
                time.sleep(min(wait_s, timeout_s))
            self._next_ns += self._period_ns
        ok, bgr = self._capture.read()
        if (not ok or bgr is None) and self._is_file and self.camera.loop:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._capture.read()
        if not ok or bgr is None:
            what = "end of video file" if self._is_file else "no frame (disconnected?)"
            raise SourceError(f"camera {self.camera_id}: {what}: {self.camera.source}")
        height, width = bgr.shape[:2]
        if (width, height) != tuple(self.camera.resolution):
            expected = "x".join(map(str, self.camera.resolution))
            raise SourceError(f"camera {self.camera_id}: frame is {width}x{height}, config says {expected}")
        frame = Frame(
            camera=self.camera_id,
            seq=self._seq,
            image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
            capture_ns=time.monotonic_ns(),
            capture_utc=datetime.now(UTC),
        )
        self._seq += 1
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
