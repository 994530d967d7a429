"""Training runs: one directory holding everything needed to reproduce, resume and deploy a model.

Run directory: `settings.json`, `manifest.json` (the manifest frozen at the start, with absolute
paths: a resumed run learns from exactly the data it started with), `input.json` (the input shape,
fixed at the start from C1's aspect ratio), `checkpoint.pt` (after every
epoch; a run restarted with the same settings resumes from it), `epochs.jsonl` (losses and throughput
per epoch), `metrics.json` (final evaluation; a run that has it is finished and re-running it changes
nothing), `model.onnx`, `train.log`.

Methods are presets of the loss terms (paper, Table 2): `cam` = classification only (also the model
F2F reads maps from), `puzzlecam` = + spatial, `temporal` = + temporal, `ours` = both. `gradcam` is
the paper's Grad-CAM baseline, a classifier of its own (`GradCamClassifier`, softmax over an fc head)
read with Grad-CAM; it needs gradients to make a map, so it is evaluated but never exported.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, RandomSampler, WeightedRandomSampler
from tqdm import tqdm

from trainer.balance import foreground_balanced_weights
from trainer.data_checks import check_training_data
from trainer.dataset import TripletDataset, has_masks, prepare_dataset
from trainer.distributed import Group, join_group, leader_first, leave_group, process_device
from trainer.errors import RunError, RunPaused
from trainer.evaluate import EvaluationResult, check_evaluable, evaluate
from trainer.export import export_onnx
from trainer.input_shape import Shape, manifest_input_shape
from trainer.losses import (
    Fusion,
    class_cams,
    classification_loss,
    coherence_weight,
    spatial_loss,
    temporal_loss,
)
from trainer.manifest import Manifest, load_manifest, save_manifest
from trainer.model import Backbone, CamClassifier, Classifier, GradCamClassifier, normalise
from trainer.preprocess import ForegroundSettings
from trainer.puzzle import merge, tile
from trainer.variants import DEFAULT_OUTPUT_STRIDE, LOSS_TERMS

log = logging.getLogger(__name__)
Method = Literal["cam", "puzzlecam", "temporal", "ours", "gradcam"]


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = "ours"
    backbone: Backbone = "resnet50"
    output_stride: Literal[8, 16, 32] = Field(
        default=DEFAULT_OUTPUT_STRIDE,
        description="the class maps' stride: 16 the paper's; 8 finer maps at a higher trunk cost",
    )
    image_size: int = Field(default=256, ge=32, description="the network input's long side, pixels")
    keep_aspect: bool = Field(default=True, description="input with C1's aspect ratio (else square)")
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=8, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    alpha_max: float = Field(default=4.0, ge=0, description="maximum weight of the spatial loss")
    beta_max: float = Field(default=4.0, ge=0, description="maximum weight of the temporal loss")
    puzzle_classification: bool = Field(
        default=True, description="classify the maps merged from the tiles (L_pcls); off: only their L1"
    )
    spatial_classes: Literal["all", "present"] = Field(
        default="all", description="L_spatial over every class's map (the paper's eq. 7) or the image's own"
    )
    puzzle_grid: tuple[Literal[1, 2], Literal[1, 2]] = Field(
        default=(2, 2), description="rows, columns of the puzzle's tiles: (2, 2) the paper's; (1, 2), (2, 1)"
    )
    temporal_fusion: Fusion = Field(
        default="max", description="fuse the warped neighbours' CAMs by maximum (the paper) or mean"
    )
    temporal_fixed_target: bool = Field(
        default=False, description="L_temporal moves frame t's map only (off: all three, the paper's)"
    )
    flow: Literal["dis", "farneback", "raft", "belt"] = "dis"
    c1_also_after: bool = Field(default=False, description="C1 foreground labelled {before, after}")
    balance_foreground: bool = Field(
        default=False, description="draw C1 and C2 samples with the same spread of foreground share"
    )
    one_object: bool = Field(
        default=False, description="each foreground sample shows one object (followed into its neighbours)"
    )
    foreground: ForegroundSettings = ForegroundSettings()
    weights: str | None = Field(
        default="imagenet", description="'imagenet' (torch hub cache), a .pth path, or 'random'"
    )
    trunk_lr_scale: float = Field(
        default=0.1, gt=0, le=1, description="trunk learning rate over the head's, for pretrained trunks"
    )
    augment: bool = Field(default=False, description="flip across the belt and vary brightness")
    samples_per_epoch: int | None = Field(
        default=None, ge=1, description="a fresh random draw of this many samples per epoch (long footage)"
    )
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(
        default=True, description="mixed precision: float16 on CUDA, bfloat16 on CPUs that compute in it"
    )

    @field_validator("puzzle_grid")
    @classmethod
    def _tiles_cut(cls, grid: tuple[int, int]) -> tuple[int, int]:
        if grid == (1, 1):
            raise ValueError("a 1x1 puzzle is the image itself: use (2, 2), (1, 2) or (2, 1)")
        return grid

    def granularity_ok(self) -> bool:
        return self.image_size % (2 * self.output_stride) == 0

    def granularity_error(self) -> str:
        step = 2 * self.output_stride
        return (
            f"image size {self.image_size} (--image-size / model.image_size) must be a multiple of {step}: "
            f"the 2x2 tiling needs it; try {max(step, round(self.image_size / step) * step)}"
        )


@dataclass
class RunResult:
    run_dir: Path
    onnx_path: Path | None  # None for the Grad-CAM baseline, which is never exported
    evaluation: EvaluationResult | None
    onnx_max_abs_diff: float | None
    frames_per_s: float


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_device(settings: TrainSettings) -> torch.device:
    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(settings.device)


def cpu_computes_bfloat16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX512-BF16 or AMX): there, bfloat16 autocast trains
    `ours` about 1.7 times faster (benchmarks/README.md); elsewhere (older x86, Jetson's ARM cores)
    it would be emulated and slower."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return False
    flags = cpuinfo.read_text(encoding="utf-8", errors="replace")
    return "avx512_bf16" in flags or "amx_bf16" in flags


def mixed_precision(settings: TrainSettings, device: torch.device) -> torch.dtype | None:
    """The autocast type training runs in, or None for full precision."""
    if not settings.amp:
        return None
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if cpu_computes_bfloat16() else None


def _file_logger(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("trainer").addHandler(handler)
    logging.getLogger("trainer").setLevel(logging.INFO)
    return handler


def _step_losses(model, batch, settings: TrainSettings, a: float, b: float) -> dict[str, torch.Tensor]:
    use_spatial, use_temporal = LOSS_TERMS[settings.method]
    centre = normalise(batch["centre"])
    losses: dict[str, torch.Tensor] = {}
    if settings.method == "gradcam":  # softmax over one class per image, as the baseline is trained
        return {"cls": F.cross_entropy(model(centre), batch["cls"])}
    if use_temporal and b > 0:  # one pass for the whole triplet
        triplet = torch.cat([normalise(batch["prev"]), centre, normalise(batch["next"])])
        maps_prev, maps, maps_next = torch.chunk(model(triplet), 3)
    else:
        maps = model(centre)
    losses["cls"] = classification_loss(CamClassifier.logits(maps), batch["labels"])
    if use_spatial:
        puzzle_maps = merge(model(tile(centre, settings.puzzle_grid)), settings.puzzle_grid)
        if settings.puzzle_classification:
            losses["pcls"] = classification_loss(CamClassifier.logits(puzzle_maps), batch["labels"])
        present = batch["labels"] if settings.spatial_classes == "present" else None
        losses["spatial"] = a * spatial_loss(maps, puzzle_maps, present)
    if use_temporal and b > 0:
        cls = batch["cls"]
        losses["temporal"] = b * temporal_loss(
            class_cams(maps, cls), class_cams(maps_prev, cls), class_cams(maps_next, cls),
            batch["flow_prev"], batch["flow_next"], settings.temporal_fusion, settings.temporal_fixed_target,
        )  # fmt: skip
    return losses


def train(
    manifest_path: Path,
    settings: TrainSettings,
    run_dir: Path,
    cache_dir: Path | None = None,
    progress: bool = True,
    stop_at: float | None = None,
) -> RunResult:
    """Train (or resume, or return the finished result of) the run in `run_dir`.

    `stop_at` (a `time.time()` instant) is the end of the window the run may use: an epoch that would
    not end before it is not started, and `RunPaused` is raised with the checkpoint in place, so the
    next window resumes where this one stopped (the nightly loop's training window)."""
    if not settings.granularity_ok():
        raise RunError(settings.granularity_error())
    group = join_group(training_device(settings).type)  # one process, or one of torchrun's
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = _file_logger(run_dir) if group.leader else None
    try:
        with leader_first(group):
            if group.leader:
                manifest, base = _frozen_manifest(manifest_path, run_dir)
            else:
                manifest, base = load_manifest(run_dir / "manifest.json")
        finished = _finished_run(run_dir, settings)
        if finished is not None:
            log.info("%s is a finished run: nothing to do", run_dir)
            return finished
        cache = cache_dir or run_dir / "cache"
        return _train(
            manifest, base, settings, run_dir, cache, progress and group.leader, manifest_path, stop_at, group
        )
    finally:
        leave_group(group)
        if handler is not None:
            logging.getLogger("trainer").removeHandler(handler)
            handler.close()


def _frozen_manifest(manifest_path: Path, run_dir: Path) -> tuple[Manifest, Path]:
    """The run's own copy of its manifest, written at its start with absolute paths and used by every
    resume: the store keeps recording (and evicting) between a run's nights, and a resumed run that
    learnt from other data would follow another schedule than the one it started."""
    frozen = run_dir / "manifest.json"
    if frozen.is_file() and _has_trained(run_dir):
        manifest, base = load_manifest(frozen)
        if Path(manifest_path).resolve() != frozen.resolve():
            given, given_base = load_manifest(manifest_path)
            if given.model_copy(update={"root": str(given_base / given.root)}) != manifest:
                log.warning("%s: resuming with the manifest frozen at the run's start, not %s", run_dir,
                            manifest_path)  # fmt: skip
        return manifest, base
    manifest, base = load_manifest(manifest_path)
    absolute = manifest.model_copy(update={"root": str((base / manifest.root).resolve())})
    temp = frozen.with_suffix(".tmp")
    save_manifest(absolute, temp)
    temp.replace(frozen)
    return absolute, run_dir


def _has_trained(run_dir: Path) -> bool:
    """A run that has checkpointed is resumed as it started; one that stopped before (bad data, no
    threshold possible) starts again from what it is given now."""
    return (run_dir / "checkpoint.pt").is_file()


def _finished_run(run_dir: Path, settings: TrainSettings) -> RunResult | None:
    """The result of a run that already finished with these settings (None for any other folder)."""
    metrics_file, settings_file = run_dir / "metrics.json", run_dir / "settings.json"
    if not (metrics_file.is_file() and settings_file.is_file()):
        return None
    if run_settings(run_dir) != settings:
        return None  # _train says what is wrong
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    evaluation = EvaluationResult(**metrics["evaluation"]) if metrics.get("evaluation") else None
    onnx_path = run_dir / "model.onnx" if exportable(settings) else None
    return RunResult(
        run_dir, onnx_path, evaluation, metrics["onnx_max_abs_diff"], metrics["train_frames_per_s"]
    )


def _frozen_input_shape(run_dir: Path, settings: TrainSettings, manifest: Manifest, base: Path) -> Shape:
    """The run's input shape, fixed at its start (`input.json`) from the data it started with."""
    stored = run_dir / "input.json"
    if not (stored.is_file() and _has_trained(run_dir)):
        shape = manifest_input_shape(
            manifest, base, settings.image_size, 2 * settings.output_stride, settings.keep_aspect
        )
        stored.write_text(json.dumps({"height": shape[0], "width": shape[1]}) + "\n", encoding="utf-8")
    return run_input_shape(run_dir)


def run_input_shape(run_dir: Path) -> Shape:
    """(height, width) a run's model was trained at, and is evaluated and exported at."""
    stored = run_dir / "input.json"
    if stored.is_file():
        shape = json.loads(stored.read_text(encoding="utf-8"))
        return int(shape["height"]), int(shape["width"])
    size = run_settings(run_dir).image_size
    return size, size  # runs from before input.json trained on squares


def run_settings(run_dir: Path) -> TrainSettings:
    """A run directory's settings; a folder that holds none is not a run (one-line error)."""
    path = run_dir / "settings.json"
    if not path.is_file():
        raise RunError(f"{run_dir}: not a training run (no settings.json)")
    try:
        return TrainSettings.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise RunError(f"{path}: not settings beltcam wrote ({str(error).splitlines()[0]})") from None


def _forget_epochs_after(epochs_file: Path, last_kept: int) -> None:
    """Drop the records of epochs the checkpoint does not hold (a run killed between writing an
    epoch's record and its checkpoint trains that epoch again)."""
    if not epochs_file.is_file():
        return
    lines = epochs_file.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["epoch"] <= last_kept]
    if len(kept) != len(lines):
        epochs_file.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def build_model(settings: TrainSettings, weights: str | None) -> Classifier:
    if settings.method == "gradcam":
        return GradCamClassifier(settings.backbone, weights)
    return CamClassifier(settings.backbone, settings.output_stride, weights)


def _optimizer(model: Classifier, settings: TrainSettings) -> torch.optim.Optimizer:
    """AdamW; a pretrained trunk learns `trunk_lr_scale` times slower than the new head, so that the
    first epochs' large gradients from the random head do not wash out what ImageNet taught it."""
    trunk_lr = settings.learning_rate * (settings.trunk_lr_scale if model.weights_source != "random" else 1.0)
    head = list(model.head.parameters())
    trunk = [p for p in model.parameters() if all(p is not h for h in head)]
    return torch.optim.AdamW(
        [{"params": trunk, "lr": trunk_lr}, {"params": head, "lr": settings.learning_rate}],
        weight_decay=settings.weight_decay,
    )


def _epoch_seconds(epochs_file: Path) -> float:
    """How long the run's last recorded epoch took (0 before the first)."""
    if not epochs_file.is_file():
        return 0.0
    lines = [line for line in epochs_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return float(json.loads(lines[-1])["seconds"]) if lines else 0.0


def _check_window(stop_at: float | None, epochs_file: Path, epoch: int, epochs: int, group: Group) -> None:
    """Raise `RunPaused` when the next epoch would end after the window closes (the leader decides,
    for every process)."""
    if stop_at is None:
        return
    if group.share(group.leader and time.time() + _epoch_seconds(epochs_file) > stop_at):
        raise RunPaused(
            f"paused before epoch {epoch + 1}/{epochs}: the training window closes at "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(stop_at))}; the next one resumes it"
        )


def _train(
    manifest, base, settings, run_dir, cache_dir, progress, manifest_path, stop_at, group: Group
) -> RunResult:
    settings_file = run_dir / "settings.json"
    checkpoint_file = run_dir / "checkpoint.pt"
    if (
        _has_trained(run_dir)
        and settings_file.is_file()
        and run_settings(run_dir) != settings  # validated: a field added since counts at its default
    ):
        raise RunError(f"{run_dir} holds a run with other settings: choose another --out folder")
    for warning in check_training_data(manifest, str(manifest_path)):
        log.warning("%s", warning)
    _seed_everything(settings.seed)
    model = build_model(settings, settings.weights)
    if group.leader:
        settings_file.write_text(settings.model_dump_json(indent=2) + "\n", encoding="utf-8")
    device = process_device(training_device(settings), group)

    with leader_first(group):  # the leader fixes the input shape and fills the cache; the others read
        if group.leader:
            shape = _frozen_input_shape(run_dir, settings, manifest, base)
        else:
            shape = run_input_shape(run_dir)
        sequences = prepare_dataset(
            manifest, base, shape, settings.flow, settings.foreground, cache_dir, progress
        )
    check_evaluable(sequences, manifest.belt)
    training = [s for s in sequences if not has_masks(s) and not s.holdout]
    dataset = TripletDataset(training, settings.c1_also_after, settings.augment, settings.one_object)
    generator = torch.Generator().manual_seed(settings.seed)
    samples = min(settings.samples_per_epoch or len(dataset), len(dataset))
    samples = math.ceil(samples / group.world)  # each process its share: the epoch is as long
    if settings.balance_foreground:
        weights = foreground_balanced_weights(dataset)
        sampler = WeightedRandomSampler(weights, num_samples=samples, generator=generator)
    else:
        sampler = RandomSampler(dataset, num_samples=samples, generator=generator)
    loader = DataLoader(dataset, batch_size=settings.batch_size, sampler=sampler, drop_last=False)

    model = model.to(device)
    optimizer = _optimizer(model, settings)
    trained = model  # what the steps call: DDP averages the processes' gradients
    if group.distributed:
        trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    total_steps = settings.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1 - step / total_steps) ** 0.9
    )
    amp_dtype = mixed_precision(settings, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)  # bfloat16 needs no scaling
    start_epoch = 0
    if checkpoint_file.is_file():
        state = load_checkpoint(checkpoint_file, device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start_epoch = state["epoch"] + 1
        if group.leader:
            _forget_epochs_after(run_dir / "epochs.jsonl", start_epoch)
        log.info("resuming %s from epoch %d", run_dir, start_epoch)
    log.info("training %s on %d triplets (%s, weights: %s, device %s)", settings.method, len(dataset),
             settings.backbone, model.weights_source, device)  # fmt: skip

    frames_per_s = 0.0
    for epoch in range(start_epoch, settings.epochs):
        _check_window(stop_at, run_dir / "epochs.jsonl", epoch, settings.epochs, group)
        if group.distributed:  # each process its own draw, the same after a resume with any count
            generator.manual_seed(settings.seed + 7919 * group.rank + 104729 * epoch)
        trained.train()
        sums: dict[str, float] = {}
        seen = 0
        started = time.monotonic()
        bar = tqdm(
            loader, desc=f"{settings.method} epoch {epoch + 1}/{settings.epochs}", disable=not progress
        )
        for index, batch in enumerate(bar):
            step = epoch * len(loader) + index
            a = coherence_weight(step, len(loader), total_steps, settings.alpha_max)
            b = coherence_weight(step, len(loader), total_steps, settings.beta_max)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                losses = _step_losses(trained, batch, settings, a, b)
                loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            size = len(batch["labels"])
            seen += size
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) * size
            bar.set_postfix({name: f"{value / seen:.3f}" for name, value in sums.items()})
        seconds = time.monotonic() - started
        frames_per_s = group.world * seen / seconds if seconds else 0.0  # all processes together
        if not group.leader:
            continue  # the leader writes the run directory
        record = {"epoch": epoch + 1, "samples": seen, "seconds": round(seconds, 2),
                  "frames_per_s": round(frames_per_s, 2),
                  "a": a, "b": b, **{k: round(v / max(seen, 1), 5) for k, v in sums.items()}}  # fmt: skip
        with (run_dir / "epochs.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        log.info("epoch %s", record)
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "scaler": scaler.state_dict(),
            "epoch": epoch,
        }
        temp = checkpoint_file.with_suffix(".tmp")
        torch.save(state, temp)  # then rename: a crash never leaves half a checkpoint to resume from
        temp.replace(checkpoint_file)

    if not group.leader:
        return RunResult(run_dir, None, None, None, frames_per_s)
    evaluation = evaluate(model, sequences, "cam", belt=manifest.belt)
    onnx_path, difference = None, None
    if exportable(settings):
        onnx_path = run_dir / "model.onnx"
        difference = export_run(model, settings, evaluation, onnx_path, shape)
    metrics = {
        "method": settings.method,
        "evaluation": evaluation.to_json() if evaluation else None,
        "onnx_max_abs_diff": difference,
        "train_frames_per_s": round(frames_per_s, 2),
        "weights": model.weights_source,
        "device": str(device),
        "mixed_precision": str(amp_dtype).removeprefix("torch.") if amp_dtype else None,
        "processes": group.world,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    log.info("run finished: %s", metrics)
    return RunResult(run_dir, onnx_path, evaluation, difference, frames_per_s)


def exportable(settings: TrainSettings) -> bool:
    """Whether the run's model can work live: everything but the Grad-CAM baseline, whose maps need
    a backward pass."""
    return settings.method != "gradcam"


def export_run(
    model: CamClassifier, settings: TrainSettings, evaluation: EvaluationResult, path: Path, shape: Shape
) -> float:
    """The run's ONNX file with its threshold and where that came from (the live path needs both)."""
    if not exportable(settings):
        raise RunError(
            "a Grad-CAM baseline run has no ONNX model: its maps need gradients (train cam or ours)"
        )
    extra = {
        "method": settings.method,
        "flow": settings.flow,
        "threshold_source": evaluation.threshold_source,
        "foreground": settings.foreground.model_dump_json(),  # the live path's background rule
    }
    if evaluation.object_check is not None:  # chosen on whole objects: what the live path acts on
        extra["object_threshold"] = evaluation.object_check["threshold"]
    return export_onnx(model, path, shape, evaluation.threshold, extra)


def load_checkpoint(path: Path, device: torch.device) -> dict:
    """A run's checkpoint, read as tensors and plain values only (`weights_only=True`): a run directory
    copied from elsewhere must not be able to run code here."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RunError(f"{path}: not a checkpoint beltcam wrote (refused to load it: {first_line})") from None


def load_run_model(run_dir: Path) -> tuple[Classifier, TrainSettings]:
    """The trained classifier of a finished run, on the CPU, for evaluation and export."""
    settings = run_settings(run_dir)
    if not (run_dir / "checkpoint.pt").is_file():
        raise RunError(f"{run_dir}: no checkpoint.pt: not a finished training run")
    model = build_model(settings, None)
    state = load_checkpoint(run_dir / "checkpoint.pt", torch.device("cpu"))
    model.load_state_dict(state["model"])
    return model.eval(), settings
