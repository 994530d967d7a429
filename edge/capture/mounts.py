"""When each camera was last mounted anew: the date a belt plane measured before it stops being true.

A camera knocked, re-aimed or replaced still delivers good frames, so nothing else notices; but its
pixel-to-belt mapping, and with it every ejection position, is then wrong. Two things record such a
change as a camera event: the technician (`beltcam cameras moved c1`, state `mounted`), and the
recorder itself when the site file names another source for a camera than the last run did (state
`replaced`: a new serial number or device, which may also be a renumbered USB device, so doctor
only warns about it). `beltcam doctor` compares them with the calibration's belt-plane dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from edge.store.frame_store import FrameStore, as_utc, utc_now
from edge.store.models import CameraEvent

MOUNTED = "mounted"  # said by the technician: the camera was moved, re-aimed or replaced
REPLACED = "replaced"  # seen by the recorder: the site file names another source for the camera
MOUNT_STATES = (MOUNTED, REPLACED)


@dataclass(frozen=True)
class MountChange:
    camera: str
    utc: datetime
    state: str  # MOUNTED or REPLACED
    detail: str


def record_mount_change(store: FrameStore, camera: str, note: str | None = None) -> MountChange:
    change = MountChange(camera, utc_now(), MOUNTED, note or "camera moved, re-aimed or replaced")
    with store.session() as session:
        session.add(CameraEvent(camera=camera, utc=change.utc, state=MOUNTED, detail=change.detail[:512]))
        session.commit()
    return change


def source_change_event(camera: str, before: str, after: str) -> CameraEvent:
    """The recorder's own record of a camera whose source changed between two runs."""
    detail = f"source changed from {before} to {after}"
    return CameraEvent(camera=camera, utc=utc_now(), state=REPLACED, detail=detail[:512])


def last_mount_changes(store: FrameStore) -> dict[str, MountChange]:
    """Each camera's newest mount change, if it ever had one."""
    newest = (
        select(CameraEvent.camera, func.max(CameraEvent.id).label("id"))
        .where(CameraEvent.state.in_(MOUNT_STATES))
        .group_by(CameraEvent.camera)
        .subquery()
    )
    with store.session() as session:
        rows = session.scalars(select(CameraEvent).join(newest, CameraEvent.id == newest.c.id))
        return {
            row.camera: MountChange(row.camera, as_utc(row.utc), row.state, row.detail or "") for row in rows
        }
