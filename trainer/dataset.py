"""From a manifest to training triplets: frames at training size, foreground masks and cached flows.

Everything here is independent of the model, so it is computed once per dataset and settings and
cached as one .npz per sequence; a second run (another method or seed) starts at once.
"""

from __future__ import annotations

import hashlib
import json
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
from trainer.preprocess import ForegroundSettings, foreground_mask, median_background, split_foreground

FLOW_DOWNSCALE = 4  # flows are stored (and the temporal loss computed) at 1/4 of the input size
MIN_FOREGROUND = 0.002  # a frame with less foreground than this has nothing to classify
BEFORE, AFTER, BACKGROUND = (CLASSES.index(name) for name in ("before", "after", "background"))


@dataclass
class PreparedSequence:
    id: str
    camera: str
    label: str
    frames: np.ndarray  # N x S x S x 3 uint8, training size
    foreground: np.ndarray  # N x S x S bool
    flow_prev: np.ndarray  # N x 2 x F x F float16: flow t -> t-1 (zeros for t = 0)
    flow_next: np.ndarray  # N x 2 x F x F float16: flow t -> t+1 (zeros for the last frame)
    original_size: tuple[int, int]  # H, W of the source frames
    frame_paths: list[Path]
    mask_paths: list[Path | None]


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: cannot read frame (missing or corrupt)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """Label map as stored; any nonzero value other than 2 counts as illegal (1)."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DatasetError(f"{path}: cannot read mask")
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.shape != shape:
        raise DatasetError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, frame is {shape[1]}x{shape[0]}")
    return np.where((mask == 0) | (mask == 2), mask, 1).astype(np.uint8)


def _cache_key(
    sequence: ManifestSequence, base: Path, image_size: int, flow: str, fg: ForegroundSettings
) -> str:
    payload = json.dumps(
        [sequence.model_dump(mode="json"), str(base), image_size, flow, fg.model_dump(), FLOW_DOWNSCALE],
        sort_keys=True,
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def _resize(image: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def _flows(
    frames: np.ndarray, times: list[float | None], provider, flow_size: int
) -> tuple[np.ndarray, np.ndarray]:
    count, size = len(frames), frames.shape[1]
    prev = np.zeros((count, 2, flow_size, flow_size), np.float16)
    nxt = np.zeros_like(prev)
    scale = flow_size / size

    def compute(t: int, s: int) -> np.ndarray:
        dt = times[s] - times[t] if times[s] is not None and times[t] is not None else None
        flow = provider(frames[t], frames[s], dt)
        small = cv2.resize(flow, (flow_size, flow_size), interpolation=cv2.INTER_AREA) * scale
        return small.transpose(2, 0, 1).astype(np.float16)

    for t in range(count):
        if t > 0:
            prev[t] = compute(t, t - 1)
        if t + 1 < count:
            nxt[t] = compute(t, t + 1)
    return prev, nxt


def prepare_sequence(
    sequence: ManifestSequence,
    manifest: Manifest,
    base: Path,
    image_size: int,
    flow: str,
    fg: ForegroundSettings,
    cache_dir: Path | None,
) -> PreparedSequence:
    frame_paths = [manifest.resolve(f.path, base) for f in sequence.frames]
    mask_paths = [manifest.resolve(f.mask, base) if f.mask else None for f in sequence.frames]
    key = _cache_key(sequence, base, image_size, flow, fg)
    cached = cache_dir / f"{sequence.id}-{key}.npz" if cache_dir else None
    if cached is not None and cached.is_file():
        data = np.load(cached)
        return PreparedSequence(
            sequence.id, sequence.camera, sequence.label, data["frames"], data["foreground"],
            data["flow_prev"], data["flow_next"], tuple(data["original_size"]), frame_paths, mask_paths,
        )  # fmt: skip
    originals = [read_rgb(path) for path in frame_paths]
    height, width = originals[0].shape[:2]
    for path, image in zip(frame_paths, originals, strict=True):
        if image.shape[:2] != (height, width):
            raise DatasetError(
                f"{path}: frame is {image.shape[1]}x{image.shape[0]}, the sequence's are {width}x{height}"
            )
    background = median_background(originals, fg)
    foreground = np.stack(
        [_resize(foreground_mask(f, background, fg).astype(np.uint8), image_size, True) for f in originals]
    )
    frames = np.stack([_resize(f, image_size) for f in originals])
    velocity = None
    if sequence.belt_velocity_px_s is not None:
        vx, vy = sequence.belt_velocity_px_s
        velocity = (vx * image_size / width, vy * image_size / height)
    provider = make_flow_provider(flow, velocity)
    times = [f.time_s for f in sequence.frames]
    flow_prev, flow_next = _flows(frames, times, provider, image_size // FLOW_DOWNSCALE)
    prepared = PreparedSequence(
        sequence.id, sequence.camera, sequence.label, frames, foreground.astype(bool),
        flow_prev, flow_next, (height, width), frame_paths, mask_paths,
    )  # fmt: skip
    if cached is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        temp = cached.with_suffix(".tmp.npz")
        np.savez(
            temp, frames=frames, foreground=prepared.foreground, flow_prev=flow_prev,
            flow_next=flow_next, original_size=np.array([height, width]),
        )  # fmt: skip
        temp.replace(cached)
    return prepared


def prepare_dataset(
    manifest: Manifest,
    base: Path,
    image_size: int,
    flow: str,
    fg: ForegroundSettings,
    cache_dir: Path | None,
    progress: bool = True,
) -> list[PreparedSequence]:
    return [
        prepare_sequence(sequence, manifest, base, image_size, flow, fg, cache_dir)
        for sequence in tqdm(manifest.sequences, desc="prepare", unit="seq", disable=not progress)
    ]


def has_masks(sequence: PreparedSequence) -> bool:
    return any(path is not None for path in sequence.mask_paths)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)


class TripletDataset(Dataset):
    """(X_t-1, X_t, X_t+1) with flows, labels and the class whose CAM the temporal loss uses.

    For each frame t with two neighbours: a foreground-only sample of the sequence's class (before
    for C1, after for C2; with `c1_also_after`, C1 foreground also carries `after`, since C1 sees the
    legal objects too) and a background-only sample of class `background`.

    `augment` (for fine-tuning a pretrained trunk on few nights of footage): the triplet is mirrored
    across the belt half of the time (the belt still runs the same way, so flows stay valid once
    their y component is mirrored too) and its brightness scaled by one factor in [0.8, 1.2] (lamps
    age, daylight changes; black stays black, so foreground-only images stay foreground-only).
    """

    def __init__(
        self, sequences: list[PreparedSequence], c1_also_after: bool = False, augment: bool = False
    ) -> None:
        self.sequences = sequences
        self.items: list[tuple[int, int, int]] = []  # sequence, frame, class
        self.c1_also_after = c1_also_after
        self.augment = augment
        for s, sequence in enumerate(sequences):
            if sequence.label not in ("before", "after"):
                continue
            own = BEFORE if sequence.label == "before" else AFTER
            for t in range(1, len(sequence.frames) - 1):
                if sequence.foreground[t].mean() >= MIN_FOREGROUND:
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
        images = []
        for i in (t - 1, t, t + 1):
            fg_image, bg_image = split_foreground(sequence.frames[i], sequence.foreground[i])
            images.append(_to_tensor(bg_image if cls == BACKGROUND else fg_image))
        flows = [torch.from_numpy(f[t].astype(np.float32)) for f in (sequence.flow_prev, sequence.flow_next)]
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
