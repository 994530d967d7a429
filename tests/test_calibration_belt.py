"""Belt plane, belt speed and camera offsets recovered from the simulated belt's frames alone,
checked against the simulator's ground truth; bad inputs refused with a reason."""

from __future__ import annotations

import numpy as np
import pytest

from calibration import (
    BeltPlane,
    Board,
    CalibrationError,
    belt_speed,
    estimate_camera_offsets,
    fit_belt_plane,
    fit_belt_plane_from_board,
    fit_belt_plane_from_markers,
    measure_belt_motion,
)
from calibration.synthetic import place_board_on_belt, place_markers_on_belt
from edge.simulator.calibration_truth import local_plane, render_clip, simulated_pair, true_mean_speed

BELT_BOARD = Board.parse("charuco:7x5:50:38:DICT_4X4_50")


def test_board_on_the_simulated_belt_gives_its_true_scale_and_origin():
    c1, _ = simulated_pair(resolution=(640, 480), seed=3)
    truth = c1.view.pixel_to_belt_homography()
    frame = place_board_on_belt(c1.frame_at(0).image, truth, BELT_BOARD, origin_mm=(120.0, 90.0))
    fit = fit_belt_plane_from_board(frame[..., 1], BELT_BOARD, origin_mm=(120.0, 90.0))
    assert fit.plane.mm_per_px((320, 240)) == pytest.approx(c1.view.mm_per_px, rel=0.005)
    assert fit.holdout_rms_mm < 1.0 and len(fit.holdout_errors_mm) >= 4
    corners = np.array([[0, 0], [639, 0], [0, 479], [639, 479]], float)
    expected = (truth @ np.hstack([corners, np.ones((4, 1))]).T).T[:, :2]
    assert np.abs(fit.plane.to_belt(corners) - expected).max() < 3.0  # 2.4 px at 1.25 mm/px


def test_belt_plane_needs_charuco_and_the_board():
    c1, _ = simulated_pair(seed=3)
    gray = c1.frame_at(0).image[..., 1]
    with pytest.raises(CalibrationError, match="needs a ChArUco board"):
        fit_belt_plane_from_board(gray, Board.parse("chessboard:8x6:25"), (0, 0))
    with pytest.raises(CalibrationError, match="not found on the belt image"):
        fit_belt_plane_from_board(gray, BELT_BOARD, (0, 0))


def test_belt_plane_from_surveyed_aruco_markers():
    c1, _ = simulated_pair(resolution=(640, 480), seed=3)
    truth = c1.view.pixel_to_belt_homography()
    centres = {3: (100.0, 80.0), 7: (700.0, 90.0), 11: (120.0, 520.0), 15: (690.0, 510.0), 20: (400.0, 300.0),
               24: (250.0, 420.0), 30: (560.0, 250.0)}  # fmt: skip
    photo = place_markers_on_belt(c1.frame_at(0).image, truth, "DICT_4X4_50", centres, side_mm=60.0)
    fit = fit_belt_plane_from_markers(photo[..., 1], "DICT_4X4_50", centres)
    assert len(fit.holdout_errors_mm) >= 5 and fit.holdout_rms_mm < 1.0
    assert fit.plane.mm_per_px((320, 240)) == pytest.approx(c1.view.mm_per_px, rel=0.005)
    with pytest.raises(CalibrationError, match=r"only 0 of the surveyed markers.*not found: \[3, 7"):
        fit_belt_plane_from_markers(c1.frame_at(0).image[..., 1], "DICT_4X4_50", centres)


def test_belt_plane_from_surveyed_points_of_a_tilted_camera():
    truth = np.array([[0.9, 0.12, -40.0], [-0.05, 1.1, 12.0], [0.0004, 0.0002, 1.0]])
    rng = np.random.default_rng(0)
    pixels = rng.uniform([0, 0], [640, 480], size=(9, 2))
    belt = BeltPlane(truth).to_belt(pixels) + rng.normal(0, 0.3, size=(9, 2))
    fit = fit_belt_plane(pixels, belt)  # leave-one-out
    assert len(fit.holdout_errors_mm) == 9 and fit.holdout_rms_mm < 1.5
    assert np.abs(fit.plane.to_belt(pixels) - BeltPlane(truth).to_belt(pixels)).max() < 1.0
    holdout = np.zeros(9, bool)
    holdout[[2, 7]] = True
    assert len(fit_belt_plane(pixels, belt, holdout).holdout_errors_mm) == 2
    with pytest.raises(CalibrationError, match="at least 5 points"):
        fit_belt_plane(pixels[:4], belt[:4])
    with pytest.raises(CalibrationError, match="two matching lists"):
        fit_belt_plane(pixels, belt[:8])


@pytest.mark.parametrize("speed", [150.0, 250.0, 500.0])
def test_belt_speed_within_two_percent_of_the_truth(speed):
    c1, _ = simulated_pair(seed=4, belt_speed_mm_s=speed)
    frames, times = render_clip(c1, 40)
    measured = belt_speed(measure_belt_motion(frames, times, local_plane(c1)))
    truth = true_mean_speed(c1, 40)
    assert measured.mean_mm_s == pytest.approx(truth, rel=0.02)
    assert measured.spread_mm_s < 0.1 * truth  # a 2 % wobble, not noise
    assert abs(measured.cross_mm_s) < 0.01 * truth


def test_fast_belt_no_frame_pair_goes_astray():
    """40 px between frames over a repeating belt texture: every frame pair must still be right."""
    c1, _ = simulated_pair(resolution=(640, 480), seed=1, belt_speed_mm_s=500.0)
    frames, times = render_clip(c1, 30)
    motion = measure_belt_motion(frames, times, local_plane(c1))
    true_travel = np.array([c1.world.belt_offset_mm(c1.time_of(i)) for i in range(30)])
    assert np.abs(np.diff(motion.travel_mm) - np.diff(true_travel)).max() < 0.5  # mm per frame pair


def test_belt_speed_refuses_bad_clips():
    c1, _ = simulated_pair(seed=4)
    frames, times = render_clip(c1, 6)
    plane = local_plane(c1)
    with pytest.raises(CalibrationError, match="does not move"):
        belt_speed(measure_belt_motion([frames[0]] * 6, times, plane))
    mirrored = BeltPlane(np.diag([-1.0, 1.0, 1.0]) @ plane.pixel_to_belt)
    with pytest.raises(CalibrationError, match="towards -x"):
        belt_speed(measure_belt_motion(frames, times, mirrored))
    with pytest.raises(CalibrationError, match="frame 3 is not later than frame 2"):
        measure_belt_motion(frames, np.r_[times[:3], times[2], times[4:]], plane, "clip x")
    with pytest.raises(CalibrationError, match="frame 2 is 160x120"):
        measure_belt_motion([*frames[:2], frames[2][::2, ::2], *frames[3:]], times, plane)


def _offsets(c1, c2, seconds: float, **kwargs):
    frames1, times1 = render_clip(c1, int(seconds * c1.fps))
    frames2, times2 = render_clip(c2, int(seconds * c2.fps))
    plane1, plane2 = local_plane(c1), local_plane(c2)
    return estimate_camera_offsets(
        frames1, measure_belt_motion(frames1, times1, plane1), plane1,
        frames2, measure_belt_motion(frames2, times2, plane2), plane2, **kwargs,
    )  # fmt: skip


def test_camera_distance_and_clock_offset_from_the_object_stream():
    # distances that are not multiples of 500 mm: the simulated belts' splices repeat every 500 mm in
    # both cameras' textures, which would make any such distance look better than it is
    c1, c2 = simulated_pair(seed=0, c1_to_c2_mm=1730.0, c2_clock_offset_ms=37.0)
    found = _offsets(c1, c2, 24)
    assert found.clock_source == "speed wobble"
    assert found.c1_to_c2_mm == pytest.approx(1730.0, abs=10.0)
    assert found.c2_clock_offset_ms == pytest.approx(37.0, abs=10.0)
    # the sorter removed about half the objects between the cameras, yet the stream still matches
    assert 0.3 < found.object_correlation < 0.99


def test_frames_the_recorder_lost_are_bridged_not_measured():
    """A busy recorder drops frames in bursts: 2 s of C1 and 2.5 s of C2 gone, more belt than either
    camera sees. Flow across such a gap would be nonsense; the odometer bridges it and still lines the
    two object streams up."""
    c1, c2 = simulated_pair(seed=6, c1_to_c2_mm=1730.0, c2_clock_offset_ms=30.0)
    clips = {}
    for camera, lost in ((c1, [*range(50, 70), *range(150, 158)]), (c2, [*range(30, 32), *range(120, 145)])):
        frames, times = render_clip(camera, 240)
        kept = np.setdiff1d(np.arange(240), lost)
        clips[camera.camera_id] = [frames[i] for i in kept], times[kept], local_plane(camera)
    motions = {camera: measure_belt_motion(*clip) for camera, clip in clips.items()}
    _, times, _ = clips["c1"]
    truth = np.array([c1.world.belt_offset_mm(t - times[0]) for t in times])
    assert np.abs(motions["c1"].travel_mm - truth).max() < 3.0  # mm, after 4.5 m of belt
    assert len(motions["c1"].pair_speeds_mm_s) == len(times) - 1 - 2  # the two gaps are not speeds
    assert belt_speed(motions["c1"]).bridged_gaps == 2
    found = estimate_camera_offsets(
        clips["c1"][0], motions["c1"], clips["c1"][2], clips["c2"][0], motions["c2"], clips["c2"][2]
    )
    assert found.clock_source == "speed wobble"
    assert found.c1_to_c2_mm == pytest.approx(1730.0, abs=10.0)
    assert found.c2_clock_offset_ms == pytest.approx(30.0, abs=10.0)


def test_steady_belt_needs_the_measured_distance():
    c1, c2 = simulated_pair(seed=2, c1_to_c2_mm=1640.0, c2_clock_offset_ms=-80.0, speed_jitter=0.0)
    with pytest.raises(CalibrationError, match=r"too steady.*measure the C1-to-C2 distance"):
        _offsets(c1, c2, 16)
    found = _offsets(c1, c2, 16, measured_distance_mm=1640.0)
    assert found.clock_source == "measured distance"
    assert found.c2_clock_offset_ms == pytest.approx(-80.0, abs=15.0)


def test_clips_of_different_belts_are_refused():
    c1, _ = simulated_pair(seed=0, c1_to_c2_mm=1500.0)
    _, other = simulated_pair(seed=9, c1_to_c2_mm=1500.0)
    said = r"do not show the same objects .*each clip covers about \d+\.\d m of belt"
    with pytest.raises(CalibrationError, match=said):
        _offsets(c1, other, 16)
