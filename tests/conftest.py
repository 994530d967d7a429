"""Shared helpers: tiny site configs written as real YAML files, so tests go through load_config."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from edge.capture.cameras import build_sources
from edge.config import SiteConfig, load_config
from edge.recorder.recorder import Recorder
from edge.store.frame_store import FrameStore
from tests.postgres_server import postgres_url

pytest_plugins = ["tests.panel_helpers"]  # the panel's server, HTTP sessions and browser


def pytest_configure(config: pytest.Config) -> None:
    """Give each test worker its share of the cores for PyTorch's and OpenMP's thread pools (and the
    `beltcam` subprocesses it starts, which inherit the variable). Left alone, every worker's torch
    spreads each op over all the cores, so two workers on a 2-core machine spin against each other:
    the suite's trainings ran two to five times slower than with one thread each. A value set by the
    caller is kept; `-n 0` (one process) keeps every core."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")  # set by xdist in each worker, not its controller
    if workers:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // int(workers))))


def deep_merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def simulated_cameras(width: int = 128, height: int = 96, fps: float = 20.0) -> list[dict]:
    return [
        {"id": camera, "kind": "simulated", "resolution": [width, height], "fps": fps}
        for camera in ("c1", "c2")
    ]


def tiny_site() -> dict:
    return {
        "cameras": simulated_cameras(),
        "storage": {"data_dir": "data", "min_free_mb": 1},  # a nearly full CI disk must not pause tests
        "recorder": {"commit_every_s": 0.2, "stall_timeout_s": 0.5, "reconnect_initial_s": 0.05},
        "simulator": {"seed": 1, "objects_per_m": 8, "c1_to_c2_mm": 800},
        "model": {"pretrained_weights": "random"},  # no ImageNet weights on a test machine
        "panel": {"port": 0},  # any free port: agents of tests never fight over one
        "schedule": {"min_free_gb": 0.01},  # a CI disk with a few GB free must still train
    }


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a site file (tiny defaults plus overrides) and return its path."""

    def write(overrides: dict | None = None, name: str = "beltcam.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(deep_merge(tiny_site(), overrides or {})), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_config(write_config):
    def make(overrides: dict | None = None) -> SiteConfig:
        return load_config(write_config(overrides))

    return make


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster (the plant server); started once, only if a test asks for it."""
    with postgres_url() as url:
        yield url


@pytest.fixture
def store(tmp_path: Path):
    frame_store = FrameStore(tmp_path / "store", f"sqlite:///{tmp_path / 'store' / 'index.db'}")
    yield frame_store
    frame_store.close()


@pytest.fixture
def run_recorder():
    """Record a config for a while; returns the store and the recorder's summary."""
    stores = []

    def run(config: SiteConfig, duration_s: float, on_recorder: Callable[[Recorder], None] | None = None):
        """`on_recorder` sees the recorder before it starts: a test may stop it early."""
        frame_store = FrameStore.from_config(config.storage)
        stores.append(frame_store)
        recorder = Recorder(config, frame_store, build_sources(config))
        if on_recorder is not None:
            on_recorder(recorder)
        summary = recorder.run(duration_s, progress=False)
        return frame_store, summary

    yield run
    for frame_store in stores:
        frame_store.close()


@pytest.fixture
def small_disk(tmp_path):
    """A filesystem of a few MB of our own (tmpfs); the test process is root, as CI is."""
    mounts = []

    def mount(size_mb: float) -> Path:
        where = tmp_path / f"disk{len(mounts)}"
        where.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={int(size_mb * 1024)}k", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"these tests mount a tmpfs and need root: {result.stderr}"
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture(scope="session")
def live_model_file(tmp_path_factory, worker_id) -> Path:
    """A small exported model trained on the simulated belt (ResNet-18, 64 px, a few epochs): what
    the live-path tests load into ONNX Runtime. Trained once per test session: the first worker to
    need it trains it in the folder all workers share, the others wait on the lock and read it (one
    training a worker cost the suite a minute). Tests copy it before they change it."""
    if worker_id == "master":  # `-n 0`: one process
        return _train_live_model(tmp_path_factory.mktemp("live-model"))
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, above every worker's
    folder = shared / "live-model"
    with FileLock(shared / "live-model.lock"):
        done = folder / "onnx-path.txt"
        if not done.exists():
            done.parent.mkdir(exist_ok=True)
            done.write_text(str(_train_live_model(folder)), encoding="utf-8")
        return Path(done.read_text(encoding="utf-8"))


def _train_live_model(folder: Path) -> Path:
    from edge.simulator.dataset import write_simulated_manifest
    from trainer.train import TrainSettings, train

    manifest = write_simulated_manifest(
        folder / "frames", frames=12, size=(128, 96), sequences=4, masked_before=2, seed=5, objects_per_m=8.0
    )
    settings = TrainSettings(
        method="cam", backbone="resnet18", image_size=64, epochs=4, batch_size=8, weights="random", seed=0
    )
    result = train(manifest, settings, folder / "run", progress=False)
    return result.onnx_path
