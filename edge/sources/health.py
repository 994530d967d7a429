"""Frame validation for every source: a camera that delivers frames is not necessarily healthy.

Frames of another size than configured (a commissioning error worth seeing, never resized away),
all-black frames (lens covered, lamp dead, exposure 0) and frozen streams (a hung driver repeating
its last buffer with fresh timestamps) look like data but would poison the store and the training.
`CheckedSource` turns them into `InvalidFrame` errors, so the recorder counts them and reconnects the
camera with back-off like any other failure, while the other camera keeps going.
"""

from __future__ import annotations

import zlib

import numpy as np

from edge.sources.base import Frame, FrameSource, InvalidFrame

BLACK_LEVEL = 8  # no pixel brighter than this: nothing is being imaged
FROZEN_AFTER = 5  # this many identical frames in a row: the stream is frozen


def _sampled_rows(image: np.ndarray) -> np.ndarray:
    """Every 8th row, whole (a view, no copy): both checks run on the capture thread for every frame,
    and a covered lens is dark everywhere while sensor noise makes two live frames differ almost
    everywhere, so a sample decides both (benchmarks/sources.py has the cost)."""
    return image[::8]


def _fingerprint(rows: np.ndarray) -> int:
    """CRC-32 of the sampled rows: a frozen stream repeats its buffer exactly, and a chance match
    would have to happen on FROZEN_AFTER - 1 frames in a row to raise a false alarm."""
    checksum = 0
    for row in rows:
        checksum = zlib.crc32(np.ascontiguousarray(row), checksum)  # no copy unless a strided view
    return checksum


class CheckedSource(FrameSource):
    def __init__(
        self, source: FrameSource, resolution: tuple[int, int], frozen_after: int = FROZEN_AFTER
    ) -> None:
        self.source = source
        self.camera_id = source.camera_id
        self.resolution = tuple(resolution)
        self.frozen_after = frozen_after
        self._last: int | None = None
        self._repeats = 0

    def open(self) -> None:
        """The frozen-stream count survives a reopen: a driver still repeating its buffer after the
        reconnect is refused from its first frame, instead of storing FROZEN_AFTER - 1 more."""
        self.source.open()

    def close(self) -> None:
        self.source.close()

    def read(self, timeout_s: float) -> Frame:
        frame = self.source.read(timeout_s)
        image = frame.image
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InvalidFrame(
                f"camera {self.camera_id}: frame {frame.seq} is {image.dtype} {image.shape}, "
                "expected RGB uint8"
            )
        height, width = image.shape[:2]
        if (width, height) != self.resolution:
            raise InvalidFrame(
                f"camera {self.camera_id}: frame {frame.seq} is {width}x{height}, "
                f"configured {self.resolution[0]}x{self.resolution[1]}"
            )
        rows = _sampled_rows(image)
        if int(rows.max()) <= BLACK_LEVEL:
            raise InvalidFrame(
                f"camera {self.camera_id}: frame {frame.seq} is all black "
                "(lens covered, light off or exposure 0)"
            )
        fingerprint = _fingerprint(rows)
        self._repeats = self._repeats + 1 if fingerprint == self._last else 0
        self._last = fingerprint
        if self._repeats + 1 >= self.frozen_after:
            raise InvalidFrame(
                f"camera {self.camera_id}: frozen: the last {self._repeats + 1} frames are identical"
            )
        return frame
