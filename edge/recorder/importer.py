"""`beltcam import`: bring existing footage and hand-labelled masks into the store.

An import is all or nothing: any bad file rejects the whole import with a one-line reason naming the
file, and what this import had written is removed again; nothing already in the store is touched.
Its recording is `importing` until the transaction that adds every row closes it; an import killed
before that (SIGKILL, power cut) is rolled back, files and all, by the next start-up check or
`db check --repair`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from shutil import rmtree

import cv2
import numpy as np
from natsort import natsorted
from sqlalchemy import delete
from tqdm import tqdm

from edge.sources.image_files import (
    IMAGE_SUFFIXES,
    ImageFileError,
    encode_image,
    image_files,
    read_image,
    read_label_map,
)
from edge.store.frame_store import FrameStore, utc_now
from edge.store.masks import write_mask_file
from edge.store.models import Frame, Mask, Recording
from edge.store.reconcile import IMPORTING

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImportRejected(ValueError):
    """The import was refused; the message names the file and the reason."""


@dataclass(frozen=True)
class ImportSummary:
    recording_id: int
    frames: int
    masks: int


def _folder_frames(folder: Path) -> Iterator[tuple[str, str, np.ndarray]]:
    """(mask key, where to point a technician, RGB image) per frame."""
    files = image_files(folder)
    if not files:
        raise ImportRejected(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
    for path in files:
        try:
            yield path.stem, str(path), read_image(path)
        except ImageFileError as exc:
            raise ImportRejected(str(exc)) from None


def _video_frames(video: Path) -> Iterator[tuple[str, str, np.ndarray]]:
    capture = cv2.VideoCapture(str(video))
    try:
        if not capture.isOpened():
            raise ImportRejected(f"{video}: cannot open as a video (unreadable file or unsupported codec)")
        index = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            yield str(index), f"{video} (frame {index})", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
        if index == 0:
            raise ImportRejected(f"{video}: no frame could be decoded (corrupt or empty video)")
    finally:
        capture.release()


def _video_fps(video: Path) -> float | None:
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return fps if fps and fps > 0 else None


def _mask_index(masks_dir: Path, is_video: bool) -> dict[str, Path]:
    """Mask files by the frame key they belong to; any non-PNG file is refused up front."""
    if not masks_dir.is_dir():
        raise ImportRejected(f"{masks_dir}: masks folder not found")
    index: dict[str, Path] = {}
    for path in sorted(p for p in masks_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
        if path.suffix.lower() != ".png":
            raise ImportRejected(f"{path}: masks must be PNG label maps (0 background, 1 illegal, 2 legal)")
        with path.open("rb") as handle:
            if handle.read(8) != PNG_SIGNATURE:
                raise ImportRejected(f"{path}: named .png but is not a PNG file")
        key = path.stem
        if is_video:
            if not key.isdigit():
                raise ImportRejected(f"{path}: masks of a video are named by frame index (0.png, 000123.png)")
            key = str(int(key))
        index[key] = path
    return index


def _label_map(path: Path, frame_shape: tuple[int, int]) -> np.ndarray:
    try:
        mask = read_label_map(path)
    except ImageFileError as exc:
        raise ImportRejected(str(exc)) from None
    if mask.ndim == 3:
        if not (np.all(mask[..., 0] == mask[..., 1]) and np.all(mask[..., 0] == mask[..., 2])):
            raise ImportRejected(f"{path}: a mask must be a single-channel label map, not a colour image")
        mask = mask[..., 0]
    if mask.shape != frame_shape:
        mask_size = f"{mask.shape[1]}x{mask.shape[0]}"
        frame_size = f"{frame_shape[1]}x{frame_shape[0]}"
        raise ImportRejected(f"{path}: mask is {mask_size} but its frame is {frame_size}")
    labels = mask.astype(np.int64)
    return np.where((labels == 0) | (labels == 2), labels, np.where(labels > 0, 1, 0)).astype(np.uint8)


def import_footage(
    store: FrameStore,
    camera: str,
    label: str,
    source: Path,
    masks_dir: Path | None = None,
    image_format: str = "png",
    fps: float | None = None,
    progress: bool = True,
) -> ImportSummary:
    source = Path(source)
    if not source.exists():
        raise ImportRejected(f"{source}: no such file or folder")
    is_video = source.is_file()
    masks = _mask_index(masks_dir, is_video) if masks_dir is not None else {}
    frames = _video_frames(source) if is_video else _folder_frames(source)
    fps = fps or (_video_fps(source) if is_video else None)
    first = next(iter(frames))
    height, width = first[2].shape[:2]
    recording_id = store.begin_recording(
        camera, label, f"import:{source.resolve()}", image_format, (width, height), fps, status=IMPORTING
    )
    rows: list[tuple[Frame, Mask | None]] = []
    started = utc_now()
    try:
        stream = itertools.chain([first], frames)
        for seq, (key, where, image) in enumerate(
            tqdm(stream, desc=f"import {source.name}", unit="frame", disable=not progress)
        ):
            if image.shape[:2] != (height, width):
                size = f"{image.shape[1]}x{image.shape[0]}"
                raise ImportRejected(f"{where}: size {size} differs from the first frame's {width}x{height}")
            written = store.write_file(
                store.frame_relpath(camera, recording_id, seq, image_format),
                encode_image(image, image_format),
            )
            period = timedelta(seconds=seq / fps) if fps else timedelta(0)
            frame = Frame(
                recording_id=recording_id,
                seq=seq,
                path=written.path,
                bytes=written.bytes,
                capture_utc=started + period,
            )
            mask = None
            if key in masks:
                labels = _label_map(masks.pop(key), (height, width))
                mask_file = write_mask_file(store, camera, recording_id, seq, labels)
                mask = Mask(
                    path=mask_file.path, bytes=mask_file.bytes, origin="import", created_utc=utc_now()
                )
            rows.append((frame, mask))
        if masks:
            leftover = natsorted(masks.values(), key=lambda p: p.name)[0]
            raise ImportRejected(f"{leftover}: no frame named {leftover.stem} in {source}")
        with store.session() as session:  # every row and the closing in one transaction: all or nothing
            for frame, mask in rows:
                session.add(frame)
                if mask is not None:
                    session.flush()
                    mask.frame_id = frame.id
                    session.add(mask)
            recording = session.get(Recording, recording_id)
            recording.status, recording.ended_utc, recording.frame_count = "closed", utc_now(), len(rows)
    except OSError as error:  # a full or read-only disk: said in one line, like any rejected file
        _discard_recording(store, camera, recording_id)
        raise ImportRejected(
            f"{store.data_dir}: cannot store the import ({error.strerror or error}): nothing was stored"
        ) from None
    except BaseException:
        _discard_recording(store, camera, recording_id)
        raise
    return ImportSummary(recording_id, len(rows), sum(mask is not None for _, mask in rows))


def _discard_recording(store: FrameStore, camera: str, recording_id: int) -> None:
    """Undo a rejected import: its own files and rows only."""
    rmtree(store.recording_dir(camera, recording_id), ignore_errors=True)
    rmtree(store.absolute(store.mask_relpath(camera, recording_id, 0)).parent, ignore_errors=True)
    with store.session() as session:
        session.execute(delete(Frame).where(Frame.recording_id == recording_id))
        session.execute(delete(Recording).where(Recording.id == recording_id))
