"""End-to-end training runs on a tiny simulated dataset: every method, resume, eval and ONNX."""

import json

import numpy as np
import onnxruntime
import pytest
import torch

from edge.simulator.dataset import write_simulated_manifest
from trainer.cams import class_activation_maps, grad_cam
from trainer.dataset import BEFORE, TripletDataset, prepare_dataset
from trainer.evaluate import evaluate, split_masked
from trainer.export import read_metadata
from trainer.manifest import ManifestError, load_manifest
from trainer.model import CamClassifier
from trainer.preprocess import ForegroundSettings
from trainer.train import TrainSettings, load_run_model, train

TINY = {"backbone": "resnet18", "image_size": 64, "epochs": 2, "batch_size": 8, "weights": None}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return write_simulated_manifest(tmp_path_factory.mktemp("sim"))


def test_manifest_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text(
        json.dumps({"sequences": [{"id": "a", "camera": "c3", "label": "before", "frames": [{"path": "x"}]}]})
    )
    with pytest.raises(ManifestError, match=r"m.json: sequences.0.camera: Input should be 'c1' or 'c2'"):
        load_manifest(bad)
    bad.write_text("{")
    with pytest.raises(ManifestError, match="line 1: not valid JSON"):
        load_manifest(bad)


def test_dataset_triplets_labels_and_cached_flows(manifest, tmp_path):
    loaded, base = load_manifest(manifest)
    sequences = prepare_dataset(
        loaded, base, 64, "belt", ForegroundSettings(), tmp_path / "cache", progress=False
    )
    assert len(list((tmp_path / "cache").glob("*.npz"))) == len(sequences)
    again = prepare_dataset(
        loaded, base, 64, "belt", ForegroundSettings(), tmp_path / "cache", progress=False
    )
    assert np.array_equal(again[0].flow_next, sequences[0].flow_next)
    # belt flow: 250 mm/s / 6.25 mm/px = 40 px/s at 128 px, 0.25 s apart, at 64/4 = 16 px of 128
    assert float(sequences[0].flow_next[3, 0].mean()) == pytest.approx(40 * 0.25 * 16 / 128, rel=1e-3)
    assert float(sequences[0].flow_prev[3, 0].mean()) == pytest.approx(-40 * 0.25 * 16 / 128, rel=1e-3)
    dataset = TripletDataset([s for s in sequences if not any(s.mask_paths)], c1_also_after=True)
    sample = dataset[0]
    assert sample["centre"].shape == (3, 64, 64) and sample["flow_prev"].shape == (2, 16, 16)
    classes = {int(dataset[i]["cls"]) for i in range(len(dataset))}
    assert classes == {0, 1, 2}
    before = next(dataset[i] for i in range(len(dataset)) if int(dataset[i]["cls"]) == BEFORE)
    assert before["labels"].tolist() == [1.0, 1.0, 0.0]
    # the foreground picks out the objects: most labelled object pixels are foreground
    masked = next(s for s in sequences if any(s.mask_paths))
    assert 0.01 < masked.foreground.mean() < 0.6


def test_foreground_finds_simulated_objects(manifest):
    loaded, base = load_manifest(manifest)
    sequences = prepare_dataset(loaded, base, 128, "dis", ForegroundSettings(), None, progress=False)
    from trainer.dataset import read_mask

    masked = next(s for s in sequences if any(s.mask_paths))
    truth = read_mask(masked.mask_paths[4], masked.original_size)
    import cv2

    truth_small = cv2.resize(truth, (128, 128), interpolation=cv2.INTER_NEAREST) > 0
    recall = (masked.foreground[4] & truth_small).sum() / max(truth_small.sum(), 1)
    precision = (masked.foreground[4] & truth_small).sum() / max(masked.foreground[4].sum(), 1)
    assert recall > 0.6 and precision > 0.5


def test_ours_trains_evaluates_exports_and_resumes(manifest, tmp_path):
    settings = TrainSettings(method="ours", flow="belt", **TINY)
    result = train(manifest, settings, tmp_path / "run", progress=False)
    epochs = [json.loads(line) for line in (tmp_path / "run" / "epochs.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[0]["a"] == 0 and "temporal" not in epochs[0]  # coherence off in the first epoch
    assert epochs[1]["temporal"] > 0 and epochs[1]["spatial"] > 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= metrics["evaluation"]["miou"] <= 100
    assert metrics["onnx_max_abs_diff"] < 1e-3 and result.onnx_max_abs_diff == metrics["onnx_max_abs_diff"]
    meta = read_metadata(result.onnx_path)
    assert json.loads(meta["classes"]) == ["before", "after", "background"]
    assert meta["input_size"] == "64" and float(meta["threshold"]) == metrics["evaluation"]["threshold"]
    session = onnxruntime.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    cams, logits = session.run(None, {"images": np.zeros((5, 3, 64, 64), np.float32)})
    assert cams.shape == (5, 3, 4, 4) and logits.shape == (5, 3)  # dynamic batch
    # a restarted run with the same settings resumes instead of training again
    before = (tmp_path / "run" / "epochs.jsonl").read_text()
    train(manifest, settings, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "epochs.jsonl").read_text() == before
    with pytest.raises(ValueError, match="holds a run with other settings"):
        train(manifest, TrainSettings(method="cam", **TINY), tmp_path / "run", progress=False)


def test_cam_run_supports_gradcam_and_f2f_maps(manifest, tmp_path):
    train(manifest, TrainSettings(method="cam", **TINY), tmp_path / "cam", progress=False)
    model, settings = load_run_model(tmp_path / "cam")
    loaded, base = load_manifest(manifest)
    sequences = prepare_dataset(loaded, base, settings.image_size, settings.flow, settings.foreground,
                                tmp_path / "cam" / "cache", progress=False)  # fmt: skip
    validation, test = split_masked(sequences)
    assert len(validation) == len(test) == 1 and validation[0][0] != test[0][0]  # split by sequence
    results = {kind: evaluate(model, sequences, kind) for kind in ("cam", "gradcam", "f2f", "foreground")}
    for kind, result in results.items():
        assert result.maps == kind and 0 <= result.miou <= 100 and result.test_frames > 0
    # calling all foreground illegal: IoU is the illegal share of the foreground, threshold irrelevant
    assert 5 < results["foreground"].miou < 95
    augmented = class_activation_maps(model, sequences[0].frames[:3], flip=True, scales=(1.0, 0.5))
    plain = class_activation_maps(model, sequences[0].frames[:3])
    assert augmented.shape == plain.shape == (3, 3, 64, 64)
    assert augmented.amax(dim=(2, 3)).max() <= 1.0 + 1e-5 and not torch.allclose(augmented, plain)
    assert 0 <= evaluate(model, sequences, "cam", flip=True, scales=(1.0, 0.5)).miou <= 100


def test_grad_cam_agrees_with_the_grad_cam_package():
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    model = CamClassifier("resnet18", 16, weights=None).eval()
    frames = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    ours = grad_cam(model, frames, [0, 2])

    class Scores(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return CamClassifier.logits(self.inner(x))

    from trainer.model import normalise

    images = normalise(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
    with GradCAM(model=Scores(model), target_layers=[model.trunk[-1]]) as cam:
        theirs = cam(input_tensor=images, targets=[ClassifierOutputTarget(0), ClassifierOutputTarget(2)])
    assert np.abs(ours[:, 0].numpy() - theirs).max() < 0.02


def test_local_imagenet_weights_are_loaded_and_bad_files_refused(tmp_path, monkeypatch):
    import torchvision

    from trainer.errors import RunError

    reference = torchvision.models.resnet18(weights=None)
    checkpoint = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), checkpoint)
    model = CamClassifier("resnet18", 32, weights=checkpoint)
    assert model.weights_source == str(checkpoint)
    assert torch.equal(model.trunk[0].weight, reference.conv1.weight)
    # 'imagenet' looks in the torch hub cache only; an empty cache is an error naming where it looked
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(RunError, match=r"no ImageNet weights for resnet18 .*resnet18-f37072fd\.pth.*random"):
        CamClassifier("resnet18", 16, weights="imagenet")
    assert CamClassifier("resnet18", 16, weights="random").weights_source == "random"
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    assert CamClassifier("resnet18", 16, weights="imagenet").weights_source.endswith("resnet18-f37072fd.pth")
    # ResNet-50 is found under torchvision's older (V1) file name as well as the current (V2) one
    resnet50 = torchvision.models.resnet50(weights=None)
    torch.save(resnet50.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth")
    assert CamClassifier("resnet50", 16, weights="imagenet").weights_source.endswith("resnet50-0676ba61.pth")
    with pytest.raises(RunError, match=r"missing\.pth: weights file not found"):
        CamClassifier("resnet18", 16, weights=tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), wrong)
    with pytest.raises(RunError, match="not a resnet18 checkpoint"):
        CamClassifier("resnet18", 16, weights=wrong)
    with pytest.raises(RunError, match="not a resnet18 checkpoint"):  # same names, other shapes
        CamClassifier("resnet18", 16, weights=tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match="cannot read as a PyTorch checkpoint"):
        CamClassifier("resnet18", 16, weights=garbage)


def test_output_stride_16_dilates_the_last_stage_of_every_backbone():
    for backbone in ("resnet18", "resnet50"):
        model = CamClassifier(backbone, 16, weights=None).eval()
        with torch.no_grad():
            assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 4, 4)
        coarse = CamClassifier(backbone, 32, weights=None).eval()
        with torch.no_grad():
            assert coarse(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 2, 2)


class _RunsCode:
    """What a hostile checkpoint carries: an object whose unpickling runs a command."""

    def __reduce__(self):
        return (print, ("code ran while loading a checkpoint",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    from trainer.errors import RunError
    from trainer.train import load_run_model

    run = tmp_path / "run"
    run.mkdir()
    (run / "settings.json").write_text(TrainSettings(method="cam", **TINY).model_dump_json())
    torch.save({"model": {}, "payload": _RunsCode()}, run / "checkpoint.pt")
    with pytest.raises(RunError, match=r"checkpoint\.pt: not a checkpoint beltcam wrote"):
        load_run_model(run)
    assert "code ran" not in capsys.readouterr().out
