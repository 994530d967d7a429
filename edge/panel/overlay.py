"""Pictures the panel sends: a frame with its label map drawn over it (illegal red, legal green),
as JPEG. Made on the viewer's thread, only for frames somebody looks at."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

COLOURS = {1: (230, 40, 40), 2: (40, 200, 60)}  # RGB: illegal, legal
OPACITY = 0.45
JPEG_QUALITY = 80


def overlay(image: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    if labels is None:
        return image
    if labels.shape != image.shape[:2]:
        labels = cv2.resize(labels, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
    drawn = image.copy()
    for label, colour in COLOURS.items():
        where = labels == label
        if where.any():
            drawn[where] = (drawn[where] * (1 - OPACITY) + np.array(colour) * OPACITY).astype(np.uint8)
    return drawn


def jpeg(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError("the frame could not be encoded as JPEG")
    return encoded.tobytes()


def file_as_jpeg(path: Path) -> bytes | None:
    """A stored frame for the browser: JPEG files as they are, PNG re-encoded; None when unreadable."""
    if path.suffix.lower() in (".jpg", ".jpeg"):
        try:
            return path.read_bytes()
        except OSError:
            return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else jpeg(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
