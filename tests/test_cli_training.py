"""`beltcam train`, `eval` and `export` on recordings of the simulated belt, through the CLI."""

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from edge.config import load_config
from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import Model, TrainingRun, TrainingRunRecording
from tests.conftest import simulated_cameras

BELTCAM = [sys.executable, "-m", "edge.cli"]


def beltcam(*args):
    return subprocess.run([*BELTCAM, *args], capture_output=True, text=True, timeout=600)


def test_train_eval_export_from_the_store(write_config, tmp_path):
    path = write_config(
        {
            "cameras": simulated_cameras(128, 96, 8),
            "recorder": {"segment_s": 1.0},
            # fast enough that the oldest C1 segments' objects reach C2 within the 4 s recorded
            "simulator": {"truth_every": 1, "truth_segments_every": 3, "belt_speed_mm_s": 800},
            "calibration_file": "calibration.yaml",  # the simulator fills it: belt flow needs it
        }
    )
    recorded = beltcam("record", "--config", str(path), "--duration", "4.2")
    assert recorded.returncode == 0, recorded.stderr
    run = tmp_path / "run"
    common = ["--config", str(path)]
    trained = beltcam(  # a variant (trainer/variants.py): ours with mean fusion, registered by its name
        "train", *common, "--method", "ours_meanfuse", "--backbone", "resnet18", "--image-size", "64",
        "--epochs", "2", "--flow", "belt", "--out", str(run),
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "run 1 finished" in trained.stdout and "ONNX parity" in trained.stdout
    settings = json.loads((run / "settings.json").read_text())
    assert (settings["method"], settings["temporal_fusion"]) == ("ours", "mean")
    store = FrameStore.from_config(load_config(path).storage)
    with store.session() as session:
        assert session.scalars(select(TrainingRun)).one().method == "ours_meanfuse"
        model = session.scalars(select(Model)).one()
        assert model.status == "candidate" and model.path == str(run / "model.onnx")
        assert len(list(session.scalars(select(TrainingRunRecording)))) >= 2
    # a finished run trained again changes nothing and is not registered twice
    again = beltcam(
        "train", *common, "--method", "ours_meanfuse", "--backbone", "resnet18", "--image-size", "64",
        "--epochs", "2", "--flow", "belt", "--out", str(run),
    )  # fmt: skip
    assert again.returncode == 0 and "run 1 finished" in again.stdout, again.stderr[-2000:]
    assert "is a finished run: nothing to do" in again.stderr
    with store.session() as session:
        assert len(session.scalars(select(Model)).all()) == 1
    # weights asked for and missing: one line naming the file, exit 2, nothing trained
    missing = tmp_path / "imagenet-resnet18.pth"
    other_site = write_config(
        {
            "cameras": simulated_cameras(128, 96, 8),
            "model": {"pretrained_weights": str(missing)},
        },
        name="with-weights.yaml",
    )
    refused = beltcam("train", "--config", str(other_site), "--backbone", "resnet18", "--image-size", "64",
                      "--out", str(tmp_path / "run2"))  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"beltcam: error: {missing}: weights file not found (model.pretrained_weights)"
    )
    assert not (tmp_path / "run2" / "checkpoint.pt").exists()
    manifest = json.loads((run / "store_manifest.json").read_text())
    assert {s["label"] for s in manifest["sequences"]} == {"before", "after"}
    masked = [s for s in manifest["sequences"] if any(f.get("mask") for f in s["frames"])]
    assert masked and {s["label"] for s in masked} == {"before"}  # masks: for evaluation only
    # the simulated site is calibrated: the newest footage is held out for the object check
    assert manifest["belt"]["c1_to_c2_mm"] == 800 and all(s["pixel_to_belt"] for s in manifest["sequences"])
    held = {s["camera"] for s in manifest["sequences"] if s["holdout"]}
    assert held == {"c1", "c2"}
    assert any(s["camera"] == "c2" and not s["holdout"] for s in manifest["sequences"])

    for maps in ("cam", "f2f"):
        evaluated = beltcam("eval", *common, "--run", str(run), "--maps", maps, "--json")
        assert evaluated.returncode == 0, evaluated.stderr[-2000:]
        result = json.loads(evaluated.stdout.strip().splitlines()[-1])
        assert result["method"] == ("ours" if maps == "cam" else maps)
        assert 0 <= result["miou"] <= 100 and result["test_frames"] > 0

    exported = beltcam("export", *common, "--run", str(run), "--out", str(tmp_path / "m.onnx"))
    assert exported.returncode == 0 and (tmp_path / "m.onnx").is_file()
    assert "max abs difference to PyTorch" in exported.stdout


def test_training_without_data_is_a_one_line_error(write_config, tmp_path):
    path = write_config()
    result = beltcam("train", "--config", str(path), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("beltcam: error: the store at ")
    assert "no before/after recordings of 3 frames or more" in result.stderr


def test_eval_and_export_of_a_folder_that_is_not_a_run_say_so_in_one_line(write_config, tmp_path):
    path = write_config()
    (tmp_path / "notarun").mkdir()
    for command in ("eval", "export"):
        result = beltcam(command, "--config", str(path), "--run", str(tmp_path / "notarun"))
        assert result.returncode == 2, result.stderr
        assert (
            result.stderr.strip()
            == f"beltcam: error: {tmp_path / 'notarun'}: not a training run (no settings.json)"
        )
    small = beltcam("train", "--config", str(path), "--image-size", "16", "--out", str(tmp_path / "run"))
    assert small.returncode == 2 and small.stderr.count("\n") == 1 and "--image-size" in small.stderr


def test_a_run_is_registered_once_however_its_folder_is_spelled(store, tmp_path, monkeypatch):
    from edge.nightly.runs import register_run
    from trainer.train import RunResult, TrainSettings

    run = tmp_path / "runs" / "night1"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"method": "cam"}))
    monkeypatch.chdir(tmp_path)
    spellings = [Path("runs/night1"), run, tmp_path / "runs" / ".." / "runs" / "night1"]
    ids = {
        register_run(
            store, TrainSettings(method="cam"), RunResult(d, d / "model.onnx", None, 0.0, 1.0), [], utc_now()
        )
        for d in spellings
    }
    assert len(ids) == 1
    with store.session() as session:
        assert session.scalars(select(Model.path)).all() == [str(run / "model.onnx")]
