"""What a manifest must hold before hours of training are spent on it.

Each refusal names what is missing and what to record; every check here is on the manifest alone
(no frame is read), so a run that cannot end well stops in its first second, not after its last
epoch.
"""

from __future__ import annotations

from trainer.errors import RunError
from trainer.manifest import Manifest

MIN_SEQUENCE = 3  # a triplet (t-1, t, t+1) needs three frames
MIN_MASKED_FRAMES = 2  # one to choose the threshold on, one to measure on


def _trainable(manifest: Manifest, label: str) -> list[str]:
    return [
        s.id
        for s in manifest.sequences
        if s.label == label
        and not s.holdout
        and len(s.frames) >= MIN_SEQUENCE
        and not any(f.mask for f in s.frames)
    ]


def check_training_data(manifest: Manifest, source: str = "manifest") -> list[str]:
    """Raise RunError for data no model can be trained (or evaluated) on; return warnings for what
    will be left out. Messages start with `source`, the manifest's file."""
    if not _trainable(manifest, "before"):
        raise RunError(
            f"{source}: no `before` footage (C1) of {MIN_SEQUENCE} frames or more without masks to train on: "
            "record with both cameras"
        )
    if not _trainable(manifest, "after"):
        raise RunError(
            f"{source}: no `after` footage (C2) of {MIN_SEQUENCE} frames or more to train on: without it "
            "every object would be called illegal; record with both cameras"
        )
    masked = sum(1 for s in manifest.sequences if s.label == "before" for f in s.frames if f.mask)
    if 0 < masked < MIN_MASKED_FRAMES:
        raise RunError(
            f"{source}: only {masked} `before` frame with a mask: evaluation needs {MIN_MASKED_FRAMES} or "
            "more (one to choose the threshold, one to measure on); draw more masks, or remove this one"
        )
    short = [s.id for s in manifest.sequences if len(s.frames) < MIN_SEQUENCE]
    if short:
        shown = ", ".join(short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
        return [f"{source}: left out {len(short)} sequence(s) shorter than {MIN_SEQUENCE} frames: {shown}"]
    return []
