"""Calibration photos uploaded through the panel: checked, then kept under the data directory.

An upload is not trusted: its name is reduced to a safe one (no folders, no dots in front), its
bytes must decode as an image with OpenCV, within a size in bytes and in pixels (the pixels are
counted from the file's header before anything is decoded: a small PNG can unpack to gigabytes),
and what is kept
is the decoded picture written again as PNG (what OpenCV read is what the calibration step reads;
nothing else the file carried is kept). Photos are kept per camera and per purpose:
`calibration_images/<camera>/panel-lens/` (board photos for the lens model, used all together) and
`calibration_images/<camera>/panel-belt/` (photos of the board lying on the belt, used one at a time).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from werkzeug.utils import secure_filename

from edge.sources.image_files import IMAGE_SUFFIXES, ImageFileError, encode_image, image_files
from edge.store.files import atomic_write

PURPOSES = {"lens": "panel-lens", "belt": "panel-belt"}
MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40 MP photo; more is a mistake or a decompression bomb
MAX_FILES_KEPT = 100  # per camera and purpose


class UploadRefused(ValueError):
    """One uploaded file is refused; the message names it and says why."""


@dataclass
class Upload:
    name: str
    data: bytes


def upload_folder(data_dir: Path, camera: str, purpose: str) -> Path:
    return data_dir / "calibration_images" / camera / PURPOSES[purpose]


def safe_name(original: str, taken: set[str]) -> str:
    """A PNG name made of the upload's own name's safe characters, never one already taken."""
    base = (original or "").replace("\\", "/").rsplit("/", 1)[-1]  # the name, never its folders
    stem = Path(secure_filename(base)).stem.lstrip(".")[:80] or "photo"
    name, n = f"{stem}.png", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    return name


def decode(upload: Upload) -> np.ndarray:
    """The upload as RGB pixels, or UploadRefused saying what is wrong with it."""
    shown = upload.name or "(no name)"
    if not upload.data:
        raise UploadRefused(f"{shown}: empty file")
    if len(upload.data) > MAX_FILE_BYTES:
        raise UploadRefused(f"{shown}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    if Path(upload.name).suffix.lower() not in IMAGE_SUFFIXES:
        raise UploadRefused(f"{shown}: not an image file name (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
    unreadable = UploadRefused(f"{shown}: not an image OpenCV can read (corrupt, or not a picture)")
    try:
        with Image.open(io.BytesIO(upload.data)) as header:  # reads the header only
            width, height = header.size
    except Exception:  # Pillow raises many kinds (unknown format, truncated header, bomb)
        raise unreadable from None
    if width * height > MAX_PIXELS:
        raise UploadRefused(f"{shown}: {width}x{height} pixels is more than a calibration photo needs")
    image = cv2.imdecode(np.frombuffer(upload.data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise unreadable
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def store_uploads(folder: Path, uploads: list[Upload]) -> list[str]:
    """Check every upload first, then keep them all (nothing is kept when one is refused); returns
    the names they were kept under."""
    pictures = [decode(upload) for upload in uploads]
    if not pictures:
        raise UploadRefused("no file chosen")
    kept = listed(folder)
    if len(kept) + len(pictures) > MAX_FILES_KEPT:
        raise UploadRefused(
            f"at most {MAX_FILES_KEPT} photos per camera and purpose: remove the old ones first"
        )
    taken, names = set(kept), []
    folder.mkdir(parents=True, exist_ok=True)
    for upload, picture in zip(uploads, pictures, strict=True):
        name = safe_name(upload.name, taken)
        try:
            atomic_write(folder / name, encode_image(picture, "png"))
        except ImageFileError as error:
            raise UploadRefused(f"{upload.name}: {error}") from None
        taken.add(name)
        names.append(name)
    return names


def listed(folder: Path) -> list[str]:
    """The kept photos' names, in natural order."""
    return [path.name for path in image_files(folder)] if folder.is_dir() else []


def remove_all(folder: Path) -> int:
    """Remove every kept photo of a folder (only the images this module wrote); how many."""
    names = listed(folder)
    for name in names:
        (folder / name).unlink(missing_ok=True)
    return len(names)
