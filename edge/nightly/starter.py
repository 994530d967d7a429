"""A starter model for a simulated site that has none: `beltcam demo` on a fresh clone must reach
live masks and valve openings within minutes on a 2-core machine, so it trains a small one (ResNet-18,
128 px long side, a few epochs) on frames the simulator renders directly, registers it and makes it
live. The nightly loop replaces it with models trained on the site's own recordings."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

from edge.config import SiteConfig
from edge.nightly.runs import register_run
from edge.simulator.belts import LOOK_FIELDS
from edge.simulator.dataset import write_simulated_manifest
from edge.store.frame_store import FrameStore
from edge.store.registry import model_of_run, models, promote
from trainer.variants import variant_settings

STARTER_FOLDER = "starter-model"
STARTER_SEED_OFFSET = 1000  # another stretch of belt than the one the demo then runs on
HOLDOUT_S = 20.0  # held-out C1/C2 footage: the object check chooses the threshold the live path uses
STARTER = {"backbone": "resnet18", "image_size": 128, "epochs": 4, "batch_size": 8}
STARTER_SEQUENCES = 4  # per camera, 16 frames each: minutes on 2 cores, enough for classes told by colour


def starter_model(
    config: SiteConfig,
    folder: Path,
    method: str = "ours",
    progress: bool = True,
    sequences: int = STARTER_SEQUENCES,
    epochs: int = STARTER["epochs"],
):
    """Train a starter model for the site's C1 (rendered frames of another stretch of belt, at C1's
    resolution) by a method or variant (trainer/variants.py); returns its settings and the
    trainer's `RunResult`. `sequences` and `epochs` let a benchmark train the same recipe on the
    footage a hard belt's classes need (sixteen times the starter's)."""
    from trainer.train import TrainSettings, train  # torch: only when a model is trained

    c1 = next(camera for camera in config.cameras if camera.id == "c1")
    manifest = write_simulated_manifest(
        folder / "frames", frames=16, size=c1.resolution, sequences=sequences, masked_before=2,
        seed=config.simulator.seed + STARTER_SEED_OFFSET, objects_per_m=6.0, holdout_s=HOLDOUT_S,
        belt=config.simulator.model_dump(include=LOOK_FIELDS),
    )  # fmt: skip
    settings = TrainSettings(
        **{**STARTER, **variant_settings(method), "epochs": epochs},
        weights=str(config.model.pretrained_weights),
        seed=config.simulator.seed,
    )
    return settings, train(manifest, settings, folder / "run", progress=progress)


def starter_folder(store: FrameStore, data_dir: Path) -> Path:
    """Where the demo trains its starter model: `starter-model`, or `starter-model-2`, ... once a
    model trained in the one before was rejected (its file found corrupt): that folder is kept as it
    is, for a look, and a training stopped half-way still resumes in its own folder."""
    rejected = [Path(entry.path).resolve() for entry in models(store) if entry.status == "rejected"]
    folders = (data_dir / (STARTER_FOLDER if n == 1 else f"{STARTER_FOLDER}-{n}") for n in itertools.count(1))
    return next(f for f in folders if not any(path.is_relative_to(f.resolve()) for path in rejected))


def train_starter_model(config: SiteConfig, store: FrameStore, folder: Path, progress: bool = True) -> Path:
    """Train, register and promote the starter model; returns its ONNX file."""
    started = datetime.now(UTC)
    settings, result = starter_model(config, folder, progress=progress)
    run_id = register_run(store, settings, result, [], started, origin="starter")
    promote(store, model_of_run(store, run_id), "the demo's starter model")
    return result.onnx_path
