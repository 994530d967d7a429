"""One thread per camera: read frames, hand them over without ever blocking on the writer.

Each frame goes to the live path's one-frame "newest" slot, when the camera has one, and to the
recorder's queue: the camera is opened once for both. A full queue drops the frame and counts it
(capture must keep the camera's pace); a failing or stalled camera is closed and reopened with
exponential back-off while the other camera keeps going.
Everything that happens to the camera is recorded in its `CameraHealth`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading

from edge.capture.camera_health import CameraHealth
from edge.capture.newest import NewestFrameSlot
from edge.config import RecorderConfig
from edge.sources.base import Frame, FrameSource, SourceError

log = logging.getLogger(__name__)


class CaptureWorker(threading.Thread):
    def __init__(
        self,
        source: FrameSource,
        frames: queue.Queue[Frame],
        settings: RecorderConfig,
        stop: threading.Event,
        newest: NewestFrameSlot | None = None,
    ) -> None:
        super().__init__(name=f"capture-{source.camera_id}", daemon=True)
        self.source = source
        self.frames = frames
        self.settings = settings
        self.stop = stop
        self.newest = newest
        self.health = CameraHealth(source.camera_id)

    def run(self) -> None:
        backoff = self.settings.reconnect_initial_s
        is_open = False
        ever_opened = False
        try:
            while not self.stop.is_set():
                if not is_open:
                    try:
                        self._guarded(self.source.open)
                    except SourceError as exc:
                        self._failed(exc)
                        self.stop.wait(backoff)
                        backoff = min(backoff * 2, self.settings.reconnect_max_s)
                        continue
                    self.health.opened(reconnect=ever_opened)
                    if ever_opened:
                        log.info("camera %s reconnected", self.source.camera_id)
                    is_open = ever_opened = True
                try:
                    frame = self._guarded(self.source.read, self.settings.stall_timeout_s)
                except SourceError as exc:
                    self._failed(exc)
                    with contextlib.suppress(SourceError):
                        self._guarded(self.source.close)
                    is_open = False
                    continue
                backoff = self.settings.reconnect_initial_s
                if self.newest is not None:
                    self.newest.put(frame)
                try:
                    self.frames.put_nowait(frame)
                    dropped = False
                except queue.Full:
                    dropped = True
                self.health.frame(frame.capture_utc, dropped)
        finally:
            with contextlib.suppress(SourceError):
                self._guarded(self.source.close)
            self.health.stopped()

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
        log.warning("camera %s: %s", self.source.camera_id, exc)
