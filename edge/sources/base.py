"""The interface every camera source implements, simulated or real.

The recorder and the live path only ever see `FrameSource`, so a plant can swap a RealSense for an
RTSP camera, and tests can drive the whole agent with the simulated belt, without touching them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from edge.config import redact_credentials


class SourceError(RuntimeError):
    """The camera failed (disconnected, unreadable); the caller reconnects with back-off. The message
    is shown, logged and stored: a camera URL's password in it is replaced by `***`."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_credentials(message))


class EndOfStream(SourceError):
    """A video file, image folder or camera recording has no more frames and does not loop: that
    camera is done (its recording ends), nothing to reconnect to."""


class SourceStalled(SourceError):
    """No frame arrived within the stall timeout."""


class InvalidFrame(SourceError):
    """A frame arrived but cannot be image data: wrong size or kind, all black, a frozen stream."""


@dataclass(frozen=True)
class ObjectTruth:
    """Where one simulated object is, in belt millimetres (x along travel, y across)."""

    object_id: int
    cls: str  # "illegal" or "legal"
    material: str
    x_mm: float
    y_mm: float
    extent_mm: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth only a simulator can know: the label map and every object in view."""

    label_map: np.ndarray  # uint8 H x W: 0 background, 1 illegal, 2 legal
    objects: tuple[ObjectTruth, ...]


@dataclass(frozen=True)
class Frame:
    camera: str
    seq: int
    image: np.ndarray  # uint8 RGB H x W x 3
    capture_ns: int  # time.monotonic_ns() on this host's time base
    capture_utc: datetime
    truth: FrameTruth | None = field(default=None, repr=False)
    depth_mm: np.ndarray | None = field(default=None, repr=False)  # uint16 H x W, aligned to image; 0: none


class FrameSource(abc.ABC):
    """A camera: open it, read frames in order, close it. Reads may raise SourceError."""

    camera_id: str

    @abc.abstractmethod
    def open(self) -> None:
        """Connect to the device; raises SourceError when it cannot."""

    @abc.abstractmethod
    def read(self, timeout_s: float) -> Frame:
        """Block until the next frame; SourceStalled after timeout_s, SourceError on failure."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
