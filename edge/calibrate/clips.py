"""Clips and board images for calibration: from the store (a recording id, or `latest` for the
camera's newest recording: capture times are the real ones), from a video file or image folder
(times from the frame rate), or captured from the live camera."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select
from tqdm import tqdm

from calibration import CalibrationError
from calibration.calibration_file import InputFile, hash_file
from edge.capture.cameras import build_sources
from edge.config import SiteConfig
from edge.sources.base import SourceError
from edge.sources.image_files import ImageFileError, encode_image, image_files, read_image
from edge.store.files import atomic_write
from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Recording

DEFAULT_MAX_FRAMES = 600


@dataclass(frozen=True)
class Clip:
    """Frames of one camera in time order, with capture times in seconds on that camera's clock."""

    description: str
    frames: list[np.ndarray]
    times_s: np.ndarray
    inputs: list[InputFile]


def _store_clip(store: FrameStore, camera: str, spec: str, max_frames: int) -> Clip:
    with store.session() as session:
        if spec == "latest":
            recording = session.scalars(
                select(Recording).where(Recording.camera == camera).order_by(Recording.id.desc())
            ).first()
            if recording is None:
                raise CalibrationError(f"no {camera} recording in the store: run `beltcam record` first")
        else:
            recording = session.get(Recording, int(spec))
            if recording is None:
                raise CalibrationError(f"recording {spec}: not in the store")
        if recording.camera != camera:
            raise CalibrationError(f"recording {recording.id} is from {recording.camera}, not {camera}")
        rows = session.scalars(
            select(Frame)
            .where(Frame.recording_id == recording.id, Frame.missing.is_(False))
            .order_by(Frame.seq)
            .limit(max_frames)
        ).all()
        entries = [(row.path, row.capture_ns, row.capture_utc) for row in rows]
        recording_id = recording.id
    frames, times = [], []
    for path, capture_ns, capture_utc in entries:
        try:
            frames.append(read_image(store.absolute(path)))
        except ImageFileError as error:
            raise CalibrationError(f"recording {recording_id}: {error}") from None
        times.append(capture_ns / 1e9 if capture_ns is not None else capture_utc.timestamp())
    description = f"recording {recording_id} ({camera})"
    return Clip(description, frames, np.asarray(times), [InputFile(name=description, sha256="store")])


def _file_clip(path: Path, fps: float | None, max_frames: int) -> Clip:
    if path.is_dir():
        if not fps:
            raise CalibrationError(f"{path}: an image folder needs --fps to know the frame times")
        files = image_files(path)
        if not files:
            raise CalibrationError(f"{path}: no image files in this folder")
        files = files[:max_frames]
        try:
            frames = [read_image(p) for p in files]
        except ImageFileError as error:
            raise CalibrationError(str(error)) from None
        return Clip(str(path), frames, np.arange(len(frames)) / fps, [hash_file(p) for p in files])
    if not path.is_file():
        raise CalibrationError(f"{path}: no such file or folder")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise CalibrationError(f"{path}: cannot open as a video (unreadable file or unsupported codec)")
    rate = fps or capture.get(cv2.CAP_PROP_FPS) or 0.0
    frames = []
    while len(frames) < max_frames:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise CalibrationError(f"{path}: no frame could be decoded")
    if rate <= 0:
        raise CalibrationError(f"{path}: the video does not state its frame rate; give --fps")
    return Clip(str(path), frames, np.arange(len(frames)) / rate, [hash_file(path)])


def capture_board_images(
    config: SiteConfig, camera: str, count: int, every_s: float, folder: Path
) -> list[Path]:
    """Take `count` frames from the live camera, `every_s` apart, into `folder` as PNG files; the
    technician moves the board between shots. The files stay, so a refused fit can be inspected."""
    source = build_sources(config)[camera]
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        source.open()
        for index in tqdm(range(count), desc=f"capturing {camera}", unit="image", disable=count < 2):
            if index:
                time.sleep(every_s)
            frame = source.read(timeout_s=max(2.0, 3 * every_s))
            path = folder / f"board_{index:03d}.png"
            atomic_write(path, encode_image(frame.image, "png"))
            written.append(path)
    except SourceError as error:
        raise CalibrationError(f"{camera}: {error}") from None
    finally:
        source.close()
    return written


def load_clip(
    spec: str, camera: str, store: FrameStore, fps: float | None = None, max_frames: int = DEFAULT_MAX_FRAMES
) -> Clip:
    """`latest`, a recording id, or a path to a video file or an image folder."""
    if spec == "latest" or spec.isdigit():
        return _store_clip(store, camera, spec, max_frames)
    return _file_clip(Path(spec), fps, max_frames)
