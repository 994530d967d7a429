"""The one-frame "newest" slot between a capture thread and the live path.

The live path must act on what the belt shows now, not on a backlog: the capture thread overwrites
the slot with every frame and the reader takes whatever is newest when it is ready. A frame that was
overwritten before anyone took it is counted as skipped, so a slow segmenter shows up as a number,
never as latency, and never slows capture or recording down.
"""

from __future__ import annotations

import threading
from typing import Protocol

from edge.sources.base import Frame


class FrameSink(Protocol):
    """Whatever a capture worker hands each frame to besides the recorder: the live path's slot, or
    the panel's live view for C2. `put` must return at once."""

    def put(self, frame: Frame) -> None: ...


class NewestFrameSlot:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._frame: Frame | None = None
        self.offered = 0  # frames the capture thread put in
        self.skipped = 0  # frames overwritten before they were taken

    def put(self, frame: Frame) -> None:
        """Called by the capture thread for every frame; never blocks for long."""
        with self._changed:
            if self._frame is not None:
                self.skipped += 1
            self._frame = frame
            self.offered += 1
            self._changed.notify_all()

    def take(self, timeout_s: float) -> Frame | None:
        """The newest frame not taken yet, waiting up to `timeout_s` for one; None when none came."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._frame is not None, timeout_s):
                return None
            frame, self._frame = self._frame, None
            return frame
