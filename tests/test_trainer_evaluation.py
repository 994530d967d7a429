"""The evaluation's arithmetic on maps whose right answer is known: mIoU on masks, the threshold
chosen on validation frames only, and the removal-based object check on a belt drawn by hand."""

import cv2
import numpy as np
import pytest
import torch

from trainer import evaluate as evaluation
from trainer.dataset import PreparedSequence
from trainer.errors import RunError
from trainer.evaluate import THRESHOLDS, count_at_least, evaluate
from trainer.manifest import BeltGeometry
from trainer.object_check import check_objects, object_score, ranking_auc, weak_objects

SIZE = 32  # training size
HEIGHT, WIDTH = 32, 32  # masked source frames: at training size, so the maps need no resampling
BELT_HEIGHT, BELT_WIDTH = 48, 64  # the hand-drawn belt's source frames


def _sequence(sequence_id, label, truths, folder, camera="c1", holdout=False):
    """A sequence whose masks are `truths` (label maps at source size) and whose foreground is
    every object pixel."""
    frames = np.zeros((len(truths), SIZE, SIZE, 3), np.uint8)
    foreground = np.stack([cv2.resize(t, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST) > 0 for t in truths])
    mask_paths = []
    for index, truth in enumerate(truths):
        path = folder / f"{sequence_id}-{index}.png"
        cv2.imwrite(str(path), truth)
        mask_paths.append(path)
    flows = np.zeros((len(truths), 2, SIZE // 4, SIZE // 4), np.float16)
    return PreparedSequence(
        sequence_id, camera, label, frames, foreground, flows, flows.copy(), (HEIGHT, WIDTH),
        [folder / "unused.png"] * len(truths), mask_paths, [None] * len(truths), holdout,
    )  # fmt: skip


def _truth(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = np.zeros((HEIGHT, WIDTH), np.uint8)
    for _ in range(3):
        x, y = rng.integers(12, WIDTH - 8), rng.integers(12, HEIGHT - 8)
        truth[y : y + 7, x : x + 7] = rng.integers(1, 3)
    truth[2:12, 2:12] = 1  # every frame has an illegal object
    return truth


def _maps_from(scale_illegal: dict[str, float], invert: bool = False):
    """A stand-in for the model's maps: `before` = scale where the truth is illegal, `after` = 1 where
    it is legal (or the other way round with `invert`), at training size."""

    def maps(model, sequence, kind, indices, flip=False, scales=(1.0,)):
        out = []
        for index in indices:
            truth = cv2.imread(str(sequence.mask_paths[index]), cv2.IMREAD_UNCHANGED)
            small = cv2.resize(truth, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
            illegal, legal = (small == 1).astype(np.float32), (small == 2).astype(np.float32)
            if invert:
                illegal, legal = legal, illegal
            out.append(np.stack([illegal * scale_illegal[sequence.id], legal]))
        return torch.from_numpy(np.stack(out))

    return maps


@pytest.fixture
def masked(tmp_path):
    return [_sequence(f"s{k}", "before", [_truth(10 * k + i) for i in range(4)], tmp_path) for k in range(3)]


def test_count_at_least_counts_every_threshold_in_one_pass():
    values = np.array([0.0, 0.05, 0.049, 0.5, 0.95, 1.0])
    counts = count_at_least(values, THRESHOLDS)
    assert counts.tolist() == [int((values >= t).sum()) for t in THRESHOLDS]


def test_maps_equal_to_the_truth_score_100_and_inverted_maps_score_0(masked, monkeypatch):
    monkeypatch.setattr(evaluation, "sequence_before_maps", _maps_from({"s0": 1, "s1": 1, "s2": 1}))
    perfect = evaluate(None, masked)
    assert perfect.miou == 100.0 and perfect.per_sequence == {"s1": 100.0, "s2": 100.0}
    assert perfect.threshold_source == "masks" and perfect.test_frames == 8 and perfect.validation_frames == 4
    monkeypatch.setattr(
        evaluation, "sequence_before_maps", _maps_from({"s0": 1, "s1": 1, "s2": 1}, invert=True)
    )
    assert evaluate(None, masked).miou == 0.0


def test_the_threshold_is_chosen_on_validation_frames_only(masked, monkeypatch):
    # validation (s0) has illegal maps at 0.3: any threshold up to 0.3 is perfect there, and the
    # highest-scoring one nearest 0.5 is 0.3; test frames peak at 0.2, so they lose everything at it
    monkeypatch.setattr(evaluation, "sequence_before_maps", _maps_from({"s0": 0.3, "s1": 0.2, "s2": 0.2}))
    result = evaluate(None, masked)
    assert result.threshold == 0.3 and result.miou == 0.0
    # the test frames' own best threshold reads the maps without that choice: perfect at 0.2
    assert result.best_threshold == 0.2 and result.miou_best_threshold == 100.0
    # and the curves each rule read: validation perfect up to 0.3, nothing above; test up to 0.2
    assert result.validation_iou_by_threshold == [100.0 if t <= 0.3 else 0.0 for t in THRESHOLDS]
    assert result.test_miou_by_threshold == [100.0 if t <= 0.2 else 0.0 for t in THRESHOLDS]
    # what the test frames hold never moves the threshold
    monkeypatch.setattr(evaluation, "sequence_before_maps", _maps_from({"s0": 0.3, "s1": 0.9, "s2": 0.9}))
    again = evaluate(None, masked)
    assert again.threshold == 0.3 and again.miou == 100.0


def test_the_validation_curves_weigh_frames_by_area_pooled_and_sequences_alike_in_the_mean(
    tmp_path, monkeypatch
):
    def block(side):  # one illegal square
        truth = np.zeros((HEIGHT, WIDTH), np.uint8)
        truth[:side, :side] = 1
        return truth

    # six masked sequences: s0 and s1 validate; s0's object is small and its map at 0.3, s1's is large
    # and its map at 0.6, so between the two thresholds only s1 is found
    sides = {"s0": 10, "s1": 30, **{f"s{k}": 10 for k in range(2, 6)}}
    sequences = [_sequence(name, "before", [block(side)] * 2, tmp_path) for name, side in sides.items()]
    scales = {"s0": 0.3, "s1": 0.6, **{f"s{k}": 0.6 for k in range(2, 6)}}
    monkeypatch.setattr(evaluation, "sequence_before_maps", _maps_from(scales))
    result = evaluate(None, sequences)
    between = THRESHOLDS.index(0.45)
    assert result.validation_iou_by_threshold[between] == 90.0  # 900 of 1000 illegal pixels found
    assert result.validation_miou_by_threshold[between] == 50.0  # one of two sequences found
    assert result.validation_miou_by_threshold[THRESHOLDS.index(0.3)] == 100.0


def test_nothing_to_evaluate_on_is_an_error_naming_what_is_missing(tmp_path):
    unmasked = _sequence("u", "before", [_truth(1)] * 3, tmp_path)
    unmasked.mask_paths = [None] * 3
    with pytest.raises(
        RunError, match="no threshold can be chosen: no `before` frames with ground-truth masks"
    ):
        evaluate(None, [unmasked])


# --- the object check on a belt drawn by hand --------------------------------------------------------

MM_PER_PX = 10.0  # at source size: a 64 x 48 frame sees 640 x 480 mm
SPEED = 200.0  # mm/s
DISTANCE = 1000.0  # C1 to C2
FPS = 5.0


def _belt_frames(objects, camera_origin_mm, times):
    """Foreground of square objects (u, y, side mm; u = their belt x at t = 0) seen by a camera whose
    image's left edge sits at camera_origin_mm, at training size."""
    frames = []
    for t in times:
        image = np.zeros((BELT_HEIGHT, BELT_WIDTH), np.uint8)
        for u, y, side in objects:
            x = (u + SPEED * t - camera_origin_mm) / MM_PER_PX
            cv2.rectangle(
                image,
                (int(x), int(y / MM_PER_PX)),
                (int(x + side / MM_PER_PX), int((y + side) / MM_PER_PX)),
                255,
                -1,
            )
        frames.append(cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST) > 0)
    return np.stack(frames)


def _belt_sequence(sequence_id, camera, foreground, times, holdout=True):
    flows = np.zeros((len(times), 2, SIZE // 4, SIZE // 4), np.float16)
    scale = np.diag([MM_PER_PX, MM_PER_PX, 1.0])
    return PreparedSequence(
        sequence_id, camera, "before" if camera == "c1" else "after",
        np.zeros((len(times), SIZE, SIZE, 3), np.uint8), foreground, flows, flows.copy(),
        (BELT_HEIGHT, BELT_WIDTH), [], [None] * len(times), list(times), holdout, scale,
    )  # fmt: skip


def test_the_object_check_finds_what_c2_no_longer_shows():
    # six objects across the belt and along it; the sorter removes the 2nd and the 5th
    objects = [(-300, 40, 80), (-700, 260, 90), (-1100, 140, 80), (-1500, 300, 100), (-1900, 60, 80),
               (-2300, 200, 90)]  # fmt: skip
    removed = {1, 4}
    c1_times = np.arange(0, 12.0, 1 / FPS)
    c2_times = np.arange(0, 12.0 + DISTANCE / SPEED + 4, 1 / FPS)
    c1 = _belt_sequence("c1", "c1", _belt_frames(objects, 0.0, c1_times), c1_times)
    kept = [o for k, o in enumerate(objects) if k not in removed]
    c2 = _belt_sequence("c2", "c2", _belt_frames(kept, DISTANCE, c2_times), c2_times)
    belt = BeltGeometry(speed_mm_s=SPEED, c1_to_c2_mm=DISTANCE, min_object_mm2=2000)
    found, left_out = weak_objects([c1, c2], belt)
    assert left_out == 0 and len(found) == len(objects)
    # each weak object is one physical object (sightings in several frames merged), labelled right
    by_y = sorted(found, key=lambda o: o.frame)
    truth_removed = sorted(k in removed for k in range(len(objects)))
    assert sorted(o.removed for o in by_y) == truth_removed
    # a C2 clock 1 s off that the geometry does not know of puts C2's objects 200 mm from where they
    # are looked for: every object looks removed
    late = _belt_sequence("c2", "c2", _belt_frames(kept, DISTANCE, c2_times - 1.0), c2_times)
    mislabelled, _ = weak_objects([c1, late], belt)
    assert all(o.removed for o in mislabelled) and len(mislabelled) == len(objects)
    # told about the offset, the check finds them again
    told = belt.model_copy(update={"c2_clock_offset_ms": 1000.0})  # C2 reads 1 s ahead
    assert sorted(o.removed for o in weak_objects([c1, late], told)[0]) == truth_removed


def test_object_scores_precision_recall_and_threshold():
    before = np.array([[0.9, 0.9, 0.1, 0.1]])
    after = np.array([[0.0, 0.95, 0.0, 0.0]])
    # pixels 0, 1: half of them have before >= 0.9 beating after -> score 0.9; pixels 2, 3: 0.1
    assert object_score(before, after, np.array([0, 2, 3])) == pytest.approx(0.1)
    assert object_score(before, after, np.array([0, 1, 1])) == pytest.approx(-1.0)  # after wins most
    assert object_score(before, after, np.array([0, 1])) == pytest.approx(0.9)  # half is enough
    assert object_score(before, after, np.array([0, 0, 1])) == pytest.approx(0.9)
    # validation: the first third (3 objects); removed ones score 0.7, passed ones 0.2
    scores = np.array([0.7, 0.2, 0.7, 0.7, 0.2, 0.2, 0.7, 0.1, 0.2])
    removed = np.array([True, False, True, True, False, False, True, True, False])
    result = check_objects(scores, removed, THRESHOLDS, left_out=4)
    assert 0.2 < result.threshold <= 0.7 and result.validation_objects == 3 and result.test_objects == 6
    # test: removed 0.7, 0.7, 0.1 -> 2 of 3 found; nothing passed is called illegal
    assert result.precision == 1.0 and result.recall == pytest.approx(2 / 3, abs=1e-4)
    assert result.removed_objects == 3 and result.left_out == 4


def test_the_ranking_auc_counts_every_object_without_a_threshold():
    removed = np.array([1, 0, 1, 0, 0])
    assert ranking_auc(np.array([0.9, 0.1, 0.8, 0.2, 0.3]), removed) == 1.0  # removed all score higher
    assert ranking_auc(np.array([0.1, 0.9, 0.2, 0.8, 0.7]), removed) == 0.0
    assert ranking_auc(np.array([0.5, 0.5, 0.5, 0.5, 0.5]), removed) == 0.5  # ties: no information
    assert ranking_auc(np.array([0.9, 0.4, 0.3, 0.8, 0.2]), removed) == pytest.approx(4 / 6, abs=1e-4)
    assert ranking_auc(np.array([0.9, 0.8]), np.array([1, 1])) is None  # nothing kept: no ranking
    scores, removed = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.7]), np.array([1, 0, 1, 0, 0, 1])
    result = check_objects(scores, removed, THRESHOLDS, 0)
    assert result.auc == 1.0


def test_where_wrong_pixels_lie_tells_spill_onto_neighbours_from_confusing_classes(tmp_path, monkeypatch):
    truth = np.zeros((HEIGHT, WIDTH), np.uint8)
    truth[2:10, 2:10] = 1  # an illegal object ...
    truth[2:10, 10:16] = 2  # ... a legal one touching it ...
    truth[22:30, 22:30] = 2  # ... and a legal one far away
    masked = [_sequence(f"s{k}", "before", [truth] * 3, tmp_path) for k in range(3)]

    def spilling_maps(model, sequence, kind, indices, flip=False, scales=(1.0,)):
        before = np.zeros((SIZE, SIZE), np.float32)
        before[2:10, 2:16] = 1.0  # the illegal CAM covers its touching neighbour
        after = (truth == 2).astype(np.float32) * 0.5
        after[2:10, 10:16] = 0.0
        return torch.from_numpy(np.stack([np.stack([before, after])] * len(indices)))

    monkeypatch.setattr(evaluation, "sequence_before_maps", spilling_maps)
    result = evaluate(None, masked)
    assert result.where_wrong == {
        "illegal_found": 1.0,
        "legal_near_illegal_called_illegal": 1.0,
        "legal_elsewhere_called_illegal": 0.0,
        "belt_called_illegal": 0.0,  # the foreground is the objects: the bare belt is never a candidate
    }
    assert result.miou == pytest.approx(100 * 64 / (64 + 48), abs=0.01)


def _two_touching_discs() -> np.ndarray:
    truth = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.circle(truth, (9, 12), 6, 1, -1)  # an illegal object ...
    cv2.circle(truth, (21, 12), 6, 2, -1)  # ... touching a legal one
    cv2.ellipse(truth, (16, 26), (12, 3), 0, 0, 360, 2, -1)  # a long thin legal object alone
    return truth


def test_touching_objects_are_split_and_a_long_object_stays_whole():
    from trainer.touching import split_touching

    truth = _two_touching_discs()
    objects = split_touching(truth > 0)
    assert len(np.unique(objects)) == 4  # background and three objects
    assert objects[12, 9] != objects[12, 21] and objects[12, 9] > 0 and objects[12, 21] > 0
    assert len(np.unique(objects[truth == 0])) == 1 and (objects[truth == 0] == 0).all()
    assert len(np.unique(objects[24:29, 6:27][truth[24:29, 6:27] == 2])) == 1
    assert not split_touching(np.zeros((8, 8), bool)).any()


def test_the_object_level_decision_calls_whole_objects_where_pixel_rule_calls_parts(tmp_path, monkeypatch):
    truth = _two_touching_discs()
    masked = [_sequence(f"s{k}", "before", [truth] * 3, tmp_path) for k in range(3)]

    def partial_maps(model, sequence, kind, indices, flip=False, scales=(1.0,)):
        before = np.zeros((SIZE, SIZE), np.float32)
        before[6:19, 3:12] = 0.9  # most of the illegal disc, and its neighbour's near edge ...
        before[6:19, 12:20] = 0.9
        after = np.where(truth == 2, 0.6, 0.0).astype(np.float32)
        after[6:19, 12:20] = 0.0  # ... where the neighbour's own map is weak
        return torch.from_numpy(np.stack([np.stack([before, after])] * len(indices)))

    monkeypatch.setattr(evaluation, "sequence_before_maps", partial_maps)
    result = evaluate(None, masked)
    assert result.miou < 80  # pixels: part of the neighbour called illegal
    # objects: the illegal disc whole, its neighbour kept by its majority (the split at the neck may
    # give a pixel or two to the wrong side)
    assert result.miou_objects > 97
    assert result.objects_threshold is not None
