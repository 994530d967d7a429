"""Ground-truth masks: the PNG label maps (0 background, 1 illegal, 2 legal) and their `masks` rows.

One way to write a mask file, shared by `beltcam import --masks` and the panel's Annotate page, so
that a mask drawn by hand and an imported one are the same file at the same place
(`FrameStore.mask_relpath`) and training and evaluation never need to know where one came from.
It lives in the store (the bottom room) so that the recorder and the panel can both call it.

`save_mask` adds or replaces the mask of one existing frame: the file is written atomically
(temp file, fsync, rename, folder fsynced) before the one transaction that adds or updates its row,
as everywhere in the store; if that transaction fails the file is put back as it was.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from edge.store.files import atomic_write, fsync_directory
from edge.store.frame_store import FrameStore, WrittenFile, utc_now
from edge.store.models import Frame, Mask, Recording

LABELS = {0: "background", 1: "illegal", 2: "legal"}
ORIGINS = ("import", "panel", "simulator")
PNG_COMPRESSION = 1  # masks compress well even at the fastest level; frames use the same


class MaskError(ValueError):
    """A mask that cannot be stored; the message says why in one line, `status` is the HTTP code
    a web caller should answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class MaskTarget:
    """The frame a mask is for, with what a caller needs to check and draw on it."""

    frame_id: int
    recording_id: int
    seq: int
    camera: str
    label: str  # the recording's: before, after or unlabeled
    width: int
    height: int
    capture_utc: datetime
    mask_path: str | None  # the current mask's file, None without one
    mask_origin: str | None
    mask_created_utc: datetime | None


@dataclass(frozen=True)
class SavedMask:
    frame_id: int
    mask_id: int
    path: str
    bytes: int
    replaced: str | None  # the origin of the mask this one replaced, None for a first mask
    pixels: dict[str, int]  # pixels per class name


def encode_label_map(labels: np.ndarray) -> bytes:
    """A uint8 label map as a single-channel PNG, the format every mask in the store has."""
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise MaskError(f"a mask must be a 2-D uint8 label map, not {labels.dtype} {labels.shape}")
    ok, buffer = cv2.imencode(".png", labels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise MaskError("the mask could not be encoded as PNG")
    return buffer.tobytes()


def write_mask_file(
    store: FrameStore, camera: str, recording_id: int, seq: int, labels: np.ndarray
) -> WrittenFile:
    """Write the label map of frame `seq` of a recording where the store keeps masks; atomic."""
    return store.write_file(store.mask_relpath(camera, recording_id, seq), encode_label_map(labels))


def read_mask_labels(store: FrameStore, relative: str) -> np.ndarray | None:
    """A stored mask as its label map; None when its file is gone or unreadable."""
    labels = cv2.imread(str(store.absolute(relative)), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.ndim != 2:
        return None
    return labels.astype(np.uint8)


def check_labels(labels: np.ndarray, shape: tuple[int, int]) -> None:
    """Only a label map of the frame's size with values 0, 1 and 2 is ground truth."""
    if labels.ndim != 2:
        raise MaskError(f"a mask must be a single-channel label map, not an array of shape {labels.shape}")
    if labels.shape != shape:
        raise MaskError(
            f"the mask is {labels.shape[1]}x{labels.shape[0]} but the frame is {shape[1]}x{shape[0]}"
        )
    if labels.dtype != np.uint8:
        raise MaskError(f"a mask must hold uint8 labels, not {labels.dtype}")
    counts = np.bincount(labels.ravel(), minlength=256)  # one pass, no sort: frames are megapixels
    wrong = [int(value) for value in np.flatnonzero(counts) if int(value) not in LABELS]
    if wrong:
        raise MaskError(
            "label values must be 0 (background), 1 (illegal) or 2 (legal); "
            f"found {', '.join(map(str, wrong[:5]))}"
        )


def mask_target(store: FrameStore, frame_id: int, camera: str | None = None) -> MaskTarget:
    """The frame `frame_id` as something to draw a mask on; MaskError when it does not exist, its
    picture is gone, its recording is still being imported, or it is not `camera`'s."""
    with store.session() as session:
        row = session.execute(
            select(Frame, Recording)
            .join(Recording, Frame.recording_id == Recording.id)
            .where(Frame.id == frame_id)
        ).first()
        if row is None:
            raise MaskError(f"no frame {frame_id} in the store", status=404)
        frame, recording = row
        if frame.missing:
            raise MaskError(f"frame {frame_id}: its picture is missing from the store", status=404)
        if recording.status == "importing":
            raise MaskError(f"frame {frame_id}: its recording is still being imported", status=409)
        if camera is not None and recording.camera != camera:
            raise MaskError(
                f"frame {frame_id} is a {recording.camera.upper()} frame: "
                f"masks are drawn on {camera.upper()} frames only"
            )
        mask = frame.mask
        return MaskTarget(
            frame_id=frame.id,
            recording_id=recording.id,
            seq=frame.seq,
            camera=recording.camera,
            label=recording.label,
            width=recording.width,
            height=recording.height,
            capture_utc=frame.capture_utc,
            mask_path=mask.path if mask else None,
            mask_origin=mask.origin if mask else None,
            mask_created_utc=mask.created_utc if mask else None,
        )


_SAVING = threading.Lock()  # one save at a time in this process: two technicians on one frame


def save_mask(
    store: FrameStore, frame_id: int, labels: np.ndarray, origin: str, camera: str | None = None
) -> SavedMask:
    """Store `labels` as frame `frame_id`'s mask, replacing the one it has. MaskError (one line)
    when the frame or the labels are not acceptable or the store cannot take the mask."""
    if origin not in ORIGINS:
        raise MaskError(f"unknown mask origin {origin!r} (one of {', '.join(ORIGINS)})")
    with _SAVING:
        target = mask_target(store, frame_id, camera)
        check_labels(labels, (target.height, target.width))
        relative = store.mask_relpath(target.camera, target.recording_id, target.seq)
        path = store.absolute(relative)
        try:
            previous = path.read_bytes() if path.is_file() else None
            written = write_mask_file(store, target.camera, target.recording_id, target.seq, labels)
            fsync_directory(path.parent)
        except OSError as error:
            raise MaskError(f"cannot store the mask ({error.strerror or error})", status=507) from None
        try:
            mask_id, replaced, old_path = _index(store, frame_id, written, origin)
        except BaseException as error:
            _put_back(path, previous)
            if isinstance(error, IntegrityError):
                message = f"frame {frame_id} got a mask from elsewhere meanwhile: reload and try again"
                raise MaskError(message, status=409) from None
            if isinstance(error, SQLAlchemyError):
                message = f"the store's index refused the mask ({type(error).__name__}): try again"
                raise MaskError(message, status=503) from None
            raise
    if old_path is not None and old_path != relative:
        store.absolute(old_path).unlink(missing_ok=True)  # the replaced mask lived elsewhere
    counts = np.bincount(labels.ravel(), minlength=len(LABELS))
    pixels = {name: int(counts[value]) for value, name in LABELS.items()}
    return SavedMask(frame_id, mask_id, written.path, written.bytes, replaced, pixels)


def _index(
    store: FrameStore, frame_id: int, written: WrittenFile, origin: str
) -> tuple[int, str | None, str | None]:
    """Add or update the mask row in one transaction; (mask id, replaced origin, replaced path)."""
    with store.session() as session:
        frame = session.get(Frame, frame_id)
        if frame is None or frame.missing:  # evicted between the check and now
            raise MaskError(f"frame {frame_id} left the store while its mask was saved", status=404)
        mask = session.scalars(select(Mask).where(Mask.frame_id == frame_id)).first()
        replaced = old_path = None
        if mask is None:
            mask = Mask(frame_id=frame_id, path=written.path, bytes=written.bytes, origin=origin)
            mask.created_utc = utc_now()
            session.add(mask)
        else:  # the simulator's per-object truth described the old mask, not this one
            replaced, old_path = mask.origin, mask.path
            mask.path, mask.bytes, mask.origin, mask.objects = written.path, written.bytes, origin, None
            mask.created_utc = utc_now()
        session.flush()
        return mask.id, replaced, old_path


def _put_back(path: Path, previous: bytes | None) -> None:
    """Undo the file write of a save whose row was not stored: the file is as the index says."""
    try:
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            atomic_write(path, previous)
    except OSError:
        pass  # the new labels stay under the old row: still a whole, valid mask of the same frame
