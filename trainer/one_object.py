"""Training samples of one object each (tracker issue 18's other candidate against the C1-density cue).

A C1 frame holds about twice C2's objects, so a classifier shown whole frames can tell `before` from
`after` by how much of the frame is foreground, and never learn what a removed object looks like
(benchmarks/README.md, "the classifier's cues"). Shown one object at a time, it has only the object
to go by: an object type found only in C1 frames is `before` every time, one found in both cameras is
`before` half the time, so the `before` map still ranks removed objects above kept ones. The object
is one foreground object at frame t (split where objects touch, as the object-level decision does),
followed into t-1 and t+1 by the stored flow (its median displacement), so the temporal term still
compares one object's maps across the triplet.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from trainer.touching import split_touching

MIN_OBJECT_SHARE = 0.002  # objects smaller than this share of the frame are specks, not objects


def _displacement(mask: np.ndarray, flow: np.ndarray) -> tuple[float, float]:
    """The median flow (full-resolution pixels) over `mask`, from a 2 x h x w flow at a lower scale
    whose vectors are in its own pixels."""
    height, width = mask.shape
    scale_x, scale_y = width / flow.shape[2], height / flow.shape[1]
    small = cv2.resize(mask.astype(np.uint8), (flow.shape[2], flow.shape[1]), interpolation=cv2.INTER_NEAREST)
    inside = small.astype(bool) if small.any() else np.ones(small.shape, bool)  # a sliver: the frame's
    return float(np.median(flow[0][inside])) * scale_x, float(np.median(flow[1][inside])) * scale_y


def _followed(mask: np.ndarray, flow: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """The object of `foreground` (a neighbour frame) that `mask` moved by `flow` lands on most; an
    empty mask when it lands on none (the object left the view)."""
    dx, dy = _displacement(mask, flow)
    moved = cv2.warpAffine(
        mask.astype(np.uint8), np.float32([[1, 0, dx], [0, 1, dy]]), (mask.shape[1], mask.shape[0]),
        flags=cv2.INTER_NEAREST, borderValue=0,
    ).astype(bool)  # fmt: skip
    objects = split_touching(foreground)
    overlap = np.bincount(objects[moved], minlength=int(objects.max()) + 1)
    overlap[0] = 0
    if not overlap.any():
        return np.zeros(mask.shape, bool)
    return objects == int(overlap.argmax())


def one_object_masks(
    foregrounds: tuple[np.ndarray, np.ndarray, np.ndarray], flow_prev: np.ndarray, flow_next: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Masks of one object, drawn at random among frame t's, in frames t-1, t and t+1 (`foregrounds`
    in that order; flows from t to t-1 and to t+1). None when frame t holds no object."""
    objects = split_touching(foregrounds[1])
    sizes = np.bincount(objects.ravel())
    sizes[0] = 0
    candidates = np.flatnonzero(sizes >= MIN_OBJECT_SHARE * objects.size)
    if len(candidates) == 0:
        return None
    chosen = objects == int(candidates[int(torch.randint(len(candidates), ()))])
    return (
        _followed(chosen, flow_prev, foregrounds[0]),
        chosen,
        _followed(chosen, flow_next, foregrounds[2]),
    )
