"""Foreground split into objects where objects touch, OpenCV's way: the cores of the foreground
(pixels at least CORE of their component's largest distance from the background) seed the objects,
and every foreground pixel joins its nearest core. Objects that merely touch separate; heavily
overlapping ones stay one. Used by the object-level decision and by one-object training samples.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

CORE = 0.5  # of a component's largest distance to the background: its cores


def split_touching(foreground: np.ndarray) -> np.ndarray:
    """Object labels (int32, 0 = background) of a boolean foreground mask."""
    mask = foreground.astype(np.uint8)
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    count, components = cv2.connectedComponents(mask, connectivity=8)
    peaks = np.asarray(ndimage.maximum(distance, components, np.arange(count)), np.float32)
    cores = (mask > 0) & (distance >= CORE * peaks[components])
    _, seeds = cv2.connectedComponents(cores.astype(np.uint8), connectivity=8)
    # the nearest core of every pixel: the label of the nearest zero of "not a core"
    _, nearest = cv2.distanceTransformWithLabels(
        (~cores).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    core_at = np.zeros(int(nearest.max()) + 1, np.int32)
    core_at[nearest[cores]] = seeds[cores]  # distanceTransformWithLabels numbers the core pixels
    return np.where(mask > 0, core_at[nearest], 0).astype(np.int32)
