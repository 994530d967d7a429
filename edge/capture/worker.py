"""One thread per camera: read frames, hand them over without ever blocking on the writer.

Each frame goes to the live path's one-frame "newest" slot, when the camera has one, and to the
recorder's queue: the camera is opened once for both. A full queue drops the frame and counts it
(capture must keep the camera's pace); a failing, stalled, black or frozen camera is closed and
reopened with exponential back-off and jitter (tenacity) while the other camera keeps going, and a
file or recording that ends (`EndOfStream`) ends that camera's capture.
Everything that happens to the camera is recorded in its `CameraHealth`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time

from tenacity import Retrying, retry_if_exception_type, retry_if_not_exception_type, wait_exponential_jitter

from edge.capture.camera_health import CameraHealth
from edge.capture.newest import FrameSink
from edge.config import RecorderConfig
from edge.sources.base import EndOfStream, Frame, FrameSource, SourceError

log = logging.getLogger(__name__)
HEALTHY_S = 10.0  # delivering this long after an open, a camera has recovered: back-off starts afresh


class CaptureWorker(threading.Thread):
    def __init__(
        self,
        source: FrameSource,
        frames: queue.Queue[Frame],
        settings: RecorderConfig,
        stop: threading.Event,
        newest: FrameSink | None = None,
    ) -> None:
        super().__init__(name=f"capture-{source.camera_id}", daemon=True)
        self.source = source
        self.frames = frames
        self.settings = settings
        self.stop = stop
        self.newest = newest
        self.health = CameraHealth(source.camera_id)
        self._ever_opened = False

    def run(self) -> None:
        ended = False
        try:
            while not self.stop.is_set():
                retrying = Retrying(
                    wait=wait_exponential_jitter(
                        multiplier=self.settings.reconnect_initial_s,
                        max=self.settings.reconnect_max_s,
                        jitter=self.settings.reconnect_initial_s,
                    ),
                    retry=retry_if_exception_type(SourceError) & retry_if_not_exception_type(EndOfStream),
                    sleep=self.stop.wait,  # a stop request ends the back-off at once
                    reraise=True,
                )
                retrying(self._capture)
        except EndOfStream as end:
            ended = True
            log.info("%s: that camera's recording ends", end)
            self.health.stopped(str(end))
        finally:
            with contextlib.suppress(SourceError):
                self._guarded(self.source.close)
            if not ended:
                self.health.stopped()

    def _capture(self) -> None:
        """Open the camera and hand its frames over until told to stop. Any failure (a failed open,
        a stall, an invalid or black or frozen frame, a lost stream) closes it and raises, and the
        caller backs off before the next try; a camera that had been delivering for `HEALTHY_S`
        returns instead, so that a one-off glitch is retried at once and the back-off starts afresh."""
        if self.stop.is_set():
            return
        try:
            self._guarded(self.source.open)
        except SourceError as exc:
            self._failed(exc)
            raise
        self.health.opened(reconnect=self._ever_opened)
        if self._ever_opened:
            log.info("camera %s reconnected", self.source.camera_id)
        self._ever_opened = True
        opened = time.monotonic()
        while not self.stop.is_set():
            try:
                frame = self._guarded(self.source.read, self.settings.stall_timeout_s)
            except SourceError as exc:
                if not isinstance(exc, EndOfStream):
                    self._failed(exc)
                with contextlib.suppress(SourceError):
                    self._guarded(self.source.close)
                if time.monotonic() - opened >= HEALTHY_S and not isinstance(exc, EndOfStream):
                    return
                raise
            if self.newest is not None:
                self.newest.put(frame)
            try:
                self.frames.put_nowait(frame)
                dropped = False
            except queue.Full:
                dropped = True
            self.health.frame(frame.capture_utc, dropped)

    def _guarded(self, action, *args):
        """A driver's own exception (a bug, an SDK error we did not foresee) becomes a SourceError:
        it is counted and the camera reopened, instead of ending this camera's thread for good."""
        try:
            return action(*args)
        except SourceError:
            raise
        except Exception as exc:
            log.exception("camera %s: unexpected error from its source", self.source.camera_id)
            raise SourceError(
                f"camera {self.source.camera_id}: unexpected {type(exc).__name__}: {exc}"
            ) from exc

    def _failed(self, exc: SourceError) -> None:
        self.health.failed(exc)
        log.warning("%s", exc)  # a SourceError names its camera already
