"""What the panel shows of the belt right now: each camera's newest frame (C1's with its label map)
and the agent's counters, handed over in-process.

The panel must never slow the live path down, so publishing keeps a reference and wakes the viewers;
drawing the mask overlay and encoding JPEG happen on the viewers' threads, and only while someone
watches. The panel reads this hub and the store, never the live path itself (DESIGN.md, "Inside edge/").
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.sources.base import Frame

RATE_WINDOW = 30  # frames over which a camera's frame rate is measured


@dataclass(frozen=True)
class ViewFrame:
    sequence: int  # per camera, counts up from 1: a viewer waits for a larger one
    image: np.ndarray  # RGB, as captured
    labels: np.ndarray | None  # C1's label map (0 background, 1 illegal, 2 legal) when a model is live
    capture_ns: int


class CameraFeed:
    """A frame sink for one camera (what a capture worker hands every frame to)."""

    def __init__(self, view: LiveView, camera: str) -> None:
        self.view = view
        self.camera = camera

    def put(self, frame: Frame) -> None:
        self.view.publish(self.camera, frame.image, None, frame.capture_ns)


class LiveView:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._frames: dict[str, ViewFrame] = {}
        self._arrivals: dict[str, deque[float]] = {}
        self._status: Callable[[], dict] = dict

    def publish(self, camera: str, image: np.ndarray, labels: np.ndarray | None, capture_ns: int) -> None:
        with self._changed:
            previous = self._frames.get(camera)
            sequence = 1 if previous is None else previous.sequence + 1
            self._frames[camera] = ViewFrame(sequence, image, labels, capture_ns)
            self._arrivals.setdefault(camera, deque(maxlen=RATE_WINDOW)).append(time.monotonic())
            self._changed.notify_all()

    def feed(self, camera: str) -> CameraFeed:
        return CameraFeed(self, camera)

    def newest(self, camera: str) -> ViewFrame | None:
        with self._changed:
            return self._frames.get(camera)

    def wait_newer(self, camera: str, after: int, timeout_s: float) -> ViewFrame | None:
        """The newest frame of `camera` with a sequence above `after`, waiting up to `timeout_s`."""
        with self._changed:
            self._changed.wait_for(
                lambda: (found := self._frames.get(camera)) is not None and found.sequence > after, timeout_s
            )
            found = self._frames.get(camera)
            return found if found is not None and found.sequence > after else None

    def frame_rate(self, camera: str) -> float | None:
        """Frames per second over the last few frames; None before two frames or after a 2 s silence."""
        with self._changed:
            arrivals = list(self._arrivals.get(camera, ()))
        if len(arrivals) < 2 or time.monotonic() - arrivals[-1] > 2.0:
            return None
        return (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-6)

    def set_status(self, status: Callable[[], dict]) -> None:
        """The agent's counters (its scoreboard), read when a viewer asks."""
        self._status = status

    def status(self) -> dict:
        return self._status()
