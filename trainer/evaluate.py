"""Evaluation: mIoU of the illegal class on `before` frames with ground-truth masks, and the
removal-based object check (`trainer.object_check`) on held-out C1/C2 footage without any.

The masked frames are split once into a validation part, where the mask threshold is chosen, and a
test part, where the figure is measured: the threshold never sees the test frames. With several
masked sequences the split is by sequence (about a third for validation); with one, its first third
of frames validates. IoU is accumulated over each test sequence's frames; `miou` is the mean over
test sequences (0-100), with the per-sequence figures alongside.

Frames are read one chunk at a time and every candidate threshold is scored in the same pass (each
pixel's map value is binned against the thresholds), so memory does not grow with footage length.
The exported threshold comes from the masks when there are some, from the object check otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from trainer.cams import MapKind, sequence_before_maps
from trainer.dataset import PreparedSequence, has_masks, read_mask
from trainer.errors import RunError
from trainer.manifest import BeltGeometry
from trainer.model import CamClassifier
from trainer.object_check import ObjectCheckResult, check_objects, object_score, weak_objects
from trainer.object_masks import object_scores
from trainer.touching import split_touching

THRESHOLDS = tuple(round(float(x), 2) for x in np.arange(0.05, 0.96, 0.05))
CHUNK_FRAMES = 16  # frames through the model at a time
COUNT_ROWS = 11  # per threshold: IoU's two counts, illegal pixels, three (called illegal, of) pairs, and
# IoU's two counts under the object-level decision
PIXEL_ROWS, OBJECT_ROWS = slice(0, 2), slice(9, 11)
NEAR_FRACTION = 16  # "next to an illegal object": within a sixteenth of the frame's height of one
MIN_OBJECTS = 6  # weakly labelled objects for the object check: a third to validate, the rest to test
Part = list[tuple[int, list[int]]]  # (sequence index, frame indices)
NOTHING_TO_EVALUATE = (
    "no threshold can be chosen: no `before` frames with ground-truth masks, and no held-out C1 and C2 "
    f"footage of the same belt showing {MIN_OBJECTS}+ objects with the site calibration (both belt planes, "
    "belt speed, C1-to-C2 offsets): calibrate the site (docs/calibration.md) or draw masks"
)


@dataclass
class EvaluationResult:
    maps: str
    threshold: float  # the one to use live
    threshold_source: Literal["masks", "object check"]
    miou: float | None = None  # 0-100, on the masks' test frames; None without masks
    test_frames: int = 0
    validation_frames: int = 0
    per_sequence: dict[str, float] = field(default_factory=dict)
    object_check: dict | None = None  # ObjectCheckResult as JSON
    miou_at_object_threshold: float | None = None  # with masks and the object check: their agreement
    where_wrong: dict[str, float | None] | None = None  # pixel shares on the test frames (_where_wrong)
    miou_objects: float | None = None  # whole objects called (trainer.object_masks), own threshold
    objects_threshold: float | None = None  # that threshold, chosen on the validation frames too
    # the best the test frames' maps score at any one threshold: the maps' quality without the error
    # of choosing a threshold on a few validation frames (an upper bound to compare methods by, never
    # a threshold to use)
    miou_best_threshold: float | None = None
    best_threshold: float | None = None
    # what each rule reads, per threshold of THRESHOLDS: the validation frames' pooled IoU (the
    # threshold is its best) and the test frames' mIoU (`miou` is it at that threshold)
    validation_iou_by_threshold: list[float | None] = field(default_factory=list)
    test_miou_by_threshold: list[float | None] = field(default_factory=list)
    # the validation sequences' mean IoU, the statistic `miou` is: whether choosing by it instead of
    # the pooled IoU (which weighs frames by their illegal area) would move the threshold
    validation_miou_by_threshold: list[float | None] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def split_masked(sequences: list[PreparedSequence]) -> tuple[Part, Part]:
    """(validation, test) over `before` frames with masks."""
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


def _maps(model, sequence, kind, indices, flip, scales) -> Iterator[tuple[int, torch.Tensor]]:
    for start in range(0, len(indices), CHUNK_FRAMES):
        chunk = indices[start : start + CHUNK_FRAMES]
        yield from zip(chunk, sequence_before_maps(model, sequence, kind, chunk, flip, scales), strict=True)


def count_at_least(values: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    """For each threshold, how many of `values` are at or above it (one pass over the values)."""
    above = np.searchsorted(np.asarray(thresholds), values, side="right")  # thresholds <= each value
    counts = np.bincount(above, minlength=len(thresholds) + 1)
    return counts[::-1].cumsum()[::-1][1:]


def _frame_counts(maps: torch.Tensor, foreground: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """COUNT_ROWS x thresholds pixel counts at the frame's own resolution: intersection and union of
    predicted and true illegal pixels, then where the predicted illegal pixels that are wrong lie."""
    height, width = truth.shape
    full = F.interpolate(maps[None], size=(height, width), mode="bilinear", align_corners=False)[0].numpy()
    before, after = full[0], full[1]
    foreground = (
        F.interpolate(torch.from_numpy(foreground[None, None].astype(np.float32)), size=(height, width))[0, 0]
        .numpy()
        .astype(bool)
    )
    candidate = foreground & (before >= after)  # illegal wherever `before` also passes the threshold
    illegal = truth == 1
    intersection = count_at_least(before[candidate & illegal], THRESHOLDS)
    predicted = count_at_least(before[candidate], THRESHOLDS)
    near = _legal_near_illegal(truth)
    every = np.ones(len(THRESHOLDS), np.int64)
    rows = [intersection, illegal.sum() + predicted - intersection, every * illegal.sum()]
    for region in near, (truth == 2) & ~near, truth == 0:
        rows += [count_at_least(before[candidate & region], THRESHOLDS), every * region.sum()]
    return np.stack(rows + list(_object_rule_counts(before, after, foreground, illegal)))


def _object_rule_counts(
    before: np.ndarray, after: np.ndarray, foreground: np.ndarray, illegal: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(intersection, union) at every threshold when whole objects are called (trainer.object_masks)."""
    objects = split_touching(foreground)
    scores = object_scores(before, after, objects)
    sizes = np.bincount(objects.ravel(), minlength=len(scores))
    hits = np.bincount(objects[illegal], minlength=len(scores))
    called = scores[None, :] >= np.asarray(THRESHOLDS)[:, None]  # thresholds x objects
    called[:, 0] = False  # the background is no object
    intersection, predicted = called @ hits, called @ sizes
    return intersection, illegal.sum() + predicted - intersection


def _legal_near_illegal(truth: np.ndarray) -> np.ndarray:
    """Pixels of the legal objects (connected legal regions) that touch an illegal object or lie
    within a sixteenth of the frame's height of one: where a CAM spreading past its object lands."""
    reach = max(3, truth.shape[0] // NEAR_FRACTION)
    near_illegal = cv2.dilate((truth == 1).astype(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8)) > 0
    _, objects = cv2.connectedComponents((truth == 2).astype(np.uint8))
    touched = np.unique(objects[near_illegal])
    return np.isin(objects, touched[touched > 0])


def _where_wrong(total: np.ndarray, chosen: int) -> dict[str, float | None]:
    """Shares at the chosen threshold: how much of the illegal area was found, and how much of the
    legal objects touching or next to an illegal one, of the other legal objects and of the bare belt
    was called illegal. Spill over neighbours shows as the first legal share above the second."""

    def share(hit: int, of: int) -> float | None:
        return round(float(hit) / float(of), 4) if of else None

    return {
        "illegal_found": share(total[0, chosen], total[2, chosen]),
        "legal_near_illegal_called_illegal": share(total[3, chosen], total[4, chosen]),
        "legal_elsewhere_called_illegal": share(total[5, chosen], total[6, chosen]),
        "belt_called_illegal": share(total[7, chosen], total[8, chosen]),
    }


def _part_counts(model, sequences, part: Part, kind, flip, scales) -> dict[str, np.ndarray]:
    """Per sequence id: (2 x thresholds) intersection and union summed over the part's frames."""
    totals: dict[str, np.ndarray] = {}
    for s, indices in part:
        sequence = sequences[s]
        total = np.zeros((COUNT_ROWS, len(THRESHOLDS)), np.int64)
        for index, maps in _maps(model, sequence, kind, indices, flip, scales):
            truth = read_mask(sequence.mask_paths[index], sequence.original_size)
            total += _frame_counts(maps, sequence.foreground[index], truth)
        totals[sequence.id] = total
    return totals


def _iou(total: np.ndarray) -> np.ndarray:
    """IoU (0-100) per threshold, NaN where neither truth nor prediction has an illegal pixel."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total[1] > 0, 100.0 * total[0] / total[1], np.nan)


def _per_sequence(totals: dict[str, np.ndarray], at: int, rows: slice = PIXEL_ROWS) -> dict[str, float]:
    """IoU per test sequence at one threshold (sequences with no illegal pixel either way left out)."""
    return {
        sequence_id: round(float(iou[at]), 2)
        for sequence_id, total in totals.items()
        if not np.isnan(iou := _iou(total[rows]))[at]
    }


def _mean(per_sequence: dict[str, float]) -> float:
    return round(float(np.mean(list(per_sequence.values()))), 2) if per_sequence else 0.0


def best_threshold_index(scores: np.ndarray) -> int:
    """Index of the threshold with the best score (ties: the one nearest 0.5)."""
    return max(range(len(THRESHOLDS)), key=lambda k: (np.nan_to_num(scores[k]), -abs(THRESHOLDS[k] - 0.5)))


def _object_check(model, sequences, kind, flip, scales, belt: BeltGeometry) -> ObjectCheckResult | None:
    objects, left_out = weak_objects(sequences, belt)
    if len(objects) < MIN_OBJECTS:
        return None
    scores = np.zeros(len(objects))
    by_frame: dict[tuple[int, int], list[int]] = {}
    for k, found in enumerate(objects):
        by_frame.setdefault((found.sequence, found.frame), []).append(k)
    for s in sorted({found.sequence for found in objects}):
        indices = sorted(i for (seq, i) in by_frame if seq == s)
        for index, maps in _maps(model, sequences[s], kind, indices, flip, scales):
            for k in by_frame[(s, index)]:
                scores[k] = object_score(maps[0].numpy(), maps[1].numpy(), objects[k].pixels)
    removed = np.array([found.removed for found in objects])
    return check_objects(scores, removed, THRESHOLDS, left_out)


def check_evaluable(sequences: list[PreparedSequence], belt: BeltGeometry | None) -> None:
    """Refuse, before any training, data a threshold cannot be chosen on."""
    if split_masked(sequences)[1]:
        return
    if belt is not None and len(weak_objects(sequences, belt)[0]) >= MIN_OBJECTS:
        return
    raise RunError(NOTHING_TO_EVALUATE)


def evaluate(
    model: CamClassifier,
    sequences: list[PreparedSequence],
    kind: MapKind = "cam",
    flip: bool = False,
    scales: tuple[float, ...] = (1.0,),
    belt: BeltGeometry | None = None,
) -> EvaluationResult:
    """mIoU on masks (threshold on validation frames, figure on test frames) and, with the belt's
    geometry and held-out C1/C2 footage, the object check; see the module doc."""
    validation, test = split_masked(sequences)
    objects = _object_check(model, sequences, kind, flip, scales, belt) if belt is not None else None
    if not test and objects is None:
        raise RunError(NOTHING_TO_EVALUATE)
    result = EvaluationResult(
        maps=kind,
        threshold=objects.threshold if objects else 0.5,
        threshold_source="object check",
        object_check=objects.to_json() if objects else None,
    )
    if not test:
        return result
    validation_totals = _part_counts(model, sequences, validation, kind, flip, scales)
    test_totals = _part_counts(model, sequences, test, kind, flip, scales)
    validation_ious = _iou(sum(validation_totals.values()))
    chosen = best_threshold_index(validation_ious)
    per_sequence = _per_sequence(test_totals, chosen)
    result.threshold, result.threshold_source = THRESHOLDS[chosen], "masks"
    result.miou = _mean(per_sequence)
    result.per_sequence = per_sequence
    result.test_frames = sum(len(indices) for _, indices in test)
    result.validation_frames = sum(len(indices) for _, indices in validation)
    result.where_wrong = _where_wrong(sum(test_totals.values()), chosen)
    by_object = best_threshold_index(_iou(sum(validation_totals.values())[OBJECT_ROWS]))
    result.objects_threshold = THRESHOLDS[by_object]
    result.miou_objects = _mean(_per_sequence(test_totals, by_object, OBJECT_ROWS))
    test_mious = [_mean(_per_sequence(test_totals, k)) for k in range(len(THRESHOLDS))]
    best = best_threshold_index(np.asarray(test_mious))
    result.best_threshold, result.miou_best_threshold = THRESHOLDS[best], test_mious[best]
    result.validation_iou_by_threshold = [
        None if np.isnan(iou) else round(float(iou), 2) for iou in validation_ious
    ]
    result.test_miou_by_threshold = test_mious
    result.validation_miou_by_threshold = [
        _mean(_per_sequence(validation_totals, k)) for k in range(len(THRESHOLDS))
    ]
    if objects is not None:
        at_object = THRESHOLDS.index(objects.threshold)
        result.miou_at_object_threshold = _mean(_per_sequence(test_totals, at_object))
    return result
