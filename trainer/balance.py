"""Sampling weights that take the amount of foreground away as a cue for C1 against C2.

A C1 frame holds about twice C2's objects (the sorter took the illegal ones), so a classifier can
tell `before` from `after` by how much of the frame is foreground, and then lights every object of
a C1 frame, legal ones included, without learning what an illegal object looks like. Where the
classes differ in colour that shortcut costs little; where they differ only by shape it is all the
classifier learns (benchmarks/README.md, "the classifier's cues"). Drawing `before` and `after`
samples with the same spread of foreground share leaves the objects themselves as the only cue.
"""

from __future__ import annotations

import numpy as np
import torch

from trainer.dataset import AFTER, BACKGROUND, BEFORE, TripletDataset
from trainer.errors import RunError

SHARE_BINS = 8  # quantile bins of foreground share: few enough to hold C1 and C2 frames each


def foreground_balanced_weights(dataset: TripletDataset, bins: int = SHARE_BINS) -> torch.Tensor:
    """One weight per item: within each bin of foreground share, `before` and `after` samples weigh
    the same in all (the smaller class's count), so a weighted draw sees both classes at every share
    equally often; shares only one class reaches are not drawn. Background samples keep half of the
    draw, as in the unweighted dataset."""
    items = np.array(dataset.items, dtype=np.int64).reshape(-1, 3)
    classes = items[:, 2]
    objects = classes != BACKGROUND
    shares = np.array(
        [dataset.sequences[s].foreground_fraction[t] if c != BACKGROUND else 0.0 for s, t, c in items]
    )
    edges = np.quantile(shares[objects], np.linspace(0.0, 1.0, bins + 1)) if objects.any() else []
    bin_of = np.clip(np.searchsorted(edges, shares, side="right") - 1, 0, bins - 1)
    weights = np.zeros(len(items))
    for b in range(bins):
        before = objects & (bin_of == b) & (classes == BEFORE)
        after = objects & (bin_of == b) & (classes == AFTER)
        kept = min(before.sum(), after.sum())
        if kept:
            weights[before] = kept / before.sum()
            weights[after] = kept / after.sum()
    if not weights.any():
        raise RunError(
            "balance_foreground: no share of foreground is reached by both C1 and C2 training frames, "
            "so no C1 sample can be balanced by a C2 one; train without it or record more footage"
        )
    background = classes == BACKGROUND
    if background.any():
        weights[background] = weights.sum() / background.sum()
    return torch.from_numpy(weights)
