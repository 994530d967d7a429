"""One object per training sample (tracker issue 18): one object of frame t, followed into t-1 and
t+1 by the stored flow, and nothing else of the foreground."""

from __future__ import annotations

import json

import cv2
import numpy as np
import torch

from edge.simulator.dataset import write_simulated_manifest
from trainer.dataset import BACKGROUND, BEFORE, PreparedSequence, TripletDataset
from trainer.one_object import one_object_masks
from trainer.train import TrainSettings, train

SIZE = (48, 64)  # height, width
STEP = 6  # pixels the belt moves objects along x between two frames
SQUARES = [(8, 6), (30, 8), (14, 36)]  # top-left corners (y, x) in frame 0, 10 px squares, apart


def belt_frames(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames and foregrounds of three squares, each its own grey, riding the belt STEP px a frame."""
    frames = np.zeros((count, *SIZE, 3), np.uint8)
    foreground = np.zeros((count, *SIZE), bool)
    for t in range(count):
        for index, (y, x) in enumerate(SQUARES):
            frames[t, y : y + 10, x + STEP * t : x + STEP * t + 10] = 80 * (index + 1)
            foreground[t, y : y + 10, x + STEP * t : x + STEP * t + 10] = True
    return frames, foreground


def quarter_flow(count: int, towards: int) -> np.ndarray:
    """Stored flows (1/4 scale, in 1/4-scale pixels) of a belt moving STEP px a frame: t -> t+towards."""
    flow = np.zeros((count, 2, SIZE[0] // 4, SIZE[1] // 4), np.float16)
    flow[:, 0] = towards * STEP / 4
    return flow


def squares_in(mask: np.ndarray, frames: np.ndarray, t: int) -> set[int]:
    """Which squares (by their grey) a mask covers in frame t."""
    return {int(v) // 80 - 1 for v in np.unique(frames[t][mask][:, 0])}


def test_one_object_is_followed_into_both_neighbours():
    frames, foreground = belt_frames(3)
    flow_prev, flow_next = quarter_flow(3, -1)[1], quarter_flow(3, +1)[1]
    seen = set()
    torch.manual_seed(0)
    for _ in range(30):
        masks = one_object_masks((foreground[0], foreground[1], foreground[2]), flow_prev, flow_next)
        picked = [squares_in(mask, frames, t) for t, mask in enumerate(masks)]
        assert len(picked[1]) == 1 and picked[0] == picked[1] == picked[2]  # one object, the same one
        assert masks[1].sum() == 100 and masks[0].sum() == 100 and masks[2].sum() == 100  # whole
        seen |= picked[1]
    assert seen == {0, 1, 2}  # every object gets its turn


def test_touching_objects_are_split_and_an_empty_frame_has_no_object():
    mask = np.zeros(SIZE, bool)
    cv2.circle(mask.view(np.uint8), (20, 24), 9, 1, -1)
    cv2.circle(mask.view(np.uint8), (38, 24), 9, 1, -1)  # touches the first at a neck
    flow = quarter_flow(1, 0)[0]
    sizes = set()
    torch.manual_seed(1)
    for _ in range(20):
        _, chosen, _ = one_object_masks((mask, mask, mask), flow, flow)
        assert 0 < chosen.sum() < 0.7 * mask.sum()  # one disc, not both
        sizes.add(int(chosen.sum()))
    assert len(sizes) == 2
    empty = np.zeros(SIZE, bool)
    assert one_object_masks((empty, empty, empty), flow, flow) is None


def test_samples_show_one_object_and_background_samples_stay_whole():
    frames, foreground = belt_frames(5)
    c1 = PreparedSequence(
        id="c1", camera="c1", label="before", frames=frames, foreground=foreground,
        flow_prev=quarter_flow(5, -1), flow_next=quarter_flow(5, +1), original_size=SIZE,
        frame_paths=[], mask_paths=[None] * 5, times=[None] * 5,
    )  # fmt: skip
    whole, single = TripletDataset([c1]), TripletDataset([c1], one_object=True)
    for index, (_, _, cls) in enumerate(single.items):
        lit = single[index]["centre"].sum(0) > 0
        if cls == BEFORE:
            assert whole[index]["centre"].sum(0).gt(0).sum() == 300  # all three squares
            assert lit.sum() == 100 and single[index]["prev"].sum(0).gt(0).sum() == 100
        else:
            assert cls == BACKGROUND and torch.equal(single[index]["centre"], whole[index]["centre"])


def test_a_run_trains_on_one_object_samples(tmp_path):
    sim = tmp_path / "sim"
    manifest = write_simulated_manifest(sim, frames=16, sequences=3, masked_before=1, size=(96, 72))
    settings = TrainSettings(
        method="ours", backbone="resnet18", image_size=64, epochs=1, batch_size=8, weights=None,
        one_object=True,
    )  # fmt: skip
    result = train(manifest, settings, tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "settings.json").read_text())["one_object"] is True
    assert result.evaluation is not None and result.onnx_path.is_file()
