"""End-to-end training runs on a tiny simulated dataset: every method, resume, eval and ONNX."""

import json

import numpy as np
import onnxruntime
import pytest
import torch

from edge.simulator.dataset import write_simulated_manifest
from trainer.cams import class_activation_maps, sequence_before_maps
from trainer.dataset import BEFORE, TripletDataset, prepare_dataset
from trainer.evaluate import evaluate, split_masked
from trainer.export import read_metadata
from trainer.manifest import ManifestError, load_manifest
from trainer.model import CamClassifier, normalise
from trainer.preprocess import ForegroundSettings
from trainer.train import TrainSettings, load_run_model, run_input_shape, train

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
    assert len(list((tmp_path / "cache").glob("*/meta.json"))) == len(sequences)
    assert not list((tmp_path / "cache").glob("*.partial"))
    again = prepare_dataset(
        loaded, base, 64, "belt", ForegroundSettings(), tmp_path / "cache", progress=False
    )
    assert np.array_equal(again[0].flow_next[:], sequences[0].flow_next[:])
    # rows streamed to files read back exactly as the same rows prepared in memory
    in_memory = prepare_dataset(loaded, base, 64, "belt", ForegroundSettings(), None, progress=False)
    for cached, held in zip(sequences, in_memory, strict=True):
        for name in ("frames", "foreground", "flow_prev", "flow_next"):
            assert np.array_equal(np.asarray(getattr(cached, name)), getattr(held, name)), (cached.id, name)
        assert np.allclose(cached.foreground_fraction, held.foreground_fraction)
    assert np.array_equal(sequences[1].frames[[4, 2], 3:5], in_memory[1].frames[[4, 2], 3:5])
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
    assert 0.01 < np.asarray(masked.foreground).mean() < 0.6


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
    assert (meta["input_height"], meta["input_width"]) == ("64", "64") and float(
        meta["threshold"]
    ) == metrics["evaluation"]["threshold"]
    assert meta["threshold_source"] == "masks" and meta["output_stride"] == "16"
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406] and json.loads(meta["std"]) == [
        0.229,
        0.224,
        0.225,
    ]
    session = onnxruntime.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    cams, logits = session.run(None, {"images": np.zeros((5, 3, 64, 64), np.float32)})
    assert cams.shape == (5, 3, 4, 4) and logits.shape == (5, 3)  # dynamic batch
    # parity measured here, not taken from the exporter: real frames, a seeded pick, the same masks
    loaded, base = load_manifest(manifest)
    frames = np.concatenate(
        [
            s.frames
            for s in prepare_dataset(loaded, base, 64, "belt", ForegroundSettings(), None, progress=False)
        ]
    )
    pick = frames[np.random.default_rng(5).choice(len(frames), 6, replace=False)]
    images = normalise(torch.from_numpy(pick).permute(0, 3, 1, 2).float() / 255)
    model, _ = load_run_model(tmp_path / "run")
    with torch.no_grad():
        expected = torch.relu(model(images)).numpy()
    actual, _ = session.run(None, {"images": images.numpy()})
    assert np.abs(expected - actual).max() < 1e-3
    threshold = float(meta["threshold"])
    assert ((expected[:, 0] >= threshold) == (actual[:, 0] >= threshold)).mean() >= 0.999
    # a restarted run with the same settings resumes instead of training again
    before = (tmp_path / "run" / "epochs.jsonl").read_text()
    train(manifest, settings, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "epochs.jsonl").read_text() == before
    # ... also when an earlier version wrote its settings, without the fields added since
    written = json.loads((tmp_path / "run" / "settings.json").read_text())
    older = {k: v for k, v in written.items() if k not in ("puzzle_grid", "balance_foreground")}
    (tmp_path / "run" / "settings.json").write_text(json.dumps(older))
    train(manifest, settings, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "epochs.jsonl").read_text() == before
    with pytest.raises(ValueError, match="holds a run with other settings"):
        train(manifest, TrainSettings(method="cam", **TINY), tmp_path / "run", progress=False)


def test_cam_run_supports_gradcam_and_f2f_maps(manifest, tmp_path):
    train(manifest, TrainSettings(method="cam", **TINY), tmp_path / "cam", progress=False)
    model, settings = load_run_model(tmp_path / "cam")
    loaded, base = load_manifest(manifest)
    shape = run_input_shape(tmp_path / "cam")
    cache = tmp_path / "cam" / "cache"
    sequences = prepare_dataset(loaded, base, shape, settings.flow, settings.foreground, cache, False)
    validation, test = split_masked(sequences)
    assert len(validation) == len(test) == 1 and validation[0][0] != test[0][0]  # split by sequence
    results = {kind: evaluate(model, sequences, kind) for kind in ("cam", "f2f", "foreground")}
    for kind, result in results.items():
        assert result.maps == kind and 0 <= result.miou <= 100 and result.test_frames > 0
    # calling all foreground illegal: IoU is the illegal share of the foreground, threshold irrelevant
    assert 5 < results["foreground"].miou < 95
    augmented = class_activation_maps(model, sequences[0].frames[:3], flip=True, scales=(1.0, 0.5))
    plain = class_activation_maps(model, sequences[0].frames[:3])
    assert augmented.shape == plain.shape == (3, 3, 64, 64)
    assert augmented.amax(dim=(2, 3)).max() <= 1.0 + 1e-5 and not torch.allclose(augmented, plain)
    assert 0 <= evaluate(model, sequences, "cam", flip=True, scales=(1.0, 0.5)).miou <= 100


def test_the_grad_cam_baseline_is_a_classifier_of_its_own_read_with_grad_cam(manifest, tmp_path):
    from trainer.model import GradCamClassifier

    result = train(manifest, TrainSettings(method="gradcam", **TINY), tmp_path / "gc", progress=False)
    assert result.onnx_path is None and not (tmp_path / "gc" / "model.onnx").exists()  # never deployed
    model, _ = load_run_model(tmp_path / "gc")
    assert isinstance(model, GradCamClassifier) and model.resnet.fc.out_features == 3
    with torch.no_grad():  # softmax classifier: scores per image, output stride 32 before pooling
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)
        assert model.resnet.layer4(torch.zeros(1, 256, 4, 4)).shape[-1] == 2
    loaded, base = load_manifest(manifest)
    sequences = prepare_dataset(
        loaded, base, 64, "dis", ForegroundSettings(), tmp_path / "cache", progress=False
    )
    maps = sequence_before_maps(model, sequences[0], "cam", [1, 2, 3])
    assert maps.shape == (3, 2, 64, 64) and float(maps.min()) >= 0 and float(maps.max()) <= 1 + 1e-6
    # the maps are Grad-CAM's: the gradient-weighted layer4 features, not the head's class maps
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    frames = np.where(sequences[0].foreground[[2], ..., None], sequences[0].frames[[2]], 0)
    images = normalise(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255)
    with GradCAM(model=model, target_layers=[model.resnet.layer4]) as reader:
        direct = reader(input_tensor=images, targets=[ClassifierOutputTarget(0)])
    assert np.allclose(maps[1, 0].numpy(), direct[0], atol=1e-5)
    assert result.evaluation.maps == "cam" and 0 <= result.evaluation.miou <= 100


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


def test_output_strides_16_and_8_dilate_the_last_stages_of_every_backbone():
    for backbone in ("resnet18", "resnet50"):
        model = CamClassifier(backbone, 16, weights=None).eval()
        with torch.no_grad():
            assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 4, 4)
        fine = CamClassifier(backbone, 8, weights=None).eval()
        with torch.no_grad():
            assert fine(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 8, 8)
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


@pytest.mark.parametrize("method", ["puzzlecam", "temporal"])
def test_every_method_trains_with_its_own_loss_terms(manifest, tmp_path, method):
    train(manifest, TrainSettings(method=method, flow="belt", **TINY), tmp_path / "run", progress=False)
    last = json.loads((tmp_path / "run" / "epochs.jsonl").read_text().splitlines()[-1])
    terms = {"puzzlecam": {"cls", "pcls", "spatial"}, "temporal": {"cls", "temporal"}}[method]
    assert terms <= set(last) and all(last[t] > 0 for t in terms)
    assert not ({"cls", "pcls", "spatial", "temporal"} - terms) & set(last)


def test_a_run_without_masks_exports_the_object_checks_threshold(tmp_path):
    manifest = write_simulated_manifest(
        tmp_path / "sim", frames=6, sequences=1, masked_before=0, holdout_s=8.0, size=(96, 72)
    )
    result = train(manifest, TrainSettings(method="cam", **TINY), tmp_path / "run", progress=False)
    assert result.evaluation.miou is None and result.evaluation.threshold_source == "object check"
    check = result.evaluation.object_check
    assert check["test_objects"] >= 4 and check["removed_objects"] >= 1
    meta = read_metadata(result.onnx_path)
    assert float(meta["threshold"]) == check["threshold"] and meta["threshold_source"] == "object check"


def test_input_keeps_the_frames_aspect_ratio():
    from trainer.input_shape import fitted_shape

    assert fitted_shape((720, 1280), 512, 32) == (288, 512)  # 16:9 exactly
    assert fitted_shape((480, 640), 256, 32) == (192, 256)
    assert fitted_shape((1280, 720), 512, 32) == (512, 288)  # a camera mounted sideways
    assert fitted_shape((100, 1000), 128, 32) == (32, 128)  # never thinner than one tiling step


def test_a_wide_belt_trains_and_exports_at_its_own_aspect(tmp_path):
    manifest = write_simulated_manifest(
        tmp_path / "sim", frames=6, sequences=1, masked_before=2, size=(192, 96)
    )
    settings = TrainSettings(method="puzzlecam", flow="belt", **{**TINY, "image_size": 128, "epochs": 1})
    result = train(manifest, settings, tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "input.json").read_text()) == {"height": 64, "width": 128}
    meta = read_metadata(result.onnx_path)
    assert (meta["input_height"], meta["input_width"]) == ("64", "128")
    session = onnxruntime.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    cams, _ = session.run(None, {"images": np.zeros((1, 3, 64, 128), np.float32)})
    assert cams.shape == (1, 3, 4, 8)
    square = TrainSettings(method="cam", keep_aspect=False, **{**TINY, "image_size": 128, "epochs": 1})
    train(manifest, square, tmp_path / "square", progress=False)
    assert json.loads((tmp_path / "square" / "input.json").read_text()) == {"height": 128, "width": 128}
