"""Image files: decoded to RGB, encoded for the store, listed in natural order.

Cameras (the folder source), the recorder, import and calibration all read and write images the same
way; they live here, at the bottom, so that no source has to import the store to read a picture.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from natsort import natsorted

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class ImageFileError(ValueError):
    """An image that cannot be decoded or encoded; the message names the file."""


def encode_image(image: np.ndarray, image_format: str, jpeg_quality: int = 90) -> bytes:
    """RGB uint8 (or a uint8 label map) to JPEG/PNG bytes."""
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        if image_format == "jpg"
        else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    ok, buffer = cv2.imencode(f".{image_format}", pixels, params)
    if not ok:
        raise ImageFileError(f"cannot encode image as {image_format}")
    return buffer.tobytes()


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to RGB uint8; raises ImageFileError naming the file."""
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise ImageFileError(f"{path}: file not found")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageFileError(f"{path}: not a readable image (corrupt or unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_label_map(path: Path) -> np.ndarray:
    """Decode a single-channel PNG label map as stored, without colour conversion."""
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageFileError(f"{path}: not a readable PNG")
    return image


def image_files(folder: Path) -> list[Path]:
    """The images in a folder in natural order of their names (img2 before img10), as cameras and
    people number their files."""
    return natsorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name
    )
