"""A folder of images as a camera: frames in natural order of their names, delivered at the
configured frame rate, optionally looped. For replaying stills exported from another system."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from edge.config import CameraConfig
from edge.sources.base import EndOfStream, Frame, FrameSource, InvalidFrame, SourceError
from edge.sources.image_files import ImageFileError, image_files, read_image


class ImageFolderCamera(FrameSource):
    def __init__(self, camera: CameraConfig) -> None:
        self.camera_id = camera.id
        self.camera = camera
        self._files: list[Path] = []
        self._index = 0
        self._seq = 0
        self._next_ns = 0

    def open(self) -> None:
        folder = Path(self.camera.source)
        if not folder.is_dir():
            raise SourceError(f"camera {self.camera_id}: {folder}: not a folder")
        self._files = image_files(folder)
        if not self._files:
            raise SourceError(f"camera {self.camera_id}: {folder}: no image files")
        self._index = 0
        self._next_ns = time.monotonic_ns()

    def read(self, timeout_s: float) -> Frame:
        if not self._files:
            raise SourceError(f"camera {self.camera_id} is not open")
        if self._index >= len(self._files):
            if not self.camera.loop:
                raise EndOfStream(f"camera {self.camera_id}: end of image folder {self.camera.source}")
            self._index = 0
        wait_s = (self._next_ns - time.monotonic_ns()) / 1e9
        if wait_s > 0:
            time.sleep(min(wait_s, timeout_s))
        self._next_ns += round(1e9 / self.camera.fps)
        path = self._files[self._index]
        self._index += 1
        try:
            image = read_image(path)
        except ImageFileError as error:
            raise SourceError(f"camera {self.camera_id}: {error}") from None
        height, width = image.shape[:2]
        if (width, height) != tuple(self.camera.resolution):
            expected = "x".join(map(str, self.camera.resolution))
            raise InvalidFrame(
                f"camera {self.camera_id}: {path.name} is {width}x{height}, configured {expected}"
            )
        frame = Frame(self.camera_id, self._seq, image, time.monotonic_ns(), datetime.now(UTC))
        self._seq += 1
        return frame

    def close(self) -> None:
        self._files = []
