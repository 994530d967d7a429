"""The network input's shape: the frames' own aspect ratio, not a square.

A 16:9 belt squashed into a square shrinks its objects across the belt by almost half and teaches
the classifier shapes that do not exist. The input keeps C1's aspect (the live model runs on C1)
with `image_size` as its long side, both sides rounded to the nearest multiple the network needs
(twice the output stride, for the 2x2 tiling); frames of another aspect (a C2 of another make) are
resized to the same shape.
"""

from __future__ import annotations

import logging

from trainer.dataset import Shape, read_rgb
from trainer.manifest import Manifest

log = logging.getLogger(__name__)
MAX_ASPECT_ERROR = 0.1  # beyond this a warning suggests an image size that keeps the aspect


def fitted_shape(frame_size: Shape, long_side: int, multiple: int) -> Shape:
    """(height, width) with the frame's aspect, the long side `long_side`, multiples of `multiple`."""
    height, width = frame_size
    short = max(multiple, round(long_side * min(height, width) / max(height, width) / multiple) * multiple)
    return (short, long_side) if width >= height else (long_side, short)


def manifest_input_shape(manifest: Manifest, base, long_side: int, multiple: int, keep_aspect: bool) -> Shape:
    """The input shape for a manifest: from its first C1 frame (else its first frame)."""
    if not keep_aspect:
        return (long_side, long_side)
    sequences = [s for s in manifest.sequences if s.camera == "c1"] or manifest.sequences
    path = manifest.resolve(sequences[0].frames[0].path, base)
    frame_size = read_rgb(path).shape[:2]
    shape = fitted_shape(frame_size, long_side, multiple)
    if aspect_error(frame_size, shape) > MAX_ASPECT_ERROR:
        better = next(
            (n for n in range(long_side, 4 * long_side + 1, multiple)
             if aspect_error(frame_size, fitted_shape(frame_size, n, multiple)) <= MAX_ASPECT_ERROR),
            None,
        )  # fmt: skip
        log.warning(
            "input %dx%d distorts the %dx%d frames' aspect ratio by %.0f%%%s", shape[1], shape[0],
            frame_size[1], frame_size[0], 100 * aspect_error(frame_size, shape),
            f": an image size of {better} keeps it" if better else "",
        )  # fmt: skip
    return shape


def aspect_error(frame_size: Shape, shape: Shape) -> float:
    """How far the input's width/height ratio is from the frame's, relative to the frame's."""
    frame_ratio = frame_size[1] / frame_size[0]
    return abs(shape[1] / shape[0] - frame_ratio) / frame_ratio
