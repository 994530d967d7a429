"""OpenCV cameras: a USB device index, an RTSP/HTTP URL, a GStreamer pipeline or a video file.

A video file plays at its own frame rate, like a camera would deliver it, so recordings made from a
file have realistic timestamps. Frames of the wrong size are refused rather than silently resized:
a camera delivering another resolution than configured is a commissioning error worth seeing
(`health.CheckedSource` refuses them for every source).

RTSP streams are opened for low latency (no FFmpeg buffering, short probing: frames buffered while
probing would be seconds old), and network streams with open and read timeouts, so a camera that
goes silent is reported as stalled within the recorder's stall timeout instead of blocking its
thread for FFmpeg's default 30 s. Frames carrying the stream's own timestamps are put on the host
clock by `DeviceClock`, which keeps the camera's frame spacing.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2

from edge.config import CameraConfig
from edge.sources.base import EndOfStream, Frame, FrameSource, SourceError, SourceStalled
from edge.sources.clock import DeviceClock, utc_from_monotonic

URL_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://")
LOW_LATENCY_OPTIONS = "fflags;nobuffer|flags;low_delay|analyzeduration;100000|probesize;32768"
# OpenCV reads FFmpeg options from this environment variable when a capture opens: one process-wide
# setting, so opening two cameras with different options must not interleave.
_FFMPEG_OPTIONS_LOCK = threading.Lock()


def _has_gstreamer() -> bool:
    return any(
        line.strip().startswith("GStreamer:") and "YES" in line
        for line in cv2.getBuildInformation().splitlines()
    )


class OpenCVCamera(FrameSource):
    def __init__(self, camera: CameraConfig, read_timeout_s: float = 2.0) -> None:
        self.camera_id = camera.id
        self.camera = camera
        self.read_timeout_s = read_timeout_s
        self._capture: cv2.VideoCapture | None = None
        self._seq = 0
        self._period_ns = 0
        self._next_ns = 0
        self._clock = DeviceClock()
        self._last_stream_ms = -1.0
        self._is_file = self._has_stream_timestamps = False

    def _kind_of_source(self) -> None:
        """Decided once per open, not per frame. RTSP carries the camera's own RTP timestamps and files
        their presentation times; OpenCV makes up times for MJPEG over HTTP (25 fps whatever the
        camera sends) and USB cameras, which are therefore stamped on arrival."""
        self._is_file = Path(self.camera.source).is_file()
        self._has_stream_timestamps = self.camera.source.startswith(("rtsp://", "rtsps://")) or self._is_file

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
                    "this OpenCV has none: use kind: gstreamer (beltcam drives GStreamer itself)"
                )
            return cv2.VideoCapture(source, cv2.CAP_GSTREAMER)
        if source.startswith(URL_PREFIXES):
            return self._open_stream(source)
        if not Path(source).is_file():
            raise SourceError(f"camera {self.camera_id}: {source}: no such video file, device or URL")
        return cv2.VideoCapture(source)

    def _open_stream(self, url: str) -> cv2.VideoCapture:
        options = ""  # HTTP may serve a file: FFmpeg's buffering keeps its first frame
        if url.startswith(("rtsp://", "rtsps://")):
            options = f"rtsp_transport;{self.camera.rtsp_transport}|{LOW_LATENCY_OPTIONS}"
        timeouts = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            round(max(5.0, 2 * self.read_timeout_s) * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            round(self.read_timeout_s * 1000),
        ]
        with _FFMPEG_OPTIONS_LOCK:
            previous = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options
            try:
                return cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts)
            finally:
                if previous is None:
                    del os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"]
                else:
                    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = previous

    def open(self) -> None:
        self._kind_of_source()
        capture = self._open_capture()
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"camera {self.camera_id}: cannot open {self.camera.source}")
        self._capture = capture
        file_fps = capture.get(cv2.CAP_PROP_FPS) if self._is_file else 0.0
        self._period_ns = round(1e9 / file_fps) if file_fps and file_fps > 0 else 0
        self._next_ns = time.monotonic_ns()
        self._clock.reset()
        self._last_stream_ms = -1.0

    def read(self, timeout_s: float) -> Frame:
        if self._capture is None:
            raise SourceError(f"camera {self.camera_id} is not open")
        if self._period_ns:  # a file: deliver at its own pace
            wait_s = (self._next_ns - time.monotonic_ns()) / 1e9
            if wait_s > 0:
                time.sleep(min(wait_s, timeout_s))
            self._next_ns += self._period_ns
        asked_ns = time.monotonic_ns()
        ok, bgr = self._capture.read()
        if (not ok or bgr is None) and self._is_file and self.camera.loop:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._capture.read()
        arrival_ns = time.monotonic_ns()
        if not ok or bgr is None:
            if self._is_file:
                raise EndOfStream(f"camera {self.camera_id}: end of video file: {self.camera.source}")
            waited_s = (arrival_ns - asked_ns) / 1e9
            if waited_s >= 0.9 * self.read_timeout_s:
                raise SourceStalled(f"camera {self.camera_id}: no frame within {waited_s:.1f} s")
            raise SourceError(f"camera {self.camera_id}: no frame (disconnected?): {self.camera.source}")
        capture_ns = self._capture_time(arrival_ns)
        frame = Frame(
            camera=self.camera_id,
            seq=self._seq,
            image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
            capture_ns=capture_ns,
            capture_utc=utc_from_monotonic(capture_ns),
        )
        self._seq += 1
        return frame

    def _capture_time(self, arrival_ns: int) -> int:
        """The stream's own timestamp on the host clock when it has one, else the arrival time."""
        if not self._has_stream_timestamps:
            return arrival_ns
        stream_ms = self._capture.get(cv2.CAP_PROP_POS_MSEC)
        if stream_ms <= self._last_stream_ms:  # no timestamps, or the stream restarted
            self._clock.reset()
            self._last_stream_ms = -1.0
            return arrival_ns
        self._last_stream_ms = stream_ms
        return self._clock.to_host(round(stream_ms * 1e6), arrival_ns)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
