"""C1's background on the live belt: the trainer's median background, kept current online.

Training takes each recording's median; the live path has no recording to wait for, so it keeps a
running median of the last `frames` sampled frames (one every `every` frames: a belt's objects move
on between samples, so the median is the belt, not them) and recomputes it at each sample. Until
three frames are in, every frame is sampled and nothing is segmented.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from trainer.preprocess import ForegroundSettings, median_background

MIN_SAMPLES = 3


class RunningBackground:
    def __init__(self, settings: ForegroundSettings, frames: int = 31, every: int = 5) -> None:
        self.settings = settings
        self.every = every
        self._samples: deque[np.ndarray] = deque(maxlen=frames)
        self._seen = 0
        self.background: np.ndarray | None = None

    def update(self, image: np.ndarray) -> np.ndarray | None:
        """Offer a frame; returns the background to segment it against (None while warming up)."""
        if self._samples and self._samples[-1].shape != image.shape:
            self._samples.clear()  # the camera's resolution changed: start again
            self.background = None
        self._seen += 1
        if len(self._samples) < MIN_SAMPLES or self._seen % self.every == 0:
            self._samples.append(image)
            if len(self._samples) >= MIN_SAMPLES:
                self.background = median_background(list(self._samples), self.settings)
        return self.background
