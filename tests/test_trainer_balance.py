"""Foreground-balanced sampling: C1 and C2 samples drawn with the same spread of foreground share."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import WeightedRandomSampler

from edge.simulator.dataset import write_simulated_manifest
from trainer.balance import foreground_balanced_weights
from trainer.dataset import AFTER, BACKGROUND, BEFORE, PreparedSequence, TripletDataset
from trainer.errors import RunError
from trainer.train import TrainSettings, train


def sequence(label: str, shares: list[float]) -> PreparedSequence:
    """A sequence whose frames hold these shares of foreground (the pixels themselves do not matter)."""
    count = len(shares)
    return PreparedSequence(
        id=f"{label}-{shares[0]}", camera="c1" if label == "before" else "c2", label=label,
        frames=np.zeros((count, 8, 8, 3), np.uint8), foreground=np.zeros((count, 8, 8), bool),
        flow_prev=np.zeros((count, 2, 2, 2), np.float16), flow_next=np.zeros((count, 2, 2, 2), np.float16),
        original_size=(8, 8), frame_paths=[], mask_paths=[None] * count, times=[None] * count,
        foreground_fraction=np.array(shares),
    )  # fmt: skip


def drawn_shares(dataset: TripletDataset, weights: torch.Tensor, cls: int, draws: int = 20000) -> np.ndarray:
    sampler = WeightedRandomSampler(weights, draws, generator=torch.Generator().manual_seed(0))
    picked = [dataset.items[i] for i in sampler]
    return np.array([dataset.sequences[s].foreground_fraction[t] for s, t, c in picked if c == cls])


def test_c1_and_c2_are_drawn_with_the_same_foreground_share_where_unweighted_they_differ():
    # C1 frames hold twice C2's objects: shares 0.10-0.40 against 0.05-0.20 (overlap 0.10-0.20)
    rng = np.random.default_rng(0)
    c1 = [sequence("before", list(rng.uniform(0.10, 0.40, 40))) for _ in range(3)]
    c2 = [sequence("after", list(rng.uniform(0.05, 0.20, 40))) for _ in range(3)]
    dataset = TripletDataset(c1 + c2)
    weights = foreground_balanced_weights(dataset)
    before, after = drawn_shares(dataset, weights, BEFORE), drawn_shares(dataset, weights, AFTER)
    unweighted = drawn_shares(dataset, torch.ones(len(dataset)), BEFORE)
    assert unweighted.mean() - drawn_shares(dataset, torch.ones(len(dataset)), AFTER).mean() > 0.1
    assert abs(before.mean() - after.mean()) < 0.02  # the share no longer tells C1 from C2
    # shares only one camera reaches are (up to a bin's width) not drawn; unweighted, a third of C1's are
    assert (before > 0.25).mean() < 0.05 and (unweighted > 0.25).mean() > 0.3
    assert (after < 0.08).mean() < 0.05
    assert len(before) == pytest.approx(len(after), rel=0.1)
    classes = np.array([c for _, _, c in dataset.items])
    assert float(weights[classes == BACKGROUND].sum()) == pytest.approx(
        float(weights[classes != BACKGROUND].sum())
    )


def test_footage_where_c1_and_c2_never_share_an_amount_of_foreground_is_refused_with_the_reason():
    dataset = TripletDataset(
        [sequence("before", [0.3, 0.32, 0.35, 0.4]), sequence("after", [0.01, 0.02, 0.03, 0.04])]
    )
    with pytest.raises(
        RunError, match="balance_foreground: no share of foreground is reached by both C1 and C2"
    ):
        foreground_balanced_weights(dataset)


def test_a_run_trains_on_foreground_balanced_samples(tmp_path):
    sim = tmp_path / "sim"
    manifest = write_simulated_manifest(sim, frames=16, sequences=3, masked_before=1, size=(96, 72))
    settings = TrainSettings(
        method="cam", backbone="resnet18", image_size=64, epochs=1, batch_size=8, weights=None,
        balance_foreground=True,
    )  # fmt: skip
    result = train(manifest, settings, tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "settings.json").read_text())["balance_foreground"] is True
    assert result.evaluation is not None and result.onnx_path.is_file()
