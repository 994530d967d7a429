"""`beltcam train` under torchrun: two CPU processes (gloo backend) train one run with
DistributedDataParallel, and the run directory and the store look as a single process leaves them."""

import json
import os
import subprocess
import sys

import torch
from sqlalchemy import select

from edge.config import load_config
from edge.simulator.dataset import write_simulated_manifest
from edge.store.frame_store import FrameStore
from edge.store.models import Model, TrainingRun


def test_two_processes_train_one_run_with_ddp_over_gloo(write_config, tmp_path):
    path = write_config()
    manifest = write_simulated_manifest(
        tmp_path / "frames",
        frames=12,
        size=(128, 96),
        sequences=4,
        masked_before=2,
        seed=5,
        objects_per_m=8.0,
    )
    run = tmp_path / "run"
    trained = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "edge.cli", "train", "--config", str(path), "--manifest", str(manifest), "--method", "ours",
         "--backbone", "resnet18", "--image-size", "64", "--epochs", "2", "--batch-size", "4",
         "--flow", "farneback", "--out", str(run)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert trained.stdout.count("finished in") == 1  # the leader reports, once
    for name in ("settings.json", "manifest.json", "input.json", "checkpoint.pt", "model.onnx", "train.log"):
        assert (run / name).is_file(), name
    epochs = [json.loads(line) for line in (run / "epochs.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2]  # one record per epoch, not one per process
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["evaluation"]["miou"] is not None
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and not any(k.startswith("module.") for k in state["model"])  # no DDP prefix
    store = FrameStore.from_config(load_config(path).storage)
    with store.session() as session:
        assert [r.status for r in session.scalars(select(TrainingRun))] == ["finished"]
        assert len(session.scalars(select(Model)).all()) == 1
    store.close()
