"""From a manifest to training triplets: frames at training size, foreground masks and cached flows.

Everything here is independent of the model, so it is computed once per dataset and settings and
cached, one folder of row files per sequence (`trainer.row_files`); a second run given the same
cache folder (another method or seed, or a resumed one) starts at once. Preparation streams the
footage: the background median from at most `max_background_frames` frames, then one frame at a
time, so neither preparing nor training holds a recording in memory, whatever its length or
resolution.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from trainer.errors import DatasetError
from trainer.flow import make_flow_provider
from trainer.manifest import Manifest, ManifestSequence
from trainer.model import CLASSES
from trainer.one_object import one_object_masks
from trainer.preprocess import ForegroundSettings, foreground_mask, median_background, split_foreground
from trainer.row_files import RowFile, RowWriter

FLOW_DOWNSCALE = 4  # flows are stored (and the temporal loss computed) at 1/4 of the input size
MIN_FOREGROUND = 0.002  # a frame with less foreground than this has nothing to classify
# neighbours further apart than this many typical frame intervals straddle frames the recorder lost
GAP_FACTOR = 1.5
BEFORE, AFTER, BACKGROUND = (CLASSES.index(name) for name in ("before", "after", "background"))
Rows = np.ndarray | RowFile  # indexable by frame: arrays in memory or row files on disk
Shape = tuple[int, int]  # height, width of the network input
ROWS = ("frames", "foreground", "flow_prev", "flow_next")


@dataclass
class PreparedSequence:
    id: str
    camera: str
    label: str
    frames: Rows  # N x H x W x 3 uint8, training size
    foreground: Rows  # N x H x W bool
    flow_prev: Rows  # N x 2 x H/4 x W/4 float16: flow t -> t-1 (zeros for t = 0)
    flow_next: Rows  # N x 2 x H/4 x W/4 float16: flow t -> t+1 (zeros for the last frame)
    original_size: tuple[int, int]  # H, W of the source frames
    frame_paths: list[Path]
    mask_paths: list[Path | None]
    times: list[float | None]  # capture times, seconds (one clock per manifest)
    holdout: bool = False  # evaluation only
    pixel_to_belt: np.ndarray | None = None  # 3x3, source-frame pixels to this camera's belt mm
    foreground_fraction: np.ndarray | None = None  # per frame: the share of foreground pixels

    def __post_init__(self) -> None:
        if self.foreground_fraction is None:
            self.foreground_fraction = np.array(
                [float(np.mean(self.foreground[t])) for t in range(len(self.frames))]
            )

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the frames at training size."""
        return tuple(self.frames.shape[1:3])

    def unbroken_pairs(self) -> np.ndarray:
        """Per neighbouring pair (t, t+1): False where frames were lost between them (a recorder that
        fell behind). Across such a gap the belt may have moved further than flow follows, so a CAM
        warped over it would show frame t objects it never held; frames without times are trusted."""
        pairs = np.ones(max(len(self.times) - 1, 0), bool)
        if len(pairs) < 2 or any(time is None for time in self.times):
            return pairs
        intervals = np.diff(np.asarray(self.times, np.float64))
        return intervals <= GAP_FACTOR * np.median(intervals)

    def training_size_to_belt(self) -> np.ndarray | None:
        """H*W x 2 belt mm (x, y) of every training-size pixel centre, row-major; None uncalibrated."""
        if self.pixel_to_belt is None:
            return None
        size_y, size_x = self.shape
        height, width = self.original_size
        rows, columns = np.mgrid[0:size_y, 0:size_x]
        pixels = np.stack(
            [(columns.ravel() + 0.5) * width / size_x - 0.5, (rows.ravel() + 0.5) * height / size_y - 0.5,
             np.ones(size_y * size_x)]
        )  # fmt: skip
        belt = self.pixel_to_belt @ pixels
        return (belt[:2] / belt[2]).T


def _decode(path: Path, flags: int, what: str) -> np.ndarray:
    """Decode an image file ourselves: a missing file or a JPEG cut short (a camera or a disk that
    failed mid-write) is an error naming it, not OpenCV's warning and a half-grey frame trained on."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read {what} ({error.strerror})") from None
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise DatasetError(f"{path}: {what} is a truncated JPEG (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise DatasetError(f"{path}: cannot read {what} (not an image, or corrupt)")
    return image


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(_decode(path, cv2.IMREAD_COLOR, "frame"), cv2.COLOR_BGR2RGB)


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Label map as stored; any nonzero value other than 2 counts as illegal (1)."""
    mask = _decode(path, cv2.IMREAD_UNCHANGED, "mask")
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.shape != shape:
        raise DatasetError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, frame is {shape[1]}x{shape[0]}")
    return np.where((mask == 0) | (mask == 2), mask, 1).astype(np.uint8)


def _cache_key(
    sequence: ManifestSequence, paths: list[Path], shape: Shape, flow: str, fg: ForegroundSettings
) -> str:
    """What the prepared rows depend on: the frames (by absolute path), their times, the belt's image
    motion and the settings; not which run holds the sequence out, nor where its manifest lives."""
    payload = json.dumps(
        [sequence.id, sequence.camera, [str(p) for p in paths], [f.time_s for f in sequence.frames],
         sequence.belt_velocity_px_s, list(shape), flow, fg.model_dump(), FLOW_DOWNSCALE],
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def _resize(image: np.ndarray, shape: Shape, nearest: bool = False) -> np.ndarray:
    return cv2.resize(image, shape[::-1], interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def model_input(
    image: np.ndarray, background: np.ndarray, shape: Shape, settings: ForegroundSettings
) -> tuple[np.ndarray, np.ndarray]:
    """A frame as the model sees it, in training, evaluation and on the live belt alike: resized to
    the input shape, and its foreground mask (found at the frame's own resolution, against a
    background of that resolution, then resized), so that live masks follow the rule they were
    evaluated with."""
    mask = _resize(foreground_mask(image, background, settings).astype(np.uint8), shape, True).astype(bool)
    return _resize(image, shape), mask


class _MemoryRows:
    """A RowWriter that keeps its rows (small sequences prepared without a cache folder)."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []

    def append(self, row: np.ndarray) -> None:
        self.rows.append(row)

    def close(self) -> None:
        pass


def _read_checked(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    image = read_rgb(path)
    if size is not None and image.shape[:2] != size:
        raise DatasetError(
            f"{path}: frame is {image.shape[1]}x{image.shape[0]}, the sequence's are {size[1]}x{size[0]}"
        )
    return image


def _prepare_rows(
    sequence: ManifestSequence, paths: list[Path], shape: Shape, flow: str, fg: ForegroundSettings, writers
) -> tuple[tuple[int, int], list[float]]:
    """Stream the sequence's frames into `writers` (one per ROWS name); returns the source frames'
    size and each frame's foreground share."""
    step = max(1, len(paths) // fg.max_background_frames)
    sampled = [_read_checked(paths[0], None)]
    size = sampled[0].shape[:2]
    sampled += [_read_checked(path, size) for path in paths[step::step]]
    background = median_background(sampled, fg)
    del sampled
    velocity = None
    if sequence.belt_velocity_px_s is not None:
        vx, vy = sequence.belt_velocity_px_s
        velocity = (vx * shape[1] / size[1], vy * shape[0] / size[0])
    provider = make_flow_provider(flow, velocity)
    times = [f.time_s for f in sequence.frames]
    flow_shape = (shape[0] // FLOW_DOWNSCALE, shape[1] // FLOW_DOWNSCALE)
    no_flow = np.zeros((2, *flow_shape), np.float16)

    def flow_between(t: int, s: int, frame_t: np.ndarray, frame_s: np.ndarray) -> np.ndarray:
        dt = times[s] - times[t] if times[s] is not None and times[t] is not None else None
        flow_field = provider(frame_t, frame_s, dt)
        small = cv2.resize(flow_field, flow_shape[::-1], interpolation=cv2.INTER_AREA)
        return (small / FLOW_DOWNSCALE).transpose(2, 0, 1).astype(np.float16)

    fractions = []
    previous = None
    for t, path in enumerate(paths):
        frame, mask = model_input(_read_checked(path, size), background, shape, fg)
        writers["frames"].append(frame)
        writers["foreground"].append(mask)
        fractions.append(float(mask.mean()))
        writers["flow_prev"].append(no_flow if previous is None else flow_between(t, t - 1, frame, previous))
        if previous is not None:
            writers["flow_next"].append(flow_between(t - 1, t, previous, frame))
        previous = frame
    writers["flow_next"].append(no_flow)
    for writer in writers.values():
        writer.close()
    return size, fractions


def _row_shapes(shape: Shape) -> dict[str, tuple[tuple[int, ...], type]]:
    flow_shape = (2, shape[0] // FLOW_DOWNSCALE, shape[1] // FLOW_DOWNSCALE)
    return {
        "frames": ((*shape, 3), np.uint8),
        "foreground": (shape, np.bool_),
        "flow_prev": (flow_shape, np.float16),
        "flow_next": (flow_shape, np.float16),
    }


def prepare_sequence(
    sequence: ManifestSequence,
    manifest: Manifest,
    base: Path,
    image_size: int | Shape,
    flow: str,
    fg: ForegroundSettings,
    cache_dir: Path | None,
) -> PreparedSequence:
    shape = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    frame_paths = [manifest.resolve(f.path, base) for f in sequence.frames]
    mask_paths = [manifest.resolve(f.mask, base) if f.mask else None for f in sequence.frames]
    described = {
        "frame_paths": frame_paths,
        "mask_paths": mask_paths,
        "times": [f.time_s for f in sequence.frames],
        "holdout": sequence.holdout,
        "pixel_to_belt": None if sequence.pixel_to_belt is None else np.array(sequence.pixel_to_belt),
    }
    if cache_dir is None:
        writers = {name: _MemoryRows() for name in ROWS}
        size, fractions = _prepare_rows(sequence, frame_paths, shape, flow, fg, writers)
        rows = {name: np.stack(writer.rows) for name, writer in writers.items()}
    else:
        folder = cache_dir / f"{sequence.id}-{_cache_key(sequence, frame_paths, shape, flow, fg)}"
        if not (folder / "meta.json").is_file():
            _prepare_folder(sequence, frame_paths, shape, flow, fg, folder)
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        size, fractions = tuple(meta["original_size"]), meta["foreground_fraction"]
        rows = {name: RowFile(folder / f"{name}.npy") for name in ROWS}
    return PreparedSequence(
        sequence.id, sequence.camera, sequence.label, rows["frames"], rows["foreground"], rows["flow_prev"],
        rows["flow_next"], size, **described, foreground_fraction=np.array(fractions),
    )  # fmt: skip


def _prepare_folder(sequence, frame_paths, shape: Shape, flow, fg, folder: Path) -> None:
    """Prepare into a temporary folder and rename it: a killed preparation leaves no half cache, and
    a full disk leaves no partial folder behind and says so in one line."""
    temp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(temp, ignore_errors=True)
    try:
        temp.mkdir(parents=True)
        count = len(frame_paths)
        writers = {
            name: RowWriter(temp / f"{name}.npy", count, row_shape, dtype)
            for name, (row_shape, dtype) in _row_shapes(shape).items()
        }
        size, fractions = _prepare_rows(sequence, frame_paths, shape, flow, fg, writers)
        meta = {"original_size": list(size), "foreground_fraction": fractions}
        (temp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        temp.rename(folder)
    except OSError as error:
        shutil.rmtree(temp, ignore_errors=True)
        raise DatasetError(
            f"{folder.parent}: cannot write the prepared frames of {sequence.id} ({error.strerror}): free "
            "some disk space there"
        ) from None


def prepare_dataset(
    manifest: Manifest,
    base: Path,
    image_size: int | Shape,
    flow: str,
    fg: ForegroundSettings,
    cache_dir: Path | None,
    progress: bool = True,
) -> list[PreparedSequence]:
    prepared = []
    # closed on an error too, so that the error is printed on a line of its own
    with tqdm(manifest.sequences, desc="prepare", unit="seq", disable=not progress) as bar:
        for sequence in bar:
            prepared.append(prepare_sequence(sequence, manifest, base, image_size, flow, fg, cache_dir))
    return prepared


def has_masks(sequence: PreparedSequence) -> bool:
    return any(path is not None for path in sequence.mask_paths)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)


class TripletDataset(Dataset):
    """(X_t-1, X_t, X_t+1) with flows, labels and the class whose CAM the temporal loss uses.

    For each frame t with two neighbours (no frames lost between them): a foreground-only sample of
    the sequence's class (before for C1, after for C2; with `c1_also_after`, C1 foreground also
    carries `after`, since C1 sees the legal objects too) and a background-only sample of class
    `background`.

    `one_object`: a foreground sample shows one object of frame t (and the same object in t-1 and
    t+1), not the whole foreground: the number of objects is then no cue (`trainer.one_object`).

    `augment` (for fine-tuning a pretrained trunk on few nights of footage): the triplet is mirrored
    across the belt half of the time (the belt still runs the same way, so flows stay valid once
    their y component is mirrored too) and its brightness scaled by one factor in [0.8, 1.2] (lamps
    age, daylight changes; black stays black, so foreground-only images stay foreground-only).
    """

    def __init__(
        self,
        sequences: list[PreparedSequence],
        c1_also_after: bool = False,
        augment: bool = False,
        one_object: bool = False,
    ) -> None:
        self.sequences = sequences
        self.items: list[tuple[int, int, int]] = []  # sequence, frame, class
        self.c1_also_after = c1_also_after
        self.augment = augment
        self.one_object = one_object
        for s, sequence in enumerate(sequences):
            if sequence.label not in ("before", "after"):
                continue
            own = BEFORE if sequence.label == "before" else AFTER
            unbroken = sequence.unbroken_pairs()
            for t in range(1, len(sequence.frames) - 1):
                if not (unbroken[t - 1] and unbroken[t]):
                    continue  # the temporal term across lost frames would teach the wrong objects
                if sequence.foreground_fraction[t] >= MIN_FOREGROUND:
                    self.items.append((s, t, own))
                self.items.append((s, t, BACKGROUND))

    def __len__(self) -> int:
        return len(self.items)

    def labels(self, cls: int) -> torch.Tensor:
        vector = torch.zeros(len(CLASSES))
        vector[cls] = 1.0
        if cls == BEFORE and self.c1_also_after:
            vector[AFTER] = 1.0
        return vector

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        s, t, cls = self.items[index]
        sequence = self.sequences[s]
        stored_flows = [f[t].astype(np.float32) for f in (sequence.flow_prev, sequence.flow_next)]
        foregrounds = tuple(sequence.foreground[i] for i in (t - 1, t, t + 1))
        if self.one_object and cls != BACKGROUND:
            foregrounds = one_object_masks(foregrounds, *stored_flows) or foregrounds
        images = []
        for i, foreground in zip((t - 1, t, t + 1), foregrounds, strict=True):
            fg_image, bg_image = split_foreground(sequence.frames[i], foreground)
            images.append(_to_tensor(bg_image if cls == BACKGROUND else fg_image))
        flows = [torch.from_numpy(flow) for flow in stored_flows]
        if self.augment:
            images, flows = _augmented(images, flows)
        return {
            "prev": images[0],
            "centre": images[1],
            "next": images[2],
            "flow_prev": flows[0],
            "flow_next": flows[1],
            "labels": self.labels(cls),
            "cls": torch.tensor(cls),
        }


def _augmented(
    images: list[torch.Tensor], flows: list[torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One random mirror across the belt and one brightness factor for the whole triplet."""
    if bool(torch.rand(()) < 0.5):
        images = [image.flip(-2) for image in images]
        flows = [flow.flip(-2) * torch.tensor([1.0, -1.0]).view(2, 1, 1) for flow in flows]
    gain = 0.8 + 0.4 * float(torch.rand(()))
    return [(image * gain).clamp(0.0, 1.0) for image in images], flows
