"""Dataset manifests: what the trainer learns from, written out of the store as JSON.

The trainer never sees the database (DESIGN.md): `build_manifest` writes the sequences of frame
paths it needs, with what the site calibration tells about the belt: its image motion for belt-flow
training, and the geometry the removal-based object check needs on held-out footage.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import exists, select

from calibration import CalibrationFile, load_calibration
from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Mask, Recording
from trainer.manifest import BeltGeometry, Manifest, ManifestFrame, ManifestSequence, save_manifest

USABLE = ("closed", "interrupted")
HOLDOUT_FRACTION = 0.2


class NoTrainingData(ValueError):
    """The store holds nothing the requested manifest could be built from."""


def _belt_velocity(recording: Recording, calibration: CalibrationFile | None) -> tuple[float, float] | None:
    """Image velocity of the belt in px/s at the image centre: from the site calibration when it
    has the belt speed and this camera's belt plane (a simulated site's is the simulator's own)."""
    plane = calibration.camera(recording.camera).belt_plane if calibration else None
    if plane is not None and calibration.belt.speed_mm_s:
        centre = np.array([[recording.width / 2, recording.height / 2]])
        belt_plane = plane.to_plane()
        one_second_later = belt_plane.to_pixels(
            belt_plane.to_belt(centre) + np.array([[calibration.belt.speed_mm_s, 0.0]])
        )
        dx, dy = (one_second_later - centre)[0]
        return float(dx), float(dy)
    return None


def _belt_geometry(calibration: CalibrationFile | None) -> BeltGeometry | None:
    """What the object check needs, when the site calibration has all of it."""
    if calibration is None or calibration.offsets is None or not calibration.belt.speed_mm_s:
        return None
    if any(calibration.camera(camera).belt_plane is None for camera in ("c1", "c2")):
        return None
    return BeltGeometry(
        speed_mm_s=calibration.belt.speed_mm_s,
        c1_to_c2_mm=calibration.offsets.c1_to_c2_mm,
        c2_clock_offset_ms=calibration.offsets.c2_clock_offset_ms,
    )


def _held_out(recordings: list[tuple[Recording, list, bool]], travel: timedelta) -> set[int]:
    """The newest HOLDOUT_FRACTION of the unmasked C1 recordings (at least one, never all) whose
    objects C2 was still recording when they arrived (`travel`: from C1 to the far edge of C2's view),
    and the C2 recordings that saw them: footage no model of this run learns from, where the object
    check chooses the threshold. Newer C1 footage, whose objects C2 has not seen yet, is trained on."""
    c1 = sorted(
        (rows[0][2], rows[-1][2], r.id) for r, rows, masked in recordings if r.camera == "c1" and not masked
    )
    # C2 segments start a moment before or after C1's: a C2 recording counts from its middle
    c2 = sorted(
        (rows[0][2] + (rows[-1][2] - rows[0][2]) / 2, rows[-1][2], r.id)
        for r, rows, _ in recordings
        if r.camera == "c2"
    )
    if len(c1) < 2 or not c2:
        return set()
    c2_end = max(end for _, end, _ in c2)
    checkable = [c for c in c1 if c[1] + travel <= c2_end]
    held = checkable[-max(1, round(HOLDOUT_FRACTION * len(c1))) :][-(len(c1) - 1) :]
    if not held:
        return set()
    cut, last = held[0][0], held[-1][1] + travel
    c2_held = [rid for middle, _, rid in c2 if cut <= middle <= last]
    if len(c2_held) == len(c2):
        c2_held = c2_held[1:]  # C2 footage to train on comes first
    return {rid for _, _, rid in held} | set(c2_held)


def _travel(calibration: CalibrationFile, belt: BeltGeometry, recordings) -> timedelta:
    """Time for an object at C1's origin to cross C2's view: the distance plus C2's view length."""
    c2 = next((r for r, _, _ in recordings if r.camera == "c2"), None)
    view_mm = 0.0
    if c2 is not None:
        plane = calibration.camera("c2").belt_plane.to_plane()
        ends = plane.to_belt(np.array([[0.0, c2.height / 2], [float(c2.width), c2.height / 2]]))
        view_mm = float(abs(ends[1, 0] - ends[0, 0]))
    return timedelta(seconds=(belt.c1_to_c2_mm + view_mm) / belt.speed_mm_s)


def build_manifest(
    store: FrameStore, out: Path, calibration_file: Path | None = None, since: datetime | None = None
) -> tuple[Manifest, list[int]]:
    """Write the training manifest of every usable before/after recording; returns it and the ids of
    the recordings it used.

    `before` recordings with masks go in for evaluation only (the trainer never trains on them). With
    a site calibration that has both belt planes, the belt speed and the C1-to-C2 offsets, the newest
    footage is held out for the removal-based object check (see `_held_out`) and the manifest carries
    the belt geometry, each camera's pixel-to-belt plane and frame times on one clock; that is how a
    run on a site without masks chooses its threshold. The calibration also gives belt-flow training
    its image motion. `since` leaves out recordings started before it (the nightly loop learns from
    recent footage: belts, lighting and waste change over weeks).
    """
    calibration = load_calibration(calibration_file) if calibration_file else None
    belt = _belt_geometry(calibration)
    has_mask = exists().where(Mask.frame_id == Frame.id, Frame.recording_id == Recording.id)
    query = select(Recording, has_mask).where(
        Recording.status.in_(USABLE), Recording.label.in_(("before", "after"))
    )
    if since is not None:
        query = query.where(Recording.started_utc >= since)
    recordings = []
    with store.session() as session:
        for recording, masked in session.execute(query.order_by(Recording.id)).all():
            if masked and recording.label != "before":
                continue  # masks are evaluated on C1 only
            rows = session.execute(  # (frame path, mask path, capture time)
                select(Frame.path, Mask.path, Frame.capture_utc)
                .outerjoin(Mask, Mask.frame_id == Frame.id)
                .where(Frame.recording_id == recording.id, Frame.missing.is_(False))
                .order_by(Frame.seq)
            ).all()
            if len(rows) >= 3:  # a triplet needs three frames
                session.expunge(recording)
                recordings.append((recording, rows, bool(masked)))
    if not any(not masked for _, _, masked in recordings):
        raise NoTrainingData(
            f"the store at {store.data_dir} has no before/after recordings of 3 frames or more"
        )
    held = _held_out(recordings, _travel(calibration, belt, recordings)) if belt is not None else set()
    epoch = min(rows[0][2] for _, rows, _ in recordings)
    sequences = [
        ManifestSequence(
            id=f"rec{recording.id}",
            camera=recording.camera,
            label=recording.label,
            frames=[
                ManifestFrame(
                    path=str(store.absolute(frame_path)),
                    mask=str(store.absolute(mask_path)) if mask_path else None,
                    time_s=(captured - epoch).total_seconds(),
                )
                for frame_path, mask_path, captured in rows
            ],
            belt_velocity_px_s=_belt_velocity(recording, calibration),
            pixel_to_belt=_plane(calibration, recording.camera) if belt is not None else None,
            holdout=recording.id in held,
        )
        for recording, rows, _ in recordings
    ]
    manifest = Manifest(sequences=sequences, belt=belt)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_manifest(manifest, out)
    return manifest, [recording.id for recording, _, _ in recordings]


def _plane(calibration: CalibrationFile, camera: str) -> tuple:
    return tuple(tuple(row) for row in calibration.camera(camera).belt_plane.pixel_to_belt)
