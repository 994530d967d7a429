"""The model registry: one live model, promote, rollback, reject with a reason, old models retired
with their files; and `beltcam models` on top of it."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from edge.cli.main import main
from edge.nightly.runs import end_run, finish_run, mark_orphaned_runs, start_run
from edge.store.models import Model, TrainingRun
from edge.store.registry import (
    RegistryError,
    add_model,
    live_model,
    model_entry,
    promote,
    reject,
    retire_old,
    rollback,
)
from trainer.train import RunResult


def _run_with_model(store, folder: Path) -> int:
    """A finished run's folder (model, checkpoint, metrics) registered as a candidate; its model id."""
    folder.mkdir(parents=True)
    for name in ("model.onnx", "checkpoint.pt"):
        (folder / name).write_bytes(b"x")
    (folder / "metrics.json").write_text(json.dumps({"evaluation": {"miou": 40.0}}))
    run_id = start_run(store, "ours", folder, [], origin="nightly")
    return finish_run(store, run_id, RunResult(folder, folder / "model.onnx", None, None, 0.0))


def test_promote_retires_the_previous_and_rollback_brings_it_back(store, tmp_path):
    first, second = (_run_with_model(store, tmp_path / name) for name in ("a", "b"))
    promote(store, first)
    promote(store, second, "gate passed")
    assert live_model(store)[0] == second
    assert model_entry(store, first).status == "retired"
    assert model_entry(store, first).reason == f"replaced by model {second}"
    was, now = rollback(store, "worse on the belt")
    assert (was, now) == (second, first) and live_model(store)[0] == first
    assert model_entry(store, second).status == "rejected"
    assert model_entry(store, second).reason == "worse on the belt"
    with pytest.raises(RegistryError, match=r"no model before model \d+ can go live again"):
        rollback(store)  # the first model has no predecessor


def test_the_database_refuses_a_second_live_model(store, tmp_path):
    first, second = (_run_with_model(store, tmp_path / name) for name in ("a", "b"))
    promote(store, first)
    with pytest.raises(IntegrityError), store.session() as session:
        session.execute(update(Model).where(Model.id == second).values(status="live"))


def test_a_model_without_its_file_never_goes_live(store, tmp_path):
    model = _run_with_model(store, tmp_path / "a")
    (tmp_path / "a" / "model.onnx").unlink()
    with pytest.raises(RegistryError, match=r"model \d+: its file .* is gone"):
        promote(store, model)
    with pytest.raises(RegistryError, match="no model 99"):
        promote(store, 99)
    assert live_model(store) is None


def test_beyond_the_kept_models_files_are_removed_but_the_live_one_stays(store, tmp_path):
    ids = [_run_with_model(store, tmp_path / f"run{k}") for k in range(5)]
    promote(store, ids[0])  # the oldest is live: it is never retired
    reject(store, ids[1], "worse", {"candidate": {"measure": "mIoU", "score": 1.0}})
    assert retire_old(store, keep=2) == [ids[2], ids[1]]
    assert live_model(store)[0] == ids[0] and (tmp_path / "run0" / "model.onnx").is_file()
    for k in (1, 2):
        assert not (tmp_path / f"run{k}" / "model.onnx").exists()
        assert not (tmp_path / f"run{k}" / "checkpoint.pt").exists()
        assert (tmp_path / f"run{k}" / "metrics.json").is_file()  # the record of what it was stays
    assert model_entry(store, ids[2]).status == "retired"
    assert model_entry(store, ids[1]).status == "rejected"  # its verdict stays
    assert model_entry(store, ids[1]).metrics["gate"]["candidate"]["score"] == 1.0
    assert retire_old(store, keep=2) == []  # done once
    external = tmp_path / "from-another-belt.onnx"
    external.write_bytes(b"x")
    add_model(store, external)
    retire_old(store, keep=0)
    assert external.is_file()  # not ours to remove


def test_runs_left_running_are_interrupted_and_reasons_are_kept(store, tmp_path):
    killed = start_run(store, "ours", tmp_path / "killed", [], origin="nightly")
    paused = start_run(store, "ours", tmp_path / "paused", [], origin="nightly")
    by_hand = start_run(store, "ours", tmp_path / "by-hand", [])  # a technician's beltcam train, running
    end_run(store, paused, "paused", "window closed")
    assert mark_orphaned_runs(store) == 1
    with store.session() as session:
        assert session.get(TrainingRun, killed).status == "interrupted"
        assert "killed" in session.get(TrainingRun, killed).reason
        assert session.get(TrainingRun, paused).status == "paused"
        assert session.get(TrainingRun, by_hand).status == "running"
    assert start_run(store, "ours", tmp_path / "killed", [], origin="nightly") == killed  # resumed: same row
    with store.session() as session:
        assert session.get(TrainingRun, killed).status == "running"


def test_models_commands_for_a_technician(write_config, tmp_path, capsys):
    from edge.config import load_config
    from edge.store.frame_store import FrameStore

    path = write_config()
    store = FrameStore.from_config(load_config(path).storage)
    first, second = (_run_with_model(store, tmp_path / name) for name in ("a", "b"))
    store.close()

    def beltcam(*args):  # in this process: the same parser, runner and one-line errors, no start-up
        code = main(["models", *args, "--config", str(path)])
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    promoted = beltcam("promote", str(first))
    assert promoted.returncode == 0 and f"model {first} is live" in promoted.stdout
    assert beltcam("promote", str(second)).returncode == 0
    listed = beltcam("list")
    assert listed.returncode == 0
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "live" in rows[str(second)] and "retired" in rows[str(first)] and "mIoU 40.0" in rows[str(first)]
    back = beltcam("rollback")
    assert back.returncode == 0 and f"model {first} is live again, model {second} rejected" in back.stdout
    shown = json.loads(beltcam("show", str(second)).stdout)
    assert shown["status"] == "rejected" and "rolled back by hand" in shown["reason"]
    missing = beltcam("promote", "42")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "beltcam: error: no model 42 in the registry (beltcam models list)"
    bad = beltcam("show", "x")
    assert bad.returncode == 2 and "expected an integer" in bad.stderr


def test_a_reader_that_stops_reading_is_no_traceback(write_config):
    path = write_config()
    listing = subprocess.Popen([sys.executable, "-m", "edge.cli", "models", "list", "--config", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    listing.stdout.close()  # as `beltcam models list | head -0` does
    _, err = listing.communicate(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err
