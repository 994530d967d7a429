"""The live path's parts: the ONNX Runtime segmenter against PyTorch, models it must refuse, the
newest-frame discipline, fusion by belt motion, the tracker, and the dispatcher's record."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from concurrent.futures import Future

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from sqlalchemy import select

from edge.agent import supervised
from edge.capture.newest import NewestFrameSlot
from edge.config import CameraConfig, LiveConfig, SimulatorConfig
from edge.live.belt_speed import BeltSpeedMeter
from edge.live.dispatcher import Dispatcher
from edge.live.fusion import TemporalFusion
from edge.live.path import LivePath
from edge.live.segmenter import LiveSegmenter, ModelRefused
from edge.live.tracker import BeltTracker
from edge.live.watcher import ModelWatcher
from edge.simulator.camera import SimulatedCamera
from edge.sources.base import Frame
from edge.store.command_log import CommandLog
from edge.store.models import RemovalCommand as RemovalCommandRow
from edge.store.registry import add_model, promote
from firmware_bridge.dry_run import DryRunTransport
from firmware_bridge.messages import BeltObject, CommandOutcome
from firmware_bridge.modbus_simulator import ModbusValveSimulator
from firmware_bridge.modbus_transport import ModbusTcpTransport
from firmware_bridge.planner import EjectionPlanner, NozzleBank
from trainer.cams import class_activation_maps, masks_from_maps
from trainer.dataset import AFTER, BEFORE, model_input
from trainer.preprocess import median_background, split_foreground
from trainer.train import load_run_model

SIZE = (128, 96)
MM_PER_PX = 600 / 96
PLANE = np.diag([MM_PER_PX, MM_PER_PX, 1.0])  # the simulated C1's belt plane
BANK = NozzleBank(
    line_x_mm=1200.0, nozzle_count=24, pitch_mm=25.0, first_nozzle_y_mm=12.5, valve_latency_ms=12.0,
    min_pulse_ms=8.0,
)  # fmt: skip


def _c1_frames(count: int, seed: int = 3) -> list[Frame]:
    camera = SimulatedCamera(
        CameraConfig(id="c1", kind="simulated", resolution=SIZE, fps=10.0),
        SimulatorConfig(seed=seed, objects_per_m=8.0, realtime=False),
        epoch_ns=0,
    )
    return [camera.frame_at(seq) for seq in range(count)]


def _segmenter(path, fusion="none", threads=0) -> LiveSegmenter:
    settings = LiveConfig(fusion=fusion, providers=["cpu"], background_every=1, threads=threads)
    return LiveSegmenter(path, settings, SIZE, (250 / MM_PER_PX, 0.0))


def test_onnx_runtime_and_torch_give_the_same_masks_on_the_same_frames(live_model_file):
    segmenter = _segmenter(live_model_file)
    model, _ = load_run_model(live_model_file.parent)
    images = [frame.image for frame in _c1_frames(12)]
    background = median_background(images, segmenter.info.foreground)
    shape, threshold = segmenter.info.input_shape, segmenter.info.threshold
    agree = total = illegal = 0
    for image in images:
        frame, foreground = model_input(image, background, shape, segmenter.info.foreground)
        live = masks_from_maps(segmenter.maps(frame, foreground)[None], foreground[None], threshold)
        foreground_only, _ = split_foreground(frame, foreground)
        maps = class_activation_maps(model, foreground_only[None])[:, [BEFORE, AFTER]]
        reference = masks_from_maps(maps, foreground[None], threshold)
        agree += int((live == reference).sum())
        total += live.size
        illegal += int((reference == 1).sum())
    assert illegal > 0  # the comparison covers illegal pixels, not only background
    assert agree / total >= 0.999


def test_a_stride_8_model_goes_live_with_its_maps_at_the_input_size(tmp_path):
    """`ours_os8` (class maps at 1/8 of the input, trainable and promotable by a site) must be read
    like the default stride: its finer maps upsampled to the input, the same as PyTorch's."""
    from trainer.export import export_onnx
    from trainer.model import CamClassifier

    model = CamClassifier("resnet18", 8, None).eval()
    export_onnx(model, tmp_path / "model.onnx", (48, 64), 0.5)
    segmenter = _segmenter(tmp_path / "model.onnx")
    assert segmenter.session.get_outputs()[0].shape[2:] == [6, 8]
    image, rule = _c1_frames(1)[0].image, segmenter.info.foreground
    frame, foreground = model_input(image, median_background([image], rule), (48, 64), rule)
    live = segmenter.maps(frame, foreground)
    foreground_only, _ = split_foreground(frame, foreground)
    reference = class_activation_maps(model, foreground_only[None])[0, [BEFORE, AFTER]]
    assert live.shape == (2, 48, 64) and live.amax() > 0
    assert torch.allclose(live, reference, atol=1e-3)


def test_a_site_can_hold_the_live_model_to_fewer_cpu_threads_for_the_same_maps(live_model_file):
    default, held = _segmenter(live_model_file), _segmenter(live_model_file, threads=1)
    options = held.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert default.session.get_session_options().intra_op_num_threads == 0  # one per core
    for session in (held.session, default.session):  # paced at the camera's rate: no spinning between frames
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    frame = _c1_frames(1)[0].image
    background = median_background([frame], default.info.foreground)
    inputs = model_input(frame, background, default.info.input_shape, default.info.foreground)
    assert torch.allclose(held.maps(*inputs), default.maps(*inputs), atol=1e-5)


def _with_metadata(source, target, drop: str | None = None, **changed: str) -> None:
    """A copy of the model whose metadata lacks `drop` and has `changed` values."""
    proto = onnx.load(str(source))
    kept = [(entry.key, changed.get(entry.key, entry.value)) for entry in proto.metadata_props]
    del proto.metadata_props[:]
    for key, value in kept:
        if key != drop:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(proto, str(target))


def _grey_model(target) -> None:
    """A valid ONNX graph of another kind: one grey channel in, the same out."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 64, 48])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 64, 48])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "grey", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(target))


def test_models_the_live_path_cannot_use_are_refused_and_the_live_one_stays(live_model_file, tmp_path):
    corrupt, untuned, grey = tmp_path / "corrupt.onnx", tmp_path / "untuned.onnx", tmp_path / "grey.onnx"
    other_classes, other_normalisation = tmp_path / "classes.onnx", tmp_path / "normalisation.onnx"
    corrupt.write_bytes(live_model_file.read_bytes()[:5000])
    _with_metadata(live_model_file, untuned, drop="threshold")
    _with_metadata(live_model_file, other_classes, classes='["illegal", "legal", "belt"]')
    _with_metadata(live_model_file, other_normalisation, mean="[0.5, 0.5, 0.5]")
    _grey_model(grey)
    reasons = {
        corrupt: "not a readable ONNX model",
        untuned: "no `threshold` in its metadata",
        other_classes: r"classes \[\"illegal\", \"legal\", \"belt\"\] are not",
        other_normalisation: r"its input normalisation \(mean/std\) is not the trainer's",
        grey: "its input is not `images`",
        tmp_path / "missing.onnx": "no such model file",
    }
    for path, reason in reasons.items():
        with pytest.raises(ModelRefused, match=reason) as refused:
            _segmenter(path)
        assert str(path) in str(refused.value)
    live = LivePath(NewestFrameSlot(), lambda: "ok", None, None, threading.Lock(), _segmenter)
    assert live.offer_model(live_model_file)
    live._swap()
    for path in reasons:
        assert not live.offer_model(path)
        live._swap()
        assert live.model == live_model_file
    assert len(live.stats.refused) == len(reasons) and live.stats.swaps == 0  # the first load is no swap


def _tracker(**settings) -> BeltTracker:
    return BeltTracker(PLANE, SIZE, 250.0, LiveConfig(**settings))


def _labels(boxes: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    """A 96 x 128 label map with (x0, y0, x1, y1, label) rectangles."""
    labels = np.zeros((96, 128), np.uint8)
    for x0, y0, x1, y1, label in boxes:
        labels[y0:y1, x0:x1] = label
    return labels


def test_the_tracker_follows_each_object_along_the_belt_and_votes_on_its_class():
    tracker = _tracker(min_hits=2, merge_gap_mm=0.0)
    step_px = 4  # 250 mm/s over 0.1 s is 25 mm, 4 px of 6.25 mm
    reports = []
    for k in range(6):
        labels = _labels([(20 + step_px * k, 10, 36 + step_px * k, 30, 1),  # illegal
                          (20 + step_px * k, 60, 36 + step_px * k, 80, 2)])  # legal  # fmt: skip
        reports.append(tracker.update(labels, k * 100_000_000))
    assert reports[0] == []  # seen once: not confirmed yet
    ids = {(obj.object_id, obj.cls) for frame in reports[1:] for obj in frame}
    assert len(ids) == 2 and {cls for _, cls in ids} == {"illegal", "legal"}
    last = {obj.cls: obj for obj in reports[-1]}["illegal"]
    assert last.x_min_mm == pytest.approx((20 + 5 * step_px) * MM_PER_PX)
    assert last.x_max_mm == pytest.approx((36 + 5 * step_px) * MM_PER_PX)
    assert (last.y_min_mm, last.y_max_mm) == pytest.approx((10 * MM_PER_PX, 30 * MM_PER_PX))
    # one frame's mistake is outvoted: the illegal object seen legal once stays illegal
    flipped = tracker.update(_labels([(44, 10, 60, 30, 2)]), 600_000_000)
    assert [obj.cls for obj in flipped] == ["illegal"]


def test_streaks_thinner_than_the_shape_filter_are_no_objects():
    """A diagonal glare streak (3 px = 19 mm wide, far above min_area_mm2) is an object by area
    alone; `min_width_mm` drops it by its rotated width and keeps the real object beside it."""
    labels = _labels([(90, 60, 110, 80, 1)])  # a 125 mm square object
    cv2.line(labels, (10, 10), (60, 60), 1, thickness=3)  # a streak across the belt at 45 degrees
    assert len(_tracker(min_hits=1, merge_gap_mm=0.0).update(labels, 0)) == 2
    (kept,) = _tracker(min_hits=1, merge_gap_mm=0.0, min_width_mm=30.0).update(labels, 0)
    assert kept.x_min_mm == pytest.approx(90 * MM_PER_PX)


def test_an_object_leaving_the_view_keeps_its_length():
    tracker = _tracker(min_hits=1, merge_gap_mm=0.0)
    for k in range(3):  # 24 px long, 4 px a frame, its leading edge reaches the right border
        (obj,) = tracker.update(_labels([(96 + 4 * k, 10, 120 + 4 * k, 30, 1)]), k * 100_000_000)
    (obj,) = tracker.update(_labels([(108, 10, 128, 30, 1)]), 300_000_000)  # 4 px of it out of view now
    assert (obj.x_min_mm, obj.x_max_mm) == pytest.approx((108 * MM_PER_PX, 132 * MM_PER_PX))


def test_the_tracker_reports_each_objects_outline_in_bands_across_the_belt():
    # an L: 20 px long over rows 10-20, 10 px long over rows 20-30
    l_shape = _labels([(20, 10, 40, 20, 1), (20, 20, 30, 30, 1)])
    (obj,) = _tracker(min_hits=1, outline_band_mm=5.0).update(l_shape, 0)
    assert (obj.x_min_mm, obj.x_max_mm) == pytest.approx((20 * MM_PER_PX, 40 * MM_PER_PX))
    assert obj.lane_extent(10 * MM_PER_PX, 20 * MM_PER_PX) == pytest.approx((20 * MM_PER_PX, 40 * MM_PER_PX))
    assert obj.lane_extent(20 * MM_PER_PX, 30 * MM_PER_PX) == pytest.approx((20 * MM_PER_PX, 30 * MM_PER_PX))
    assert obj.lane_extent(30 * MM_PER_PX, 40 * MM_PER_PX) is None
    touching = _labels([(20, 10, 40, 30, 1), (40, 20, 60, 40, 2)])  # split: each region its own outline
    split = {o.cls: o for o in _tracker(min_hits=1).update(touching, 0)}
    assert split["legal"].lane_extent(10 * MM_PER_PX, 20 * MM_PER_PX) is None
    assert split["illegal"].lane_extent(30 * MM_PER_PX, 40 * MM_PER_PX) is None
    # one class in two places of one patch: each part has its own outline, not the other's
    sandwich = _labels([(20, 10, 30, 30, 1), (30, 10, 50, 30, 2), (50, 10, 60, 30, 1)])
    parts = sorted(_tracker(min_hits=1).update(sandwich, 0), key=lambda o: o.x_min_mm)
    assert [o.cls for o in parts] == ["illegal", "legal", "illegal"]
    lanes = [part.lane_extent(10 * MM_PER_PX, 30 * MM_PER_PX) for part in parts]
    boxes = [(part.x_min_mm, part.x_max_mm) for part in parts]
    assert np.ravel(lanes) == pytest.approx(np.array([20, 30, 30, 50, 50, 60]) * MM_PER_PX)
    assert np.ravel(boxes) == pytest.approx(np.ravel(lanes))
    (boxed,) = _tracker(min_hits=1, outline_band_mm=0.0).update(l_shape, 0)
    assert boxed.outline == () and boxed.lane_extent(20 * MM_PER_PX, 30 * MM_PER_PX) == pytest.approx(
        (20 * MM_PER_PX, 40 * MM_PER_PX)
    )


def test_an_object_cut_by_the_border_keeps_the_outline_it_was_seen_with():
    tracker = _tracker(min_hits=1, merge_gap_mm=0.0)
    for k in range(3):  # an L whose long arm leads, 4 px a frame, reaching the right border
        labels = _labels([(96 + 4 * k, 10, 120 + 4 * k, 20, 1), (96 + 4 * k, 20, 106 + 4 * k, 30, 1)])
        tracker.update(labels, k * 100_000_000)
    (obj,) = tracker.update(_labels([(108, 10, 128, 20, 1), (108, 20, 118, 30, 1)]), 300_000_000)  # 4 px out
    assert obj.lane_extent(10 * MM_PER_PX, 20 * MM_PER_PX) == pytest.approx(
        (108 * MM_PER_PX, 132 * MM_PER_PX)
    )
    assert obj.lane_extent(20 * MM_PER_PX, 30 * MM_PER_PX) == pytest.approx(
        (108 * MM_PER_PX, 118 * MM_PER_PX)
    )


def test_the_belt_speed_is_measured_from_the_objects_the_tracker_follows():
    meter = BeltSpeedMeter(250.0, window_s=1.0, min_samples=3)
    meter.add(27.0, 0.1, 0)
    meter.add(28.0, 0.1, 100_000_000)
    assert meter.speed_mm_s(100_000_000) == 250.0  # two samples: the calibrated speed still stands
    meter.add(80.0, 0.1, 150_000_000)  # 800 mm/s: a track that jumped to a neighbour, refused
    meter.add(27.5, 0.1, 200_000_000)
    assert meter.speed_mm_s(200_000_000) == pytest.approx(275.0) and meter.refused == 1
    assert meter.speed_mm_s(5_000_000_000) == pytest.approx(275.0)  # an empty belt keeps the last measure

    def run(belt_speed: str) -> list:
        tracker = _tracker(min_hits=1, merge_gap_mm=0.0, belt_speed=belt_speed)  # calibrated: 250 mm/s
        reports = []
        for k in range(8):  # the belt runs at 312.5 mm/s: 5 px of 6.25 mm every 0.1 s
            labels = _labels([(10 + 5 * k, 10, 26 + 5 * k, 30, 1), (30 + 5 * k, 50, 46 + 5 * k, 70, 2)])
            reports.append(tracker.update(labels, k * 100_000_000))
        return reports

    measured = run("measured")
    assert {obj.speed_mm_s for obj in measured[0]} == {250.0}  # nothing measured yet
    assert [obj.speed_mm_s for obj in measured[-1]] == pytest.approx([312.5, 312.5])
    assert len({obj.object_id for frame in measured for obj in frame}) == 2
    assert {obj.speed_mm_s for obj in run("calibrated")[-1]} == {250.0}


def test_small_patches_are_noise_and_far_jumps_are_new_objects():
    tracker = _tracker(min_hits=1, min_area_mm2=1500.0, gate_mm=50.0)
    assert tracker.update(_labels([(10, 10, 14, 14, 1)]), 0) == []  # 16 px = 625 mm^2
    (first,) = tracker.update(_labels([(10, 10, 30, 30, 1)]), 100_000_000)
    (second,) = tracker.update(_labels([(60, 10, 80, 30, 1)]), 200_000_000)  # 290 mm on, not 25 mm
    assert first.object_id != second.object_id


def test_touching_illegal_and_legal_regions_are_two_objects_but_speckles_stay_one():
    touching = _labels([(20, 10, 40, 30, 1), (40, 10, 60, 30, 2)])  # 20x20 px each: 15625 mm^2 each
    split = _tracker(min_hits=1).update(touching, 0)
    assert sorted((obj.cls, round(obj.x_min_mm / MM_PER_PX)) for obj in split) == [
        ("illegal", 20),
        ("legal", 40),
    ]
    (merged,) = _tracker(min_hits=1, split_classes=False).update(touching, 0)  # the mixed object of before
    assert merged.cls == "illegal" and merged.x_max_mm == pytest.approx(60 * MM_PER_PX)
    speckled = _labels([(20, 10, 60, 30, 2), (30, 15, 34, 19, 1)])  # 16 px of illegal: below min_area_mm2
    (whole,) = _tracker(min_hits=1).update(speckled, 0)
    assert whole.cls == "legal" and (whole.x_min_mm, whole.x_max_mm) == pytest.approx(
        (20 * MM_PER_PX, 60 * MM_PER_PX)
    )


def test_belt_motion_fusion_moves_the_previous_maps_by_the_belt():
    fusion = TemporalFusion("belt", (100.0, 0.0))  # 100 input px per second
    frame = np.zeros((48, 64, 3), np.uint8)
    previous = torch.zeros(2, 48, 64)
    previous[0, 20:24, 10:14] = 1.0
    fusion.fuse(previous, frame, 0)
    fused = fusion.fuse(torch.zeros(2, 48, 64), frame, 100_000_000)  # 0.1 s later: 10 px on
    ys, xs = torch.nonzero(fused[0] > 0.5, as_tuple=True)
    assert (int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())) == (20, 23, 20, 23)
    assert float(fused[1].max()) == 0.0
    stale = fusion.fuse(torch.zeros(2, 48, 64), frame, 2_000_000_000)  # after a stall: nothing fused
    assert float(stale.max()) == 0.0
    none = TemporalFusion("none")
    none.fuse(previous, frame, 0)
    assert float(none.fuse(torch.zeros(2, 48, 64), frame, 100_000_000).max()) == 0.0
    two = TemporalFusion("belt", (100.0, 0.0), frames=2)  # t-2 and t-1, each moved by its own gap
    two.fuse(previous, frame, 0)
    two.fuse(torch.zeros(2, 48, 64), frame, 100_000_000)
    fused = two.fuse(torch.zeros(2, 48, 64), frame, 200_000_000)
    ys, xs = torch.nonzero(fused[0] > 0.5, as_tuple=True)
    assert (int(xs.min()), int(xs.max())) == (30, 33)  # t-2's blob, 20 px on; t-1 had none


def test_optical_flow_fusion_moves_the_previous_maps_with_what_the_frames_show():
    """No calibration: the flow between the two frames carries the previous maps onto the object."""
    texture = np.random.default_rng(0).integers(40, 255, (12, 12, 3), dtype=np.uint8)
    before, now = np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64, 3), np.uint8)
    before[18:30, 10:22], now[18:30, 18:30] = texture, texture  # the object moved 8 px along the belt
    previous = torch.zeros(2, 48, 64)
    previous[0, 20:28, 12:20] = 1.0  # the previous map, on the object
    fusion = TemporalFusion("flow")
    fusion.fuse(previous, before, 0)
    fused = fusion.fuse(torch.zeros(2, 48, 64), now, 100_000_000)
    ys, xs = torch.nonzero(fused[0] > 0.5, as_tuple=True)
    assert float(xs.float().mean()) == pytest.approx(15.5 + 8, abs=1.5)  # moved with the object
    assert float(ys.float().mean()) == pytest.approx(23.5, abs=1.5)


def test_frames_faster_than_inference_are_skipped_and_counted_never_queued(live_model_file):
    frames = _c1_frames(60)
    slot = NewestFrameSlot()
    planner = EjectionPlanner(BANK)
    live = LivePath(slot, lambda: "ok", _tracker(), planner, threading.Lock(), _segmenter)
    assert live.offer_model(live_model_file)
    stop = threading.Event()
    worker = threading.Thread(target=live.run, args=(stop,))
    worker.start()
    for frame in frames:  # 500 frames/s: far faster than the model
        slot.put(frame)
        time.sleep(0.002)
    time.sleep(0.5)
    stop.set()
    worker.join(timeout=10)
    stats = live.stats
    handled = stats.processed + stats.warming_up + stats.without_model
    assert slot.skipped > 0 and stats.processed > 0
    assert handled + slot.skipped == slot.offered == len(frames)  # every frame accounted for, none waiting
    # each frame taken is timed by stage: its turn took longer than frames arrived (every 2 ms)
    timed = stats.stage_ms
    assert len(timed["frame"]) == len(timed["segment"]) == handled
    assert len(timed["track"]) == len(timed["plan"]) == stats.processed and not timed["view"]
    assert float(np.median(timed["frame"])) > 2.0
    assert all(f >= s for f, s in zip(timed["frame"], timed["segment"], strict=True))


def test_nothing_new_is_planned_while_c1_is_unhealthy(live_model_file):
    slot = NewestFrameSlot()
    planner = EjectionPlanner(BANK)
    state = ["stalled"]
    live = LivePath(slot, lambda: state[0], _tracker(min_hits=1), planner, threading.Lock(), _segmenter)
    live.offer_model(live_model_file)
    for frame in _c1_frames(20):
        slot.put(frame)
        live.step(1.0)
    assert live.stats.not_planned == live.stats.processed > 0 and planner.stats.planned == 0


def _released_once(store, planner: EjectionPlanner) -> tuple[Dispatcher, list[tuple[int, str]]]:
    """One release by a dispatcher over a dry-run link; (it, the command log's (object id, status) rows)."""
    log = CommandLog(store)
    dispatcher = Dispatcher(planner, threading.Lock(), DryRunTransport(), log, 0.005)
    dispatcher.release()
    log.close()
    with store.session() as session:
        rows = session.execute(select(RemovalCommandRow.object_id, RemovalCommandRow.status)).all()
    return dispatcher, [tuple(row) for row in rows]


def test_late_commands_are_on_record_as_late(store):
    clock = [0]
    planner = EjectionPlanner(BANK, clock=lambda: clock[0])
    obj = BeltObject(object_id=7, cls="illegal", x_min_mm=1000.0, x_max_mm=1100.0, y_min_mm=50.0,
                     y_max_mm=90.0, seen_ns=0, speed_mm_s=250.0, capture_ns=0)  # fmt: skip
    clock[0] = 2_000_000_000  # planned long after the object passed the line
    assert planner.plan(obj) is None
    dispatcher, rows = _released_once(store, planner)
    assert rows == [(7, "late")] and dispatcher.sent == 0


def test_a_command_the_link_finds_late_is_counted_late(store):
    """Released in time by the planner's clock, but past its fire time when the link takes it (a
    starved machine): on record as late and counted, so that the scoreboard's `late` is the log's."""
    planner = EjectionPlanner(BANK, clock=lambda: 300_000_000)  # the link reads the real clock: long after
    planner.plan(BeltObject(object_id=9, cls="illegal", x_min_mm=1000.0, x_max_mm=1100.0, y_min_mm=50.0,
                            y_max_mm=90.0, seen_ns=0, speed_mm_s=250.0, capture_ns=0))  # fmt: skip
    dispatcher, rows = _released_once(store, planner)
    assert rows == [(9, "late")]
    assert (dispatcher.sent, dispatcher.late_at_link, planner.stats.late) == (1, 1, 0)
    assert dispatcher.unsettled() == 0


def test_a_command_sent_while_the_link_is_down_is_counted_dropped(store):
    """A valve box powered off: the command's deadline passes with no link, it never fires, and the
    scoreboard counts it as the command log records it."""
    simulator = ModbusValveSimulator(channels=16)
    transport = ModbusTcpTransport("127.0.0.1", simulator.port, heartbeat_ms=50, watchdog_ms=200)
    transport.start()
    try:
        assert transport.wait_connected(3.0)
        simulator.power_off()
        started = time.monotonic()
        while transport.status().connected and time.monotonic() - started < 2.0:
            time.sleep(0.002)
        planner = EjectionPlanner(BANK)
        planner.plan(BeltObject(object_id=5, cls="illegal", x_min_mm=1000.0, x_max_mm=1100.0, y_min_mm=50.0,
                                y_max_mm=90.0, seen_ns=time.monotonic_ns(), speed_mm_s=2000.0,
                                capture_ns=time.monotonic_ns()))  # fmt: skip
        log = CommandLog(store)
        dispatcher = Dispatcher(planner, threading.Lock(), transport, log, 0.005)
        deadline = time.monotonic() + 3.0
        while dispatcher.sent == 0 and time.monotonic() < deadline:
            dispatcher.release()
            time.sleep(0.005)
        while dispatcher.unsettled() and time.monotonic() < deadline:
            time.sleep(0.01)
        log.close()
    finally:
        transport.close()
        simulator.close()
    with store.session() as session:
        rows = session.execute(select(RemovalCommandRow.object_id, RemovalCommandRow.status)).all()
    assert [tuple(row) for row in rows] == [(5, "dropped")]
    assert (dispatcher.sent, dispatcher.dropped_at_link, dispatcher.late_at_link) == (1, 1, 0)
    assert simulator.openings() == []


def test_the_dispatcher_counts_commands_the_link_has_not_settled(store):
    """What the agent checks after closing the link: a command without an outcome would stay `sent`
    in the log, so it is counted (and the agent says so) rather than left silent."""

    class SilentLink(DryRunTransport):
        def send(self, command):
            self.held = Future()
            return self.held

    planner = EjectionPlanner(BANK, lead_ms=1000.0)  # fires in 0.39 s: due at once
    now = time.monotonic_ns()
    planner.plan(BeltObject(object_id=4, cls="illegal", x_min_mm=1000.0, x_max_mm=1100.0, y_min_mm=50.0,
                            y_max_mm=90.0, seen_ns=now, speed_mm_s=250.0, capture_ns=now))  # fmt: skip
    link, log = SilentLink(), CommandLog(store)
    dispatcher = Dispatcher(planner, threading.Lock(), link, log, 0.005)
    dispatcher.release()
    assert dispatcher.sent == 1 and dispatcher.unsettled() == 1
    link.held.set_result(CommandOutcome.DROPPED)
    assert dispatcher.unsettled() == 0
    log.close()


def test_commands_spared_for_a_legal_neighbour_are_on_record_as_spared(store):
    clock = [0]
    planner = EjectionPlanner(BANK, clock=lambda: clock[0], spare_legal=True)
    for object_id, cls in ((8, "legal"), (9, "illegal")):  # the same stretch of belt, the same lanes
        planner.plan(BeltObject(object_id=object_id, cls=cls, x_min_mm=1000.0, x_max_mm=1100.0, y_min_mm=50.0,
                                y_max_mm=90.0, seen_ns=0, speed_mm_s=250.0, capture_ns=0))  # fmt: skip
    clock[0] = 300_000_000  # within the lead time of its fire time (388 ms)
    dispatcher, rows = _released_once(store, planner)
    assert rows == [(9, "spared")] and dispatcher.sent == 0


def test_the_watcher_follows_the_registry_and_reports_a_bad_model_once(
    store, live_model_file, tmp_path, caplog
):
    live = LivePath(NewestFrameSlot(), lambda: "ok", None, None, threading.Lock(), _segmenter)
    watcher = ModelWatcher(store, live, period_s=0.05)
    watcher.check()
    assert live.model is None  # nothing live yet: nothing to load
    promote(store, add_model(store, live_model_file))
    watcher.check()
    live._swap()
    assert live.model == live_model_file.resolve()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    promote(store, add_model(store, broken))
    watcher.check()
    watcher.check()  # unchanged on disk: not tried again
    live._swap()
    assert live.model == live_model_file.resolve() and len(live.stats.refused) == 1
    broken.write_bytes(live_model_file.read_bytes())  # fixed in place: tried again, and swapped in
    os.utime(broken, (time.time() + 5, time.time() + 5))
    watcher.check()
    live._swap()
    assert live.model == broken.resolve() and live.stats.swaps == 1
    # the live model's own file broken on disk: the model in memory stays, and the log says so
    broken.write_bytes(b"truncated")
    os.utime(broken, (time.time() + 10, time.time() + 10))
    with caplog.at_level(logging.ERROR, logger="edge.live.path"):
        watcher.check()
    live._swap()
    assert live.model == broken.resolve() and len(live.stats.refused) == 2
    assert (
        "the model loaded from it earlier stays live from memory; a restart would start without"
        in caplog.text
    )


def test_a_failing_worker_is_restarted_with_back_off_and_counted():
    calls = []

    def flaky(stop: threading.Event) -> None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RuntimeError("worker failed")

    restarts: Counter[str] = Counter()
    worker = supervised("flaky", flaky, threading.Event(), restarts)
    worker.start()
    worker.join(timeout=10)
    assert len(calls) == 3 and restarts == {"flaky": 2}
    assert calls[2] - calls[1] > calls[1] - calls[0] >= 0.1  # waits grow


@pytest.mark.parametrize(("drain_s", "sent", "dropped"), [(1.0, 1, 0), (0.0, 0, 1)])
def test_commands_already_planned_still_go_after_a_stop_while_the_drain_lasts(store, drain_s, sent, dropped):
    planner = EjectionPlanner(BANK, lead_ms=100.0)
    now = time.monotonic_ns()
    obj = BeltObject(object_id=3, cls="illegal", x_min_mm=1000.0, x_max_mm=1100.0, y_min_mm=50.0,
                     y_max_mm=90.0, seen_ns=now, speed_mm_s=250.0, capture_ns=now)  # fmt: skip
    assert planner.plan(obj) is not None  # fires in 0.39 s
    transport, log = DryRunTransport(), CommandLog(store)
    dispatcher = Dispatcher(planner, threading.Lock(), transport, log, 0.005, drain_s)
    stop = threading.Event()
    stop.set()  # the agent is stopping already
    dispatcher.run(stop)
    log.close()
    assert (len(transport.would_fire), dispatcher.dropped_at_stop) == (sent, dropped)
