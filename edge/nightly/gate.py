"""The evaluation gate: a nightly candidate replaces the live model only when it is not worse.

Checks, in order, each on the candidate run's held-out footage (the newest C1/C2 recordings no model
of that run learnt from, and any C1 frames people drew masks on):
1. quality — the candidate and the live model evaluated the same way, as ONNX files: mIoU where
   masks exist, else the removal-based object check's AUC (how surely removed objects score above
   kept ones: what the sorter removed is the truth, no annotation needed; it ranks models as mIoU
   does, where the F1 at one threshold does not, benchmarks/README.md);
2. export parity — the candidate's ONNX masks against its PyTorch masks on real held-out frames;
3. speed and memory — one frame at a time through ONNX Runtime on this device, against the live
   budget (C1's frame period unless configured) and a memory ceiling.
Every figure goes into the verdict, and the registry stores it with the model.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psutil

from edge.config import GateConfig
from trainer.errors import TrainerError

TIMED_FRAMES = 20  # one at a time, after WARMUP_FRAMES
WARMUP_FRAMES = 3
PARITY_FRAMES = 16
MIN_ILLEGAL_FOUND = 0.01  # a candidate finding less of the held-out illegal area has collapsed


@dataclass
class Quality:
    measure: str  # "mIoU", "object AUC" or (footage with only removed or only kept objects) "object F1"
    score: float  # 0-100
    threshold: float
    figures: dict  # the evaluation as JSON


@dataclass
class GateVerdict:
    promote: bool
    reason: str
    candidate: Quality
    live: Quality | None
    live_model: str | None
    mask_agreement: float
    max_map_difference: float
    latency_ms: float
    latency_budget_ms: float
    memory_mb: float
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


def _held_out_sequences(run_dir: Path, model, progress: bool):
    """The run's held-out and masked sequences, prepared at `model`'s input shape (cached in the run)."""
    from trainer.dataset import has_masks, prepare_dataset
    from trainer.manifest import load_manifest
    from trainer.train import run_settings

    settings = run_settings(run_dir)
    manifest, base = load_manifest(run_dir / "manifest.json")
    evaluated = [s for s in manifest.sequences if s.holdout or any(f.mask for f in s.frames)]
    manifest = manifest.model_copy(update={"sequences": evaluated})
    sequences = prepare_dataset(
        manifest, base, model.input_shape, settings.flow, settings.foreground, run_dir / "cache", progress
    )
    return manifest, [s for s in sequences if s.holdout or has_masks(s)]


def held_out_evaluation(run_dir: Path, onnx_path: Path, progress: bool = False):
    """The trainer's evaluation (`EvaluationResult`) of the model at `onnx_path` on the run's
    held-out footage: mIoU with masks, the object check with C1/C2 footage and the belt geometry."""
    from trainer.evaluate import evaluate
    from trainer.onnx_model import OnnxClassifier

    model = OnnxClassifier(onnx_path)
    manifest, sequences = _held_out_sequences(run_dir, model, progress)
    return evaluate(model, sequences, "cam", belt=manifest.belt)


def quality(run_dir: Path, onnx_path: Path, progress: bool = False) -> Quality:
    """How well the model at `onnx_path` segments the run's held-out footage."""
    result = held_out_evaluation(run_dir, onnx_path, progress)
    if result.miou is not None:
        return Quality("mIoU", result.miou, result.threshold, result.to_json())
    check = result.object_check
    if check.get("auc") is not None:  # ranks models as the masks' mIoU does (benchmarks/README.md)
        return Quality("object AUC", round(100 * check["auc"], 2), result.threshold, result.to_json())
    return Quality("object F1", round(100 * check["f1"], 2), result.threshold, result.to_json())


def parity(run_dir: Path, onnx_path: Path) -> tuple[float, float]:
    """(share of pixels whose masks agree, largest map difference) between the run's PyTorch model
    and its ONNX file, on held-out C1 frames at the run's threshold."""
    from trainer.cams import masks_from_maps, sequence_before_maps
    from trainer.onnx_model import OnnxClassifier
    from trainer.train import load_run_model

    exported = OnnxClassifier(onnx_path)
    trained, _ = load_run_model(run_dir)
    _, sequences = _held_out_sequences(run_dir, exported, False)
    c1 = next(s for s in sequences if s.camera == "c1")
    indices = list(range(min(PARITY_FRAMES, len(c1.frames))))
    ours, theirs = (sequence_before_maps(m, c1, "cam", indices) for m in (trained, exported))
    foreground = c1.foreground[indices]
    agreement = float(
        np.mean(
            masks_from_maps(ours, foreground, exported.threshold)
            == masks_from_maps(theirs, foreground, exported.threshold)
        )
    )
    return agreement, float((ours - theirs).abs().max())


def speed(
    run_dir: Path, onnx_path: Path, providers: list[str] | None = None, threads: int = 0
) -> tuple[float, float]:
    """(median ms per frame, MB the session added) for one held-out frame at a time, as the live path
    runs it (its providers: on a GPU, TensorRT or CUDA; its CPU threads), on this device while
    whatever else it does goes on. Measure it in a process that has not loaded this model before
    (`judge` does)."""
    from trainer.cams import input_batch
    from trainer.onnx_model import OnnxClassifier

    process = psutil.Process()
    before = process.memory_info().rss
    model = OnnxClassifier(onnx_path, providers, threads)
    _, sequences = _held_out_sequences(run_dir, model, False)
    frames = next(s for s in sequences if s.camera == "c1").frames
    times = []
    for k in range(WARMUP_FRAMES + TIMED_FRAMES):
        batch = input_batch(frames[k % len(frames)][None])
        started = time.perf_counter()
        model(batch)
        times.append(1000 * (time.perf_counter() - started))
    added_mb = max(0.0, (process.memory_info().rss - before) / 2**20)
    return float(np.median(times[WARMUP_FRAMES:])), added_mb


def judge(
    run_dir: Path,
    candidate: Path,
    live: Path | None,
    gate: GateConfig,
    frame_period_ms: float,
    providers: list[str] | None = None,
    progress: bool = False,
    threads: int = 0,
) -> GateVerdict:
    """The verdict on `candidate` (the ONNX file of the run in `run_dir`) against the `live` model."""
    started = time.monotonic()
    candidate_quality = quality(run_dir, candidate, progress)
    live_quality, live_note = None, None
    if live is not None:
        try:
            live_quality = quality(run_dir, live, progress)
        except TrainerError as error:  # a live model that cannot be evaluated is no yardstick
            live_note = f"the live model could not be evaluated ({error})"
    agreement, difference = parity(run_dir, candidate)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
        # a process that has not loaded the model yet: what the session adds is what is measured
        latency, memory = fresh.submit(speed, run_dir, candidate, providers, threads).result()
    budget = gate.max_latency_ms or frame_period_ms
    refusals = _refusals(candidate_quality, live_quality, gate, agreement, latency, budget, memory)
    measure = candidate_quality.measure
    if refusals:
        reason = "; ".join(refusals)
    elif live_quality is None:
        reason = f"{measure} {candidate_quality.score:.1f}, no live model to compare with"
        reason += f" ({live_note})" if live_note else ""
    else:
        reason = (
            f"{measure} {candidate_quality.score:.1f} against the live model's "
            f"{live_quality.score:.1f} (margin {gate.margin:g})"
        )
    return GateVerdict(
        promote=not refusals,
        reason=reason,
        candidate=candidate_quality,
        live=live_quality,
        live_model=str(live) if live else None,
        mask_agreement=round(agreement, 5),
        max_map_difference=difference,
        latency_ms=round(latency, 2),
        latency_budget_ms=round(budget, 2),
        memory_mb=round(memory, 1),
        seconds=round(time.monotonic() - started, 1),
    )


def _refusals(
    candidate: Quality,
    live: Quality | None,
    gate: GateConfig,
    agreement: float,
    latency_ms: float,
    budget_ms: float,
    memory_mb: float,
) -> list[str]:
    """Why the candidate may not go live (empty: it may)."""
    refusals = []
    nothing = _finds_nothing(candidate)
    if nothing is not None:
        refusals.append(f"{nothing}: a model that finds nothing never goes live, whatever the live model")
    if live is not None and candidate.score < live.score - gate.margin:
        refusals.append(
            f"{candidate.measure} {candidate.score:.1f} is below the live model's {live.score:.1f} "
            f"by more than {gate.margin:g}"
        )
    if agreement < gate.min_mask_agreement:
        refusals.append(
            f"its ONNX masks agree with PyTorch's on {100 * agreement:.2f}% of pixels "
            f"(schedule.gate.min_mask_agreement {100 * gate.min_mask_agreement:.2f}%)"
        )
    if latency_ms > budget_ms:
        refusals.append(f"{latency_ms:.1f} ms per frame here, over the live budget of {budget_ms:.1f} ms")
    if memory_mb > gate.max_memory_mb:
        refusals.append(
            f"its session takes {memory_mb:.0f} MB (schedule.gate.max_memory_mb {gate.max_memory_mb:g})"
        )
    return refusals


def _finds_nothing(candidate: Quality) -> str | None:
    """What shows that the candidate calls (almost) nothing illegal on its held-out footage, or None.

    Training can collapse: on belts whose classes are hard to tell apart, the coherence terms can win
    over the classification and leave maps that are never positive (tracker issue 18,
    benchmarks/README.md). Such a model would pass against no live model (a site's first night) or
    against a live model as poor, and the valves would never fire."""
    shares = candidate.figures.get("where_wrong") or {}
    found = shares.get("illegal_found")
    if found is not None and found < MIN_ILLEGAL_FOUND:
        return f"it calls {100 * found:.2f}% of the held-out illegal pixels illegal"
    check = candidate.figures.get("object_check") or {}
    if check.get("removed_objects") and not check.get("recall"):
        return f"it calls none of the {check['removed_objects']} held-out removed objects illegal"
    return None
