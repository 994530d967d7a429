"""Every saved version of a site calibration file, also kept in the store's `calibrations` table.

A version number is never given twice, even when the file was lost or replaced by an older copy:
the next save continues after the highest version the store keeps for that path.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from calibration import CalibrationFile, save_calibration
from calibration.calibration_file import Step
from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import Calibration


def stored_versions(store: FrameStore, path: Path) -> list[int]:
    """The versions of this calibration file the store keeps, oldest first."""
    with store.session() as session:
        versions = session.scalars(select(Calibration.version).where(Calibration.path == str(path)))
        return sorted(int(version) for version in versions)


def stored_content(store: FrameStore, path: Path, version: int) -> dict | None:
    """What version `version` of the file held (the newest copy kept), or None."""
    with store.session() as session:
        return session.scalars(
            select(Calibration.content)
            .where(Calibration.path == str(path), Calibration.version == str(version))
            .order_by(Calibration.id.desc())
        ).first()


def save_version(
    store: FrameStore, path: Path, calibration: CalibrationFile, step: Step, camera: str | None = None
) -> CalibrationFile:
    """Save the next version of the file (after its own and every stored one) and keep it in the store;
    `camera`: the camera a per-camera step measured."""
    stored = stored_versions(store, path)
    calibration = calibration.model_copy(
        update={"version": max(calibration.version, stored[-1] if stored else 0)}
    )
    saved = save_calibration(calibration, path, step, camera)
    with store.session() as session:
        session.add(
            Calibration(
                version=str(saved.version),
                path=str(path),
                created_utc=utc_now(),
                content=saved.model_dump(mode="json", by_alias=True),
            )
        )
        session.commit()
    return saved
