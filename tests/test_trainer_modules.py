"""Unit tests of the trainer's building blocks on constructed inputs."""

import itertools

import pytest
import torch

from trainer.losses import (
    class_cams,
    classification_loss,
    coherence_weight,
    fuse_neighbours,
    spatial_loss,
    temporal_loss,
)
from trainer.puzzle import merge, tile
from trainer.train import TrainSettings
from trainer.variants import VARIANTS, variant_settings
from trainer.warp import resize_flow, warp


def test_tiling_and_merging_are_exact_inverses():
    images = torch.randn(2, 3, 8, 12)
    tiles = tile(images)
    assert tiles.shape == (8, 3, 4, 6)
    assert torch.equal(merge(tiles), images)
    assert torch.equal(tiles[2], images[0, :, :4, 6:])  # second tile of the first image: top-right
    assert torch.equal(tile(merge(tiles)), tiles)
    with pytest.raises(ValueError, match="a 2x2 tiling needs height and width divisible by it, got 5x4"):
        tile(torch.zeros(1, 3, 5, 4))


@pytest.mark.parametrize("grid", [(1, 2), (2, 1)])
def test_larger_tiles_cut_the_image_once_and_merge_back_exactly(grid):
    images = torch.randn(2, 3, 8, 12)
    tiles = tile(images, grid)
    rows, columns = grid
    assert tiles.shape == (4, 3, 8 // rows, 12 // columns)
    assert torch.equal(merge(tiles, grid), images)
    second = images[0, :, :, 6:] if grid == (1, 2) else images[0, :, 4:, :]  # right half / bottom half
    assert torch.equal(tiles[2], second)


def test_a_one_tile_puzzle_is_refused_with_the_choices():
    from trainer.train import TrainSettings

    with pytest.raises(ValueError, match=r"a 1x1 puzzle is the image itself: use \(2, 2\)"):
        TrainSettings(puzzle_grid=(1, 1))
    with pytest.raises(ValueError, match="puzzle_grid"):
        TrainSettings(puzzle_grid=(3, 3))


def blob(x: int, y: int, size=(1, 1, 16, 16)) -> torch.Tensor:
    maps = torch.zeros(size)
    maps[..., y : y + 3, x : x + 2] = 1.0
    return maps


def constant_flow(dx: float, dy: float, size=(16, 16)) -> torch.Tensor:
    flow = torch.zeros(1, 2, *size)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def test_warping_moves_a_map_by_exactly_the_flow_in_the_documented_direction():
    # the object is at x=5 in frame s and at x=3 in frame t: flow t->s is +2 in x, +1 in y
    source = blob(5, 6)
    warped, valid = warp(source, constant_flow(2.0, 1.0))
    assert torch.allclose(warped, blob(3, 5), atol=1e-6)
    # what frame t sees at its right/bottom edge comes from outside frame s: marked invalid
    assert valid[0, 0, :, -2:].eq(0).all() and valid[0, 0, -1, :].eq(0).all()
    assert valid[0, 0, :-1, :-2].eq(1).all()


def test_sub_pixel_warping_interpolates_and_resized_flows_scale_their_vectors():
    source = torch.zeros(1, 1, 4, 4)
    source[..., 1] = 1.0
    warped, _ = warp(source, constant_flow(0.5, 0.0, (4, 4)))
    assert torch.allclose(warped[0, 0, 0, :2], torch.tensor([0.5, 0.5]))
    small = resize_flow(constant_flow(3.0, -1.5, (16, 16)), (4, 4))
    assert torch.allclose(small[:, 0], torch.full((1, 4, 4), 3.0 * 3 / 15))
    assert torch.allclose(small[:, 1], torch.full((1, 4, 4), -1.5 * 3 / 15))


def test_coherence_weights_follow_the_schedule():
    # 10 epochs of 5 steps: zero in epoch 1, then linear to the maximum at step 25, then flat
    weights = [coherence_weight(step, 5, 50, 4.0) for step in range(50)]
    assert weights[:5] == [0.0] * 5
    assert weights[5] == 0.0 and weights[15] == pytest.approx(2.0) and weights[25] == 4.0
    assert weights[49] == 4.0
    assert all(b >= a for a, b in itertools.pairwise(weights))
    assert coherence_weight(3, 3, 6, 4.0) == 4.0  # two epochs: full weight after the first


def test_classification_loss_is_small_on_confident_right_answers_and_large_on_wrong_ones():
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    right = classification_loss(torch.tensor([[20.0, -20.0, -20.0]]), labels)
    wrong = classification_loss(torch.tensor([[-20.0, 20.0, 20.0]]), labels)
    assert right < 1e-6 < 10 < wrong


def test_spatial_loss_is_zero_on_identical_maps_and_positive_otherwise():
    maps = torch.randn(2, 3, 4, 4)
    assert spatial_loss(maps, maps.clone()) == 0
    assert spatial_loss(maps, maps + 0.1) == pytest.approx(0.1)


def test_class_cams_pick_each_images_class_and_peak_at_one():
    maps = torch.zeros(2, 3, 4, 4)
    maps[0, 1, 1, 1] = 5.0
    maps[1, 2, 2, 2] = 2.0
    maps[1, 2, 0, 0] = -3.0  # ReLU removes it
    cams = class_cams(maps, torch.tensor([1, 2]))
    assert cams.shape == (2, 1, 4, 4)
    assert cams[0, 0, 1, 1] == pytest.approx(1.0, abs=1e-5) and cams[1, 0, 2, 2] == pytest.approx(
        1.0, abs=1e-5
    )
    assert cams[1, 0, 0, 0] == 0


def test_temporal_loss_is_zero_when_neighbours_agree_after_motion_and_positive_otherwise():
    # an object moving +2 px per frame in x: at x=3 at t-1, x=5 at t, x=7 at t+1
    cam_prev, cam_t, cam_next = blob(3, 6), blob(5, 6), blob(7, 6)
    flow_prev, flow_next = constant_flow(-2.0, 0.0), constant_flow(2.0, 0.0)
    assert temporal_loss(cam_t, cam_prev, cam_next, flow_prev, flow_next) == pytest.approx(0.0, abs=1e-6)
    fused, valid = fuse_neighbours(cam_prev, cam_next, flow_prev, flow_next)
    assert torch.allclose(fused, cam_t, atol=1e-6) and valid.min() == 1  # each pixel seen by one side
    wrong_place = blob(9, 6)
    assert temporal_loss(wrong_place, cam_prev, cam_next, flow_prev, flow_next) > 0.02
    # without motion compensation the same triplet disagrees
    still = constant_flow(0.0, 0.0)
    assert temporal_loss(cam_t, cam_prev, cam_next, still, still) > 0.02


def test_mean_fusion_halves_what_only_one_neighbour_spread_onto_where_max_fusion_keeps_it():
    object_prev, object_next = blob(3, 6), blob(7, 6)
    spill_prev = object_prev.clone()
    spill_prev[..., 6:9, 5:7] = 1.0  # t-1's map also covers the neighbour right of the object
    flow_prev, flow_next = constant_flow(-2.0, 0.0), constant_flow(2.0, 0.0)
    by_max, _ = fuse_neighbours(spill_prev, object_next, flow_prev, flow_next, "max")
    by_mean, valid = fuse_neighbours(spill_prev, object_next, flow_prev, flow_next, "mean")
    assert by_max[0, 0, 7, 8] == pytest.approx(1.0, abs=1e-6)  # the spill, warped onto frame t
    assert by_mean[0, 0, 7, 8] == pytest.approx(0.5, abs=1e-6)  # t+1 did not see it there
    assert by_mean[0, 0, 7, 5] == pytest.approx(1.0, abs=1e-6)  # both saw the object
    assert torch.equal(valid, fuse_neighbours(spill_prev, object_next, flow_prev, flow_next)[1])


@pytest.mark.parametrize("fixed", [False, True])
def test_a_fixed_temporal_target_moves_only_the_centre_frames_map(fixed):
    cam_t, cam_prev, cam_next = (blob(x, 6).requires_grad_() for x in (4, 3, 7))
    flow_prev, flow_next = constant_flow(-2.0, 0.0), constant_flow(2.0, 0.0)
    loss = temporal_loss(cam_t, cam_prev, cam_next, flow_prev, flow_next, fixed_target=fixed)
    loss.backward()
    assert loss > 0 and cam_t.grad.abs().sum() > 0
    moved = [cam.grad is not None and bool(cam.grad.abs().sum() > 0) for cam in (cam_prev, cam_next)]
    assert moved == [not fixed, not fixed]  # the paper's loss moves the neighbours too


@pytest.mark.parametrize("classified", [True, False])
def test_the_puzzle_tiles_classification_loss_can_be_switched_off_keeping_their_l1(classified):
    from trainer.train import TrainSettings, _step_losses, build_model

    settings = TrainSettings(
        method="puzzlecam", backbone="resnet18", weights="random", puzzle_classification=classified
    )
    torch.manual_seed(0)
    model = build_model(settings, None)
    batch = {"centre": torch.rand(2, 3, 64, 64), "labels": torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])}
    losses = _step_losses(model, batch, settings, a=1.0, b=0.0)
    assert ("pcls" in losses) is classified
    assert set(losses) - {"pcls"} == {"cls", "spatial"} and losses["spatial"] > 0
    own_only = settings.model_copy(update={"spatial_classes": "present"})  # each image has 2 of 3 classes
    assert 0 < _step_losses(model, batch, own_only, a=1.0, b=0.0)["spatial"] < losses["spatial"]


def test_the_spatial_loss_can_tie_only_the_maps_of_the_classes_in_the_image():
    """PuzzleCAM's and the paper authors' "masking": a tile that disagrees on an absent class's map
    costs nothing; one that disagrees on the image's own class costs that difference over all maps."""
    from trainer.losses import spatial_loss

    maps = torch.zeros(2, 3, 4, 4)
    absent_differs = maps.clone()
    absent_differs[0, 1] = 3.0  # image 0 is class 0 only: its class-1 map is not its own
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert spatial_loss(maps, absent_differs, labels) == 0
    assert spatial_loss(maps, absent_differs) == pytest.approx(3.0 / 6)
    own_differs = maps.clone()
    own_differs[1, 1] = 3.0  # image 1's own class
    assert spatial_loss(maps, own_differs, labels) == pytest.approx(spatial_loss(maps, own_differs)) != 0


def test_an_export_that_fails_its_parity_check_leaves_no_file(tmp_path, monkeypatch):
    from trainer import export
    from trainer.errors import ExportError
    from trainer.model import CamClassifier

    model = CamClassifier("resnet18", 16, None)
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)  # no difference, not even zero, is small enough
    target = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match=f"{target}: ONNX differs from PyTorch"):
        export.export_onnx(model, target, (64, 64), 0.5)
    assert list(tmp_path.iterdir()) == []  # neither the model nor its partial file
    monkeypatch.setattr(export, "PARITY_TOLERANCE", 1e-3)
    export.export_onnx(model, target, (64, 64), 0.5)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_every_variant_a_site_may_train_is_a_valid_setting_of_its_method():
    """A variant's name stands for trainer settings (extra fields are refused): a misspelt switch
    would fail here, not in a site's night."""
    for name in VARIANTS:
        settings = TrainSettings(**variant_settings(name))
        assert settings.method == name.split("_")[0]
    assert TrainSettings(**variant_settings("ours")) == TrainSettings()  # a method is the paper's
    assert not TrainSettings(**variant_settings("ours_nopcls")).puzzle_classification
    assert TrainSettings(**variant_settings("ours_meanfuse")).temporal_fusion == "mean"
    assert TrainSettings(**variant_settings("ours_os8")).output_stride == 8
    authors = TrainSettings(**variant_settings("ours_nopcls_present"))
    assert (authors.spatial_classes, authors.puzzle_classification) == ("present", False)
    assert TrainSettings().spatial_classes == "all"  # the paper's equation stays the default
    assert variant_settings("gradcam") == {"method": "gradcam"}  # a baseline `beltcam train` also runs


def test_a_stride_8_model_exports_with_maps_an_eighth_of_its_input_and_says_so(tmp_path):
    """`ours_os8`'s network goes live like any other: its ONNX file passes the parity check and
    tells the live path its stride."""
    import onnxruntime as ort

    from trainer import export
    from trainer.model import CamClassifier

    target = tmp_path / "model.onnx"
    export.export_onnx(CamClassifier("resnet18", 8, None).eval(), target, (64, 96), 0.5)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape[1:] == [3, 8, 12]
    assert session.get_modelmeta().custom_metadata_map["output_stride"] == "8"
