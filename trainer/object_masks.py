"""The object-level decision (tracker issue 18's candidate): objects on a belt are discrete things,
so instead of thresholding each pixel, each foreground object (split where objects touch) gets one
class from the maps inside it, by the object check's own rule (`object_score`: the highest threshold
at which half of its pixels are still called illegal); objects are split where they touch
(`trainer.touching.split_touching`).
"""

from __future__ import annotations

import numpy as np

from trainer.object_check import object_score


def object_scores(before: np.ndarray, after: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Per object label (index 0 unused): the threshold up to which the whole object is illegal."""
    flat = objects.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(int(flat.max()) + 2))
    scores = np.full(int(flat.max()) + 1, -1.0)
    for label in range(1, len(scores)):
        pixels = order[bounds[label] : bounds[label + 1]]
        if len(pixels):
            scores[label] = object_score(before, after, pixels)
    return scores
