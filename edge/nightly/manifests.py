"""Dataset manifests: what the trainer learns from, written out of the store as JSON.

The trainer never sees the database (DESIGN.md): `build_manifest` writes the sequences of frame
paths it needs, with the belt's image motion from the calibration for belt-flow training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from sqlalchemy import exists, select

from calibration import CalibrationFile, load_calibration
from edge.simulator.calibration_truth import SIMULATOR_CALIBRATION_FILE
from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Mask, Recording
from trainer.manifest import Manifest, ManifestFrame, ManifestSequence, save_manifest

Purpose = Literal["train", "eval"]
USABLE = ("closed", "interrupted")


class NoTrainingData(ValueError):
    """The store holds nothing the requested manifest could be built from."""


def _belt_velocity(
    store: FrameStore, recording: Recording, calibration: CalibrationFile | None
) -> tuple[float, float] | None:
    """Image velocity of the belt in px/s at the image centre: from the site calibration when it
    has the belt speed and this camera's belt plane, else from the simulator's ground truth."""
    plane = calibration.camera(recording.camera).belt_plane if calibration else None
    if plane is not None and calibration.belt.speed_mm_s:
        centre = np.array([[recording.width / 2, recording.height / 2]])
        belt_plane = plane.to_plane()
        one_second_later = belt_plane.to_pixels(
            belt_plane.to_belt(centre) + np.array([[calibration.belt.speed_mm_s, 0.0]])
        )
        dx, dy = (one_second_later - centre)[0]
        return float(dx), float(dy)
    path = store.data_dir / SIMULATOR_CALIBRATION_FILE
    if not path.is_file():
        return None
    truth = yaml.safe_load(path.read_text(encoding="utf-8"))
    camera_entry = truth.get("cameras", {}).get(recording.camera)
    if not camera_entry:
        return None
    return (truth["belt_speed_mm_s"] / camera_entry["mm_per_px"], 0.0)


def build_manifest(
    store: FrameStore, purpose: Purpose, out: Path, calibration_file: Path | None = None
) -> tuple[Manifest, list[int]]:
    """Write a manifest of every usable before/after recording for training (those without masks)
    or evaluation (`before` recordings with masks); returns it and the recording ids it used.
    The site calibration, when given, supplies the belt motion for belt-flow training."""
    calibration = load_calibration(calibration_file) if calibration_file else None
    has_mask = exists().where(Mask.frame_id == Frame.id, Frame.recording_id == Recording.id)
    query = select(Recording).where(Recording.status.in_(USABLE), Recording.label.in_(("before", "after")))
    query = (
        query.where(~has_mask) if purpose == "train" else query.where(has_mask, Recording.label == "before")
    )
    sequences, used = [], []
    with store.session() as session:
        for recording in session.scalars(query.order_by(Recording.id)):
            rows = session.execute(
                select(Frame, Mask.path)
                .outerjoin(Mask, Mask.frame_id == Frame.id)
                .where(Frame.recording_id == recording.id, Frame.missing.is_(False))
                .order_by(Frame.seq)
            ).all()
            if len(rows) < 3:
                continue  # a triplet needs three frames
            start = rows[0][0].capture_utc
            frames = [
                ManifestFrame(
                    path=str(store.absolute(frame.path)),
                    mask=str(store.absolute(mask_path)) if mask_path else None,
                    time_s=(frame.capture_utc - start).total_seconds(),
                )
                for frame, mask_path in rows
            ]
            sequences.append(
                ManifestSequence(
                    id=f"rec{recording.id}",
                    camera=recording.camera,
                    label=recording.label,
                    frames=frames,
                    belt_velocity_px_s=_belt_velocity(store, recording, calibration),
                )
            )
            used.append(recording.id)
    if not sequences:
        what = (
            "before/after recordings without masks" if purpose == "train" else "before recordings with masks"
        )
        raise NoTrainingData(f"the store at {store.data_dir} has no {what} of 3 frames or more")
    manifest = Manifest(sequences=sequences)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_manifest(manifest, out)
    return manifest, used

