"""The live model: an exported classifier in ONNX Runtime that turns C1 frames into label maps.

What makes a frame the model's input (resize, foreground against the median background,
normalisation) and what makes its maps a mask (upsampling, normalising, the threshold rule) is the
trainer's own code, imported: the live belt is segmented by the rule the model was evaluated with.
A file the live path cannot use (unreadable, another input kind, no threshold) is refused at load
with the reason, so a bad candidate never reaches the valves.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime
import torch

from edge.config import LiveConfig
from edge.live.background import RunningBackground
from edge.live.fusion import TemporalFusion
from trainer.cams import input_batch, maps_at_input_size, masks_from_maps
from trainer.dataset import AFTER, BEFORE, model_input
from trainer.model import CLASSES, IMAGENET_MEAN, IMAGENET_STD
from trainer.onnx_model import ENGINE_CACHE_DIR, session_options, session_providers
from trainer.preprocess import ForegroundSettings, split_foreground

if TYPE_CHECKING:
    from edge.live.tensorrt_engine import TensorRTEngine

log = logging.getLogger(__name__)
ENGINE_NOTICE_S = 15.0  # while a TensorRT engine builds, say so this often


class ModelRefused(ValueError):
    """A model file the live path cannot use: the message names the file and the reason."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    input_shape: tuple[int, int]  # height, width
    threshold: float
    threshold_source: str
    method: str
    backbone: str
    foreground: ForegroundSettings


@dataclass(frozen=True)
class Segmentation:
    labels: np.ndarray  # input-size uint8 label map: 0 background, 1 illegal, 2 legal
    maps: torch.Tensor  # 2 x H x W (before, after) after fusion, in [0, 1]
    frame: np.ndarray  # the input-size RGB frame the maps belong to


def _metadata_error(path: Path, meta: dict[str, str]) -> str | None:
    for key in ("classes", "input_height", "input_width", "mean", "std", "threshold"):
        if key not in meta:
            return (
                f"no `{key}` in its metadata (not exported by `beltcam export`, or too old): export it again"
            )
    if json.loads(meta["classes"]) != list(CLASSES):
        return f"classes {meta['classes']} are not {list(CLASSES)}"
    if not (
        np.allclose(json.loads(meta["mean"]), IMAGENET_MEAN)
        and np.allclose(json.loads(meta["std"]), IMAGENET_STD)
    ):
        return "its input normalisation (mean/std) is not the trainer's"
    for key in ("threshold", "object_threshold"):
        if key in meta and not 0.0 <= float(meta[key]) <= 1.0:
            return f"{key} {meta[key]} is outside [0, 1]"
    return None


def _notify_while(done: threading.Event, what: str) -> None:
    started = time.monotonic()
    while not done.wait(ENGINE_NOTICE_S):
        log.info(
            "%s: still building (%.0f s; a first build takes minutes on a Jetson)",
            what,
            time.monotonic() - started,
        )


@contextmanager
def _building_notices(path: Path, cache_dir: Path, building: bool) -> Iterator[None]:
    """While a TensorRT engine builds, say so at once and every ENGINE_NOTICE_S."""
    done = threading.Event()
    if building:
        log.info("%s: building a TensorRT engine (cached in %s)", path, cache_dir)
        threading.Thread(target=_notify_while, args=(done, str(path)), daemon=True).start()
    try:
        yield
    finally:
        done.set()


def open_session(
    path: Path, wanted: list[str], threads: int = 0
) -> tuple[onnxruntime.InferenceSession, ModelInfo]:
    """The model's session (on the `wanted` providers present, with `threads` CPU threads as
    `session_options`) and what it says of itself; ModelRefused when it cannot run live."""
    if not path.is_file():
        raise ModelRefused(f"{path}: no such model file")
    cache_dir = path.parent / ENGINE_CACHE_DIR
    providers = session_providers(wanted, cache_dir)
    building = any(isinstance(p, tuple) for p in providers) and not any(cache_dir.glob("*.engine"))
    try:
        with _building_notices(path, cache_dir, building):
            session = onnxruntime.InferenceSession(str(path), session_options(threads), providers=providers)
    except Exception as error:  # ONNX Runtime raises its own types for unreadable or invalid graphs
        raise ModelRefused(
            f"{path}: not a readable ONNX model ({type(error).__name__}: {str(error).splitlines()[0]})"
        ) from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != "images" or len(inputs[0].shape) != 4 or inputs[0].shape[1] != 3:
        raise ModelRefused(f"{path}: its input is not `images` (N x 3 x H x W RGB): not a beltcam classifier")
    if [o.name for o in session.get_outputs()][:1] != ["cams"]:
        raise ModelRefused(f"{path}: it has no `cams` output: not a beltcam classifier")
    problem = _metadata_error(path, meta)
    if problem is not None:
        raise ModelRefused(f"{path}: {problem}")
    # the live path decides on whole objects: the object check's threshold when the run had one
    by_objects = "object_threshold" in meta
    info = ModelInfo(
        path=path, input_shape=(int(meta["input_height"]), int(meta["input_width"])),
        threshold=float(meta["object_threshold" if by_objects else "threshold"]),
        threshold_source="object check" if by_objects else meta.get("threshold_source", "unknown"),
        method=meta.get("method", "unknown"), backbone=meta.get("backbone", "unknown"),
        foreground=ForegroundSettings.model_validate_json(meta.get("foreground", "{}")),
    )  # fmt: skip
    return session, info


def open_native_engine(path: Path, info: ModelInfo) -> TensorRTEngine:
    """The model as a native TensorRT engine (`live.engine: tensorrt`); ModelRefused with the reason
    when this machine cannot run one (no TensorRT or pycuda, no CUDA device, a graph it cannot parse)."""
    from edge.live.tensorrt_engine import EngineUnavailable, TensorRTEngine

    cache_dir = path.parent / ENGINE_CACHE_DIR
    try:
        return TensorRTEngine(
            path, cache_dir, info.input_shape, lambda: _building_notices(path, cache_dir, building=True)
        )
    except EngineUnavailable as error:
        raise ModelRefused(f"{path}: {error}") from None


class LiveSegmenter:
    """One loaded model with its own running background and fusion state (a swapped-in model starts
    both afresh)."""

    def __init__(
        self,
        path: Path,
        settings: LiveConfig,
        camera_size: tuple[int, int],
        belt_velocity_px_s: tuple[float, float] | None,
    ) -> None:
        """`camera_size` (width, height) and `belt_velocity_px_s` are C1's, at its own resolution;
        the velocity (from the calibration) is needed for belt-motion fusion only. The foreground
        rule is the one the model was trained with (from its metadata)."""
        native = settings.engine == "tensorrt"
        # the native engine reads the same file: ONNX Runtime on the CPU checks it and reads its metadata
        self.session, self.info = open_session(
            path, ["cpu"] if native else settings.providers, settings.threads
        )
        if native:
            self.session = open_native_engine(path, self.info)
        height, width = self.info.input_shape
        velocity = None
        if belt_velocity_px_s is not None:
            vx, vy = belt_velocity_px_s
            velocity = (vx * width / camera_size[0], vy * height / camera_size[1])
        self.fusion = TemporalFusion(settings.fusion, velocity, settings.fusion_frames)
        self.background = RunningBackground(
            self.info.foreground, settings.background_frames, settings.background_every
        )

    def maps(self, frame: np.ndarray, foreground: np.ndarray) -> torch.Tensor:
        """2 x H x W (before, after) normalised maps of one input-size frame and its foreground."""
        foreground_only, _ = split_foreground(frame, foreground)
        cams = self.session.run(["cams"], {"images": input_batch(foreground_only[None]).numpy()})[0]
        return maps_at_input_size(torch.from_numpy(cams), self.info.input_shape)[0, [BEFORE, AFTER]]

    def segment(self, image: np.ndarray, capture_ns: int) -> Segmentation | None:
        """The label map of a full-resolution C1 frame; None while the background is warming up."""
        background = self.background.update(image)
        if background is None:
            return None
        frame, foreground = model_input(image, background, self.info.input_shape, self.info.foreground)
        maps = self.fusion.fuse(self.maps(frame, foreground), frame, capture_ns)
        labels = masks_from_maps(maps[None], foreground[None], self.info.threshold)[0]
        return Segmentation(labels, maps, frame)
