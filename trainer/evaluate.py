"""mIoU of the illegal class on `before` frames with ground-truth masks.

The masked frames are split once into a validation part, where the mask threshold is chosen, and a
test part, where the figure is measured: the threshold never sees the test frames. With several
masked sequences the split is by sequence (about a third for validation); with one, its first third
of frames validates. IoU is accumulated over each test sequence's frames; `miou` is the mean over
test sequences (0-100), with the per-sequence figures alongside.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from trainer.cams import LABEL_ILLEGAL, MapKind, masks_from_maps, sequence_before_maps
from trainer.dataset import PreparedSequence, has_masks, read_mask
from trainer.errors import RunError
from trainer.model import CamClassifier

THRESHOLDS = tuple(round(x, 2) for x in np.arange(0.05, 0.96, 0.05))


@dataclass
class EvaluationResult:
    maps: str
    miou: float  # 0-100
    threshold: float
    test_frames: int
    validation_frames: int
    per_sequence: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class _MaskedFrames:
    sequence: PreparedSequence
    indices: list[int]
    maps: torch.Tensor  # N x 2 x S x S for the indices
    truth: list[np.ndarray]


def split_masked(
    sequences: list[PreparedSequence],
) -> tuple[list[tuple[int, list[int]]], list[tuple[int, list[int]]]]:
    """(validation, test) as lists of (sequence index, frame indices) over `before` frames with masks."""
    masked = [
        (s, [i for i, path in enumerate(seq.mask_paths) if path is not None])
        for s, seq in enumerate(sequences)
        if seq.label == "before" and has_masks(seq)
    ]
    if not masked:
        return [], []
    if len(masked) == 1:
        s, frames = masked[0]
        cut = max(1, len(frames) // 3)
        return [(s, frames[:cut])], [(s, frames[cut:])]
    cut = max(1, len(masked) // 3)
    return masked[:cut], masked[cut:]


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def _collect(model: CamClassifier, sequences, parts, kind: MapKind, flip, scales) -> list[_MaskedFrames]:
    collected = []
    for s, indices in parts:
        sequence = sequences[s]
        maps = sequence_before_maps(model, sequence, kind, flip, scales)[indices]
        truth = [read_mask(sequence.mask_paths[i], sequence.original_size) for i in indices]
        collected.append(_MaskedFrames(sequence, indices, maps, truth))
    return collected


def _iou_counts(part: _MaskedFrames, threshold: float) -> tuple[int, int]:
    height, width = part.sequence.original_size
    maps = _upsample(part.maps, (height, width))
    foreground = np.stack(
        [
            cv2.resize(
                part.sequence.foreground[i].astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST
            )
            for i in part.indices
        ]
    ).astype(bool)
    predicted = masks_from_maps(maps, foreground, threshold) == LABEL_ILLEGAL
    truth = np.stack(part.truth) == LABEL_ILLEGAL
    return int((predicted & truth).sum()), int((predicted | truth).sum())


def _iou(counts: list[tuple[int, int]]) -> float | None:
    intersection = sum(c[0] for c in counts)
    union = sum(c[1] for c in counts)
    return None if union == 0 else 100.0 * intersection / union


def evaluate(
    model: CamClassifier,
    sequences: list[PreparedSequence],
    kind: MapKind = "cam",
    flip: bool = False,
    scales: tuple[float, ...] = (1.0,),
) -> EvaluationResult:
    """Choose the threshold on the validation frames, measure on the test frames (see module doc)."""
    validation, test = split_masked(sequences)
    if not test:
        raise RunError("no `before` frames with ground-truth masks to evaluate on")
    val_parts = _collect(model, sequences, validation, kind, flip, scales)
    test_parts = _collect(model, sequences, test, kind, flip, scales)
    scores = {t: _iou([_iou_counts(p, t) for p in val_parts]) or 0.0 for t in THRESHOLDS}
    threshold = max(THRESHOLDS, key=lambda t: (scores[t], -abs(t - 0.5)))
    per_sequence = {}
    for part in test_parts:
        iou = _iou([_iou_counts(part, threshold)])
        if iou is not None:
            per_sequence[part.sequence.id] = round(iou, 2)
    miou = float(np.mean(list(per_sequence.values()))) if per_sequence else 0.0
    return EvaluationResult(
        maps=kind,
        miou=round(miou, 2),
        threshold=threshold,
        test_frames=sum(len(p.indices) for p in test_parts),
        validation_frames=sum(len(p.indices) for p in val_parts),
        per_sequence=per_sequence,
    )
