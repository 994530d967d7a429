"""The network input's shape: the frames' own aspect ratio, not a square.

A 16:9 belt squashed into a square shrinks its objects across the belt by almost half and teaches
the classifier shapes that do not exist. The input keeps C1's aspect (the live model runs on C1)
with `image_size` as its long side, both sides rounded to the nearest multiple the network needs
(twice the output stride, for the 2x2 tiling); frames of another aspect (a C2 of another make) are
resized to the same shape.
"""

from __future__ import annotations

import cv2

from trainer.errors import DatasetError
from trainer.manifest import Manifest

Shape = tuple[int, int]  # height, width


def fitted_shape(frame_size: Shape, long_side: int, multiple: int) -> Shape:
    """(height, width) with the frame's aspect, the long side `long_side`, multiples of `multiple`."""
    height, width = frame_size
    short = max(
        multiple, round(long_side * min(height, width) / max(height, width) / multiple) * multiple
    )
    return (short, long_side) if width >= height else (long_side, short)


def manifest_input_shape(manifest: Manifest, base, long_side: int, multiple: int, keep_aspect: bool) -> Shape:
    """The input shape for a manifest: from its first C1 frame (else its first frame)."""
    if not keep_aspect:
        return (long_side, long_side)
    sequences = [s for s in manifest.sequences if s.camera == "c1"] or manifest.sequences
    path = manifest.resolve(sequences[0].frames[0].path, base)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"{path}: cannot read frame (missing or corrupt)")
    return fitted_shape(image.shape[:2], long_side, multiple)
