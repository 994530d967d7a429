import math
from dataclasses import replace

import numpy as np
import pytest

from edge.config import CameraConfig, SimulatedFault, SimulatorConfig
from edge.simulator.belts import belt_settings
from edge.simulator.camera import SimulatedCamera
from edge.simulator.judge import judge_openings, outline_meets_rectangle
from edge.simulator.world import SHAPES, SHARED_PALETTE, BeltWorld, camera_view
from edge.sources.base import SourceError, SourceStalled
from firmware_bridge.planner import NozzleBank
from firmware_bridge.valve_device import ValveOpening

FPS = 10.0


def cameras(sim: SimulatorConfig, size=(160, 120)):
    c1 = SimulatedCamera(CameraConfig(id="c1", kind="simulated", resolution=size, fps=FPS), sim, epoch_ns=0)
    c2 = SimulatedCamera(CameraConfig(id="c2", kind="simulated", resolution=size, fps=FPS), sim, epoch_ns=0)
    return c1, c2


def test_same_seed_same_pixels_other_seed_other_pixels():
    a, _ = cameras(SimulatorConfig(seed=5))
    b, _ = cameras(SimulatorConfig(seed=5))
    c, _ = cameras(SimulatorConfig(seed=6))
    assert np.array_equal(a.frame_at(17).image, b.frame_at(17).image)
    assert not np.array_equal(a.frame_at(17).image, c.frame_at(17).image)


def test_reading_in_order_equals_rendering_directly():
    sim = SimulatorConfig(seed=2, realtime=False)
    c1, _ = cameras(sim)
    c1.open()
    frames = [c1.read(timeout_s=1.0) for _ in range(4)]
    assert [f.seq for f in frames] == [0, 1, 2, 3]
    assert np.array_equal(frames[3].image, c1.frame_at(3).image)
    assert frames[1].capture_ns - frames[0].capture_ns == round(1e9 / FPS)


def test_belt_offset_is_the_integral_of_speed():
    world = BeltWorld(SimulatorConfig(seed=3, speed_jitter=0.1))
    t = np.linspace(0, 20, 20001)
    speeds = np.array([world.speed_mm_s(x) for x in t])
    integral = np.sum((speeds[1:] + speeds[:-1]) / 2 * np.diff(t))
    assert world.belt_offset_mm(20.0) == pytest.approx(integral, rel=1e-6)
    assert speeds.min() >= 250 * 0.9 - 1e-9 and speeds.max() <= 250 * 1.1 + 1e-9
    assert speeds.std() > 1.0  # it really wobbles


def test_objects_ride_the_belt_between_frames():
    sim = SimulatorConfig(seed=4, objects_per_m=10)
    c1, _ = cameras(sim)
    world = c1.world
    a, b = c1.frame_at(30), c1.frame_at(31)
    moved = world.belt_offset_mm(3.1) - world.belt_offset_mm(3.0)
    common = {o.object_id for o in a.truth.objects} & {o.object_id for o in b.truth.objects}
    assert common, "consecutive frames should share objects"
    later = {o.object_id: o for o in b.truth.objects}
    earlier = {o.object_id: o for o in a.truth.objects}
    for object_id in common:
        assert later[object_id].x_mm - earlier[object_id].x_mm == pytest.approx(moved)
        assert later[object_id].y_mm == earlier[object_id].y_mm


def test_label_map_agrees_with_object_classes():
    sim = SimulatorConfig(seed=8, objects_per_m=12)
    c1, c2 = cameras(sim)
    for seq in range(0, 60, 7):
        for camera in (c1, c2):
            truth = camera.frame_at(seq).truth
            classes = {o.cls for o in truth.objects}
            labels = set(np.unique(truth.label_map)) - {0}
            assert labels <= {1 if "illegal" in classes else -1, 2 if "legal" in classes else -1}


def test_c2_shows_the_same_flow_without_removed_illegal_objects():
    sim = SimulatorConfig(seed=9, objects_per_m=10, missed_illegal_rate=0.0, c1_to_c2_mm=600)
    c1, c2 = cameras(sim)
    seen_c1, seen_c2 = {}, {}
    for seq in range(0, 200, 2):
        seen_c1.update({o.object_id: o.cls for o in c1.frame_at(seq).truth.objects})
        seen_c2.update({o.object_id: o.cls for o in c2.frame_at(seq).truth.objects})
    assert "illegal" in seen_c1.values() and "legal" in seen_c1.values()
    assert set(seen_c2.values()) == {"legal"}
    legal_c2 = set(seen_c2)
    assert len(legal_c2 & set(seen_c1)) >= 0.7 * len(legal_c2)  # the same objects, downstream


def test_missed_illegal_objects_reach_c2_at_the_configured_rate():
    world = BeltWorld(SimulatorConfig(seed=1, objects_per_m=20, missed_illegal_rate=0.25))
    illegal = [o for o in world.objects_between(0, 200_000) if o.cls == "illegal"]
    rate = np.mean([o.missed_by_sorter for o in illegal])
    assert len(illegal) > 500
    assert rate == pytest.approx(0.25, abs=0.05)


def test_shapes_do_not_give_the_class_away():
    world = BeltWorld(SimulatorConfig(seed=1, objects_per_m=20))
    objects = world.objects_between(0, 100_000)
    for cls in ("illegal", "legal"):
        shapes = [o.shape for o in objects if o.cls == cls]
        share = {s: shapes.count(s) / len(shapes) for s in SHAPES}
        assert all(0.15 < v < 0.35 for v in share.values()), share


def test_c1_and_c2_belts_look_different():
    sim = SimulatorConfig(seed=2, objects_per_m=0)
    c1, c2 = cameras(sim)
    mean1 = c1.frame_at(0).image.reshape(-1, 3).mean(axis=0)
    mean2 = c2.frame_at(0).image.reshape(-1, 3).mean(axis=0)
    assert np.abs(mean1 - mean2).max() > 8  # white balance and belt colour differ
    assert mean2[0] > mean2[2] and mean1[2] > mean1[0]  # warm C2, cool C1


def test_alike_cameras_see_the_belt_in_the_same_colours():
    def balance(alike: bool) -> float:
        c1, c2 = cameras(SimulatorConfig(seed=2, objects_per_m=0, lighting_drift=0, cameras_alike=alike))
        mean1 = c1.frame_at(0).image.reshape(-1, 3).mean(axis=0)
        mean2 = c2.frame_at(0).image.reshape(-1, 3).mean(axis=0)
        assert not np.array_equal(c1.frame_at(0).image, c2.frame_at(0).image)  # each its stretch of belt
        return float(np.abs(mean1 / mean1.sum() - mean2 / mean2.sum()).max())

    assert balance(alike=True) < 0.005 < 0.02 < balance(alike=False)


def test_lighting_drifts_slowly():
    sim = SimulatorConfig(seed=2, objects_per_m=0, noise_sigma=0, lighting_drift=0.2)
    c1, _ = cameras(sim)
    means = [c1.frame_at(seq).image.mean() for seq in (0, 1, 250)]
    assert abs(means[0] - means[1]) < 1.0
    assert abs(means[0] - means[2]) > 2.0


def test_a_view_maps_pixels_to_belt_mm():
    sim = SimulatorConfig(belt_width_mm=600, c1_to_c2_mm=3000)
    view = camera_view("c2", (640, 480), sim)
    assert view.mm_per_px == pytest.approx(1.25)
    h = view.pixel_to_belt_homography()
    assert h @ np.array([0, 480, 1]) == pytest.approx([3000, 600, 1])


def test_scripted_error_and_stall_faults():
    sim = SimulatorConfig(
        seed=1,
        realtime=False,
        faults=[
            SimulatedFault(camera="c2", at_s=0.2, kind="error", duration_s=0.3),
            SimulatedFault(camera="c2", at_s=1.0, kind="stall", duration_s=0.5),
        ],
    )
    _, c2 = cameras(sim)
    c2.open()
    seqs = [c2.read(1.0).seq for _ in range(2)]
    assert seqs == [0, 1]
    with pytest.raises(SourceError, match="connection lost"):
        c2.read(1.0)
    with pytest.raises(SourceError, match="not open"):
        c2.read(1.0)
    with pytest.raises(SourceError, match="device not found"):
        c2.open()  # still inside the fault window
    while True:
        try:
            c2.open()
            break
        except SourceError:
            pass  # in simulated time, each attempt lets one frame period pass
    frames = []
    with pytest.raises(SourceStalled):
        while True:
            frames.append(c2.read(1.0).seq)
    assert frames and frames[-1] < 10
    assert c2.read(1.0).seq > 15


def _shares(values: list[str], names: tuple[str, ...]) -> np.ndarray:
    return np.array([values.count(name) / len(values) for name in names])


def test_on_a_belt_told_apart_by_shape_both_classes_share_one_palette_and_differ_in_shape_and_surface():
    world = BeltWorld(SimulatorConfig(seed=1, objects_per_m=20, classes_differ_by="shape"))
    objects = world.objects_between(0, 100_000)
    by_class = {cls: [o for o in objects if o.cls == cls] for cls in ("illegal", "legal")}
    assert all(len(group) > 400 for group in by_class.values())
    palettes = {cls: _shares([o.material for o in group], SHARED_PALETTE) for cls, group in by_class.items()}
    assert all(sum(shares) == pytest.approx(1.0) for shares in palettes.values())  # nothing else
    assert np.abs(palettes["illegal"] - palettes["legal"]).max() < 0.06  # colour says nothing
    shapes = {cls: _shares([o.shape for o in group], SHAPES) for cls, group in by_class.items()}
    tray, bottle = SHAPES.index("tray"), SHAPES.index("bottle")
    assert shapes["illegal"][tray] > 0.35 and shapes["legal"][tray] < 0.15
    assert shapes["legal"][bottle] > 0.35 and shapes["illegal"][bottle] < 0.15
    assert all(o.opacity_scale < 1 and o.gloss_scale < 1 for o in by_class["illegal"])  # thin matte PVC
    assert all(o.opacity_scale > 1 and o.gloss_scale > 1 for o in by_class["legal"])  # thick glossy PET
    ridged = {cls: np.mean([o.ridges > 0 for o in group]) for cls, group in by_class.items()}
    assert ridged["legal"] > 0.45 and ridged["illegal"] < 0.2
    labelled = {cls: np.mean([o.sticker is not None for o in group]) for cls, group in by_class.items()}
    assert labelled["legal"] > 0.45 and labelled["illegal"] < 0.2  # bottles carry labels, trays rarely


def _touching_share(world: BeltWorld) -> float:
    objects = sorted(world.objects_between(0, 100_000), key=lambda o: o.anchor_mm)
    touching = 0
    for index, obj in enumerate(objects):
        neighbours = objects[max(index - 3, 0) : index] + objects[index + 1 : index + 4]
        touching += any(
            math.hypot(obj.anchor_mm - other.anchor_mm, obj.y_mm - other.y_mm)
            < 0.9 * (obj.half_extent_mm + other.half_extent_mm)
            for other in neighbours
        )
    return touching / len(objects)


def test_a_crowded_belt_drops_more_objects_against_their_neighbours():
    loose = _touching_share(BeltWorld(SimulatorConfig(seed=1, objects_per_m=4)))
    crowded = _touching_share(BeltWorld(SimulatorConfig(seed=1, objects_per_m=4, touching_fraction=0.6)))
    assert crowded > 0.7 and crowded > loose + 0.25


def test_flickering_lamps_change_brightness_frame_to_frame_and_band_the_rows():
    def frames(flicker: float) -> list[np.ndarray]:
        sim = SimulatorConfig(seed=2, objects_per_m=0, noise_sigma=0, lighting_drift=0, lamp_flicker=flicker)
        c1, _ = cameras(sim)
        return [c1.frame_at(seq).image.astype(np.float32) for seq in range(6)]

    steady, flickering = frames(0.0), frames(0.15)
    row_ratios = [f.mean(axis=(1, 2)) / s.mean(axis=(1, 2)) for f, s in zip(flickering, steady, strict=True)]
    frame_gains = [ratio.mean() for ratio in row_ratios]
    assert np.abs(np.diff([s.mean() for s in steady])).max() < 1.0  # steady lamps: the belt moving only
    assert np.std(frame_gains) > 0.03  # each frame its own brightness
    assert min(np.std(ratio) for ratio in row_ratios) > 0.02  # bands across the rows in every frame


def test_named_belts_and_an_unknown_one():
    hard = SimulatorConfig(**belt_settings("hard"))
    assert hard.classes_differ_by == "shape" and hard.touching_fraction > 0.5 and hard.lamp_flicker > 0
    assert SimulatorConfig(**belt_settings("standard")) == SimulatorConfig()
    names = "standard, crowded, hard"
    with pytest.raises(ValueError, match=f"unknown simulated belt 'muddy': choose one of {names}"):
        belt_settings("muddy")


def test_a_starter_model_renders_the_sites_own_kind_of_belt(make_config, tmp_path, monkeypatch):
    """A hard site's starter model must learn classes told apart by shape, not by colours it never sees."""
    from edge.nightly import starter

    rendered: list[SimulatorConfig] = []

    def render_and_stop(folder, **kwargs):
        rendered.append(SimulatorConfig(**kwargs["belt"]))  # what write_simulated_manifest renders
        raise RuntimeError("rendered")  # no training needed to know what was rendered

    monkeypatch.setattr(starter, "write_simulated_manifest", render_and_stop)
    site = {**belt_settings("hard"), "belt_speed_mm_s": 400, "cameras_alike": True}
    config = make_config({"simulator": site})
    with pytest.raises(RuntimeError, match="rendered"):
        starter.starter_model(config, tmp_path / "starter", progress=False)
    assert rendered[0].classes_differ_by == "shape"
    assert rendered[0].touching_fraction == config.simulator.touching_fraction
    assert rendered[0].lamp_flicker == config.simulator.lamp_flicker and rendered[0].cameras_alike
    assert rendered[0].belt_speed_mm_s == SimulatorConfig().belt_speed_mm_s  # where it runs is not its look


def test_a_starter_model_takes_a_variant_and_the_footage_asked_for(make_config, tmp_path, monkeypatch):
    """The end-to-end benchmark trains the starter's recipe on a hard belt's footage with a variant."""
    import trainer.train
    from edge.nightly import starter

    rendered: dict = {}
    monkeypatch.setattr(
        starter, "write_simulated_manifest", lambda folder, **kwargs: rendered.update(kwargs) or folder
    )
    monkeypatch.setattr(trainer.train, "train", lambda manifest, settings, run_dir, progress: "trained")
    config = make_config({"simulator": belt_settings("hard")})
    settings, result = starter.starter_model(config, tmp_path, "ours_nopcls_present", sequences=64, epochs=6)
    assert result == "trained" and rendered["sequences"] == 64 and rendered["frames"] == 16
    assert settings.method == "ours" and settings.epochs == 6 and settings.image_size == 128
    assert not settings.puzzle_classification and settings.spatial_classes == "present"
    default, _ = starter.starter_model(config, tmp_path, progress=False)
    assert rendered["sequences"] == starter.STARTER_SEQUENCES == 4 and default.epochs == 4
    assert default.method == "ours" and default.puzzle_classification and default.spatial_classes == "all"


def test_the_judge_counts_air_that_meets_an_objects_outline_not_its_box(monkeypatch):
    bar = np.array([[-50.0, -43.0], [43.0, 50.0], [50.0, 43.0], [-43.0, -50.0]])  # 45 degrees, 10 mm thick
    assert outline_meets_rectangle(bar, -5.0, 5.0, -5.0, 5.0)
    assert not outline_meets_rectangle(bar, 25.0, 45.0, -45.0, -25.0)  # the empty corner of its box
    notch = np.array([[0.0, 0.0], [30.0, 0.0], [30.0, 10.0], [10.0, 10.0], [10.0, 30.0], [0.0, 30.0]])
    assert not outline_meets_rectangle(notch, 15.0, 25.0, 15.0, 25.0)
    assert outline_meets_rectangle(notch, 0.0, 5.0, 25.0, 28.0)
    world = BeltWorld(SimulatorConfig(seed=0, realtime=False, speed_jitter=0.0))
    obj = replace(world.objects_between(0.0, 5_000.0)[0], outline_mm=bar, anchor_mm=1_000.0, y_mm=205.0)
    monkeypatch.setattr(
        world, "objects_between", lambda low, high: [obj] if low <= obj.anchor_mm < high else []
    )
    bank = NozzleBank(line_x_mm=500.0, nozzle_count=24, pitch_mm=10.0, first_nozzle_y_mm=5.0,
                      valve_latency_ms=0.0, min_pulse_ms=1.0)  # fmt: skip
    centre_s = (500.0 + obj.anchor_mm) / world.config.belt_speed_mm_s  # its centre crosses the line

    def verdict(channel: int, around_s: float) -> str:
        opening = ValveOpening(channel, round((around_s - 0.02) * 1e9), round((around_s + 0.02) * 1e9), 1, 1)
        (judgement,) = judge_openings([opening], bank, world, 0)
        return judgement.verdict

    # lane 20 (200-210 mm) crosses the bar's middle; lane 23 (230-240 mm) is inside its box (155-255 mm)
    # but meets the bar only 30 mm ahead of its centre, 120 ms earlier at 250 mm/s
    assert verdict(20, centre_s) == obj.cls
    assert verdict(23, centre_s) == "nothing"
    assert verdict(23, centre_s - 30.0 / world.config.belt_speed_mm_s) == obj.cls
