"""Frames the recorder lost: no training triplet and no F2F fusion reaches across them, since the belt
may have moved further than flow follows between the two frames either side of the gap."""

import numpy as np
import torch

from trainer.cams import frame_to_frame
from trainer.dataset import BACKGROUND, PreparedSequence, TripletDataset

LOST_AFTER_FRAME_3 = [0.0, 0.1, 0.2, 0.3, 2.3, 2.4, 2.5, 2.6]  # 2 s of frames gone between 3 and 4


def sequence(times: list[float | None]) -> PreparedSequence:
    count = len(times)
    return PreparedSequence(
        id="c1", camera="c1", label="before",
        frames=np.zeros((count, 8, 8, 3), np.uint8), foreground=np.ones((count, 8, 8), bool),
        flow_prev=np.zeros((count, 2, 2, 2), np.float16), flow_next=np.zeros((count, 2, 2, 2), np.float16),
        original_size=(8, 8), frame_paths=[], mask_paths=[None] * count, times=times,
    )  # fmt: skip


def centres(dataset: TripletDataset) -> list[int]:
    return sorted(t for _, t, cls in dataset.items if cls != BACKGROUND)


def test_no_triplet_straddles_lost_frames():
    assert centres(TripletDataset([sequence(LOST_AFTER_FRAME_3)])) == [1, 2, 5, 6]
    jittery = [0.0, 0.1, 0.22, 0.3, 0.41, 0.5]  # a camera's uneven intervals are not gaps
    assert centres(TripletDataset([sequence(jittery)])) == [1, 2, 3, 4]
    assert centres(TripletDataset([sequence([None] * 8)])) == [1, 2, 3, 4, 5, 6]  # no times: trusted


def test_frame_to_frame_leaves_out_the_neighbour_across_lost_frames():
    cams = {2: torch.full((2, 8, 8), 0.5), 3: torch.zeros(2, 8, 8), 4: torch.ones(2, 8, 8)}
    fused = frame_to_frame(cams, sequence(LOST_AFTER_FRAME_3), 3)
    assert torch.equal(fused, torch.full((2, 8, 8), 0.5))  # frame 2's map, not frame 4's
    fused = frame_to_frame(cams, sequence([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]), 3)
    assert torch.equal(fused, torch.ones(2, 8, 8))
