"""Pre-processing (paper, sec. 4.1): background removal by a per-sequence median background.

C1 and C2 see different belts and light, so a classifier fed whole frames learns the background
instead of the objects. Each sequence gets a background estimate, the pixel-wise median of its
grayscale frames; pixels far from it are foreground. The foreground-only image keeps the frame's
class, the background-only image becomes the third class, `background`.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class ForegroundSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(default=30.0, gt=0, description="grey-level distance from the background")
    blur_px: int = Field(default=9, ge=0, description="Gaussian blur before differencing (belt texture)")
    open_px: int = Field(default=3, ge=0, description="morphological opening: removes specks")
    close_px: int = Field(default=9, ge=0, description="morphological closing: fills objects")
    max_background_frames: int = Field(default=60, ge=3, description="frames sampled for the median")


def _smooth(gray: np.ndarray, blur_px: int) -> np.ndarray:
    if blur_px <= 1:
        return gray.astype(np.float32)
    kernel = blur_px | 1
    return cv2.GaussianBlur(gray.astype(np.float32), (kernel, kernel), 0)


def median_background(frames: list[np.ndarray], settings: ForegroundSettings) -> np.ndarray:
    """Pixel-wise median of (up to max_background_frames evenly spaced) grayscale frames."""
    step = max(1, len(frames) // settings.max_background_frames)
    grays = np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames[::step]])
    return _smooth(np.median(grays, axis=0), settings.blur_px)


def foreground_mask(frame: np.ndarray, background: np.ndarray, settings: ForegroundSettings) -> np.ndarray:
    """Boolean H x W: where the frame differs from its sequence's background."""
    gray = _smooth(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), settings.blur_px)
    mask = (np.abs(gray - background) > settings.threshold).astype(np.uint8)
    if settings.open_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((settings.open_px,) * 2, np.uint8))
    if settings.close_px > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (settings.close_px,) * 2)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    return mask.astype(bool)


def split_foreground(frame: np.ndarray, foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(foreground-only image, background-only image), the other part blacked out."""
    keep = foreground[..., None]
    return np.where(keep, frame, 0).astype(np.uint8), np.where(keep, 0, frame).astype(np.uint8)
