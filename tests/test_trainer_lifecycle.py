"""A training run's life: refused data, a frozen manifest, interruption and resume, a finished run,
fine-tuning a pretrained trunk."""

import json

import pytest
import torch
import torchvision

from edge.simulator.dataset import write_simulated_manifest
from trainer.errors import RunError
from trainer.train import TrainSettings, load_run_model, train

TINY = {"backbone": "resnet18", "image_size": 64, "epochs": 2, "batch_size": 8, "weights": None}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return write_simulated_manifest(tmp_path_factory.mktemp("sim"), frames=6, sequences=1, masked_before=1)


def _variant(manifest, tmp_path, edit) -> str:
    """A copy of the manifest (same frames) changed by `edit(raw)`."""
    raw = json.loads(manifest.read_text())
    raw["root"] = str(manifest.parent)
    edit(raw)
    path = tmp_path / "variant.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda raw: raw.update(sequences=[s for s in raw["sequences"] if s["label"] != "after"]),
         r"no `after` footage \(C2\) of 3 frames or more"),
        (lambda raw: [s.update(frames=s["frames"][:2]) for s in raw["sequences"]],
         r"no `before` footage \(C1\) of 3 frames or more"),
        (lambda raw: [f.pop("mask", None) for s in raw["sequences"][2:] for f in s["frames"][1:]],
         r"only 1 `before` frame with a mask: evaluation needs 2 or more"),
    ],
    ids=["no-after", "no-sequence-of-3", "one-masked-frame"],
)  # fmt: skip
def test_data_that_cannot_train_a_model_is_refused_before_training(manifest, tmp_path, edit, reason):
    with pytest.raises(RunError, match=reason):
        train(_variant(manifest, tmp_path, edit), TrainSettings(**TINY), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_short_sequences_are_named_not_silently_dropped(manifest, tmp_path, caplog):
    def add_short(raw):
        raw["sequences"].append(
            {**raw["sequences"][0], "id": "short-one", "frames": raw["sequences"][0]["frames"][:2]}
        )

    settings = TrainSettings(method="cam", **{**TINY, "epochs": 1})
    with caplog.at_level("WARNING", logger="trainer"):
        train(_variant(manifest, tmp_path, add_short), settings, tmp_path / "run", progress=False)
    assert "left out 1 sequence(s) shorter than 3 frames: short-one" in caplog.text


def _interrupt_in_second_checkpoint(monkeypatch):
    real_save = torch.save
    saves = []

    def save_then_die(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt  # the power goes while the second epoch's checkpoint is written

    monkeypatch.setattr(torch, "save", save_then_die)


def test_interrupted_run_resumes_with_its_frozen_manifest_and_equals_an_uninterrupted_one(
    manifest, tmp_path, monkeypatch
):
    settings = TrainSettings(method="ours", flow="belt", augment=True, **TINY)
    train(manifest, settings, tmp_path / "whole", progress=False)

    with monkeypatch.context() as patch:
        _interrupt_in_second_checkpoint(patch)
        with pytest.raises(KeyboardInterrupt):
            train(manifest, settings, tmp_path / "resumed", progress=False)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    frozen = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert frozen["root"] == str(manifest.parent.resolve())  # absolute: readable from the run directory
    checkpoint = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 0 and "scaler" in checkpoint

    # the store changed overnight: the manifest given at resume has lost a sequence; the run keeps its own
    shrunk = _variant(manifest, tmp_path, lambda raw: raw["sequences"].pop(0))
    train(shrunk, settings, tmp_path / "resumed", progress=False)
    whole, _ = load_run_model(tmp_path / "whole")
    resumed, _ = load_run_model(tmp_path / "resumed")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    epochs = (tmp_path / "resumed" / "epochs.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in epochs] == [1, 2]


def test_rerunning_a_finished_run_changes_nothing(manifest, tmp_path):
    settings = TrainSettings(method="cam", **{**TINY, "epochs": 1})
    first = train(manifest, settings, tmp_path / "run", progress=False)

    def written():  # the log says the run was found finished; nothing else may change
        return {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir() if p.name != "train.log"}

    files = written()
    again = train(manifest, settings, tmp_path / "run", progress=False)
    assert written() == files
    assert "is a finished run: nothing to do" in (tmp_path / "run" / "train.log").read_text()
    assert again.onnx_path == first.onnx_path and again.evaluation == first.evaluation


def test_fine_tuning_a_pretrained_trunk_loads_it_and_slows_its_learning_rate(manifest, tmp_path):
    checkpoint = tmp_path / "resnet18-local.pth"  # a small local checkpoint standing in for ImageNet's
    torch.manual_seed(7)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), checkpoint)
    settings = TrainSettings(
        method="cam", **{**TINY, "epochs": 1, "weights": str(checkpoint)}, augment=True, learning_rate=1e-3
    )
    train(manifest, settings, tmp_path / "run", progress=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["weights"] == str(checkpoint)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    trunk, head = state["optimizer"]["param_groups"]
    assert trunk["initial_lr"] == pytest.approx(1e-4) and head["initial_lr"] == pytest.approx(1e-3)
    with pytest.raises(RunError, match=r"nowhere\.pth: weights file not found"):
        train(manifest, settings.model_copy(update={"weights": str(tmp_path / "nowhere.pth")}),
              tmp_path / "other", progress=False)  # fmt: skip


def test_a_preparation_that_fails_midway_leaves_no_half_cache(manifest, tmp_path):
    from trainer.dataset import prepare_dataset
    from trainer.errors import DatasetError
    from trainer.manifest import load_manifest
    from trainer.preprocess import ForegroundSettings

    loaded, base = load_manifest(manifest)
    broken = loaded.sequences[0]
    victim = loaded.resolve(broken.frames[4].path, base)
    original = victim.read_bytes()
    victim.write_bytes(b"not an image")
    try:
        with pytest.raises(DatasetError, match=rf"{victim.name}: cannot read frame"):
            prepare_dataset(loaded, base, 64, "dis", ForegroundSettings(), tmp_path / "cache", progress=False)
    finally:
        victim.write_bytes(original)
    assert not list((tmp_path / "cache").glob("*/meta.json"))  # nothing that looks prepared
    prepared = prepare_dataset(
        loaded, base, 64, "dis", ForegroundSettings(), tmp_path / "cache", progress=False
    )
    assert len(prepared[0].frames) == len(broken.frames)


def test_long_footage_trains_on_a_fresh_draw_of_samples_each_epoch(manifest, tmp_path):
    settings = TrainSettings(method="cam", samples_per_epoch=5, **TINY)
    train(manifest, settings, tmp_path / "run", progress=False)
    epochs = [json.loads(line) for line in (tmp_path / "run" / "epochs.jsonl").read_text().splitlines()]
    assert [e["samples"] for e in epochs] == [5, 5]


def test_a_truncated_jpeg_is_refused_by_name(tmp_path):
    import cv2
    import numpy as np

    from trainer.dataset import read_rgb
    from trainer.errors import DatasetError

    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    whole = cv2.imencode(".jpg", image)[1].tobytes()
    (tmp_path / "whole.jpg").write_bytes(whole)
    assert read_rgb(tmp_path / "whole.jpg").shape == (48, 64, 3)
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 3])  # a disk or camera that failed mid-write
    with pytest.raises(DatasetError, match=r"cut\.jpg: frame is a truncated JPEG"):
        read_rgb(tmp_path / "cut.jpg")
    with pytest.raises(DatasetError, match=r"gone\.jpg: cannot read frame \(No such file"):
        read_rgb(tmp_path / "gone.jpg")


def test_a_run_that_stopped_before_training_starts_again_from_new_data(manifest, tmp_path):
    no_after = _variant(
        manifest,
        tmp_path,
        lambda raw: raw.update(sequences=[s for s in raw["sequences"] if s["label"] != "after"]),
    )
    settings = TrainSettings(method="cam", **{**TINY, "epochs": 1})
    with pytest.raises(RunError, match=r"variant\.json: no `after` footage"):
        train(no_after, settings, tmp_path / "run", progress=False)
    result = train(manifest, settings, tmp_path / "run", progress=False)  # not stuck with the bad data
    frozen = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert any(s["label"] == "after" for s in frozen["sequences"]) and result.onnx_path.is_file()
    # a run that never trained may also change its settings
    other = TrainSettings(method="cam", **{**TINY, "epochs": 1, "batch_size": 4})
    with pytest.raises(RunError, match=r"variant\.json: no `after` footage"):
        train(no_after, other, tmp_path / "other", progress=False)
    train(manifest, other.model_copy(update={"batch_size": 2}), tmp_path / "other", progress=False)


def test_a_squashed_input_is_warned_about_with_a_size_that_keeps_the_aspect(manifest, tmp_path, caplog):
    # 128x96 frames at a long side of 64: the short side rounds to 64, a square
    with caplog.at_level("WARNING", logger="trainer"):
        train(
            manifest, TrainSettings(method="cam", **{**TINY, "epochs": 1}), tmp_path / "run", progress=False
        )
    assert (
        "input 64x64 distorts the 128x96 frames' aspect ratio by 25%: an image size of 128 keeps it"
        in caplog.text
    )


def test_a_full_disk_while_preparing_is_one_error_and_leaves_no_partial_cache(manifest, small_disk):
    from trainer.dataset import prepare_dataset
    from trainer.errors import DatasetError
    from trainer.manifest import load_manifest
    from trainer.preprocess import ForegroundSettings

    disk = small_disk(0.2)  # room for about one prepared sequence at 64 px
    loaded, base = load_manifest(manifest)
    with pytest.raises(DatasetError, match=r"cannot write the prepared frames of .*No space left on device"):
        prepare_dataset(loaded, base, 64, "dis", ForegroundSettings(), disk / "cache", progress=False)
    assert not list((disk / "cache").glob("*.partial"))
    assert all(loaded.resolve(f.path, base).is_file() for s in loaded.sequences for f in s.frames)
