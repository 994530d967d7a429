"""The calibration file (versions, validation, evidence), actuator geometry and the validation picture."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from calibration import ActuatorGeometry, BeltPlane, CalibrationError, draw_validation, load_calibration
from calibration.calibration_file import CalibrationFile, OffsetsSection, save_calibration

NOZZLES = ActuatorGeometry(
    ejector_line_x_mm=400.0, nozzle_count=12, nozzle_pitch_mm=50.0, first_nozzle_y_mm=25.0,
    valve_latency_ms=12.0, min_pulse_ms=5.0,
)  # fmt: skip


def test_versions_history_and_round_trip(tmp_path):
    path = tmp_path / "calibration.yaml"
    assert load_calibration(path).version == 0  # none yet
    first = save_calibration(CalibrationFile(actuators=NOZZLES), path, "actuators")
    offsets = OffsetsSection(
        c1_to_c2_mm=1730.2, c2_clock_offset_ms=36.5, clock_source="speed wobble",
        speed_correlation=0.999, object_correlation=0.46,
    )  # fmt: skip
    second = save_calibration(first.model_copy(update={"offsets": offsets}), path, "offsets")
    loaded = load_calibration(path)
    assert loaded == second
    assert loaded.version == 2 and [h.step for h in loaded.history] == ["actuators", "offsets"]
    assert loaded.actuators == NOZZLES and loaded.offsets.c1_to_c2_mm == pytest.approx(1730.2)
    text = path.read_text()
    assert text.startswith("# beltcam calibration, version 2") and "schema: beltcam-calibration/1" in text
    assert not list(tmp_path.glob(".calibration.yaml.*"))  # no temp file left behind


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("actuators: {nozzle_count: 0}", "actuators.ejector_line_x_mm: Field required"),
        ("belt: {speed_mm_s: -3}", "belt.speed_mm_s: Input should be greater than 0"),
        ("offsets_typo: 3", "offsets_typo: Extra inputs are not permitted"),
        ("schema: beltcam-calibration/9", "schema: Input should be 'beltcam-calibration/1'"),
        ("- a list", "a calibration file is a YAML mapping"),
        ("belt: [unclosed", "cannot read calibration file"),
        (
            "cameras: {c1: {belt_plane: {pixel_to_belt: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], method: board, "
            "fit_rms_mm: 0, holdout_rms_mm: 0, holdout_max_mm: 0, holdout_points: 0, undistorted: false}}}",
            "cameras.c1.belt_plane: Value error, holdout_points: a board plane is checked on at least 1",
        ),  # only the simulator's exact plane has no held-out point
    ],
)
def test_bad_files_are_refused_naming_file_and_field(tmp_path, content, reason):
    path = tmp_path / "calibration.yaml"
    path.write_text(content)
    with pytest.raises(CalibrationError) as error:
        load_calibration(path)
    assert str(error.value).startswith(f"{path}: ") and reason in str(error.value)
    assert "\n" not in str(error.value)


def test_nozzle_lanes_tile_the_belt():
    assert NOZZLES.lane(0) == (0.0, 50.0) and NOZZLES.lane(11) == (550.0, 600.0)
    assert all(NOZZLES.lane(k)[1] == NOZZLES.lane(k + 1)[0] for k in range(11))
    with pytest.raises(ValueError, match="wider than 10 m"):
        ActuatorGeometry(**{**NOZZLES.model_dump(), "nozzle_count": 500, "nozzle_pitch_mm": 30.0})


def test_validation_picture_draws_grid_lanes_and_ejector_line():
    plane = BeltPlane(
        np.array([[1.25, 0.0, 0.0], [0.0, 1.25, 0.0], [0.0, 0.0, 1.0]])
    )  # 640x480 -> 800x600 mm
    frame = np.full((480, 640, 3), 60, np.uint8)
    picture = draw_validation(frame, plane, NOZZLES)
    assert picture.shape == frame.shape and np.array_equal(frame, np.full_like(frame, 60))  # input untouched
    grid_column = picture[200:260, 40]  # x = 50 mm -> u = 40
    assert (grid_column.astype(int).sum(axis=1) > 400).all()
    ejector_column = picture[200:260, 320]  # x = 400 mm -> u = 320, drawn red
    assert (ejector_column[:, 0] > 200).all() and (ejector_column[:, 1] < 100).all()
    lane0, lane1 = picture[20, 100].astype(int), picture[60, 100].astype(int)  # y = 25 mm, 75 mm
    assert not np.array_equal(lane0, lane1)  # alternate lanes, alternate tints
    out_of_view = draw_validation(frame, plane, NOZZLES.model_copy(update={"ejector_line_x_mm": 2000.0}))
    assert (out_of_view[200:260, 320, 1] > 150).all()  # only the (yellow) grid line where it is not


def test_undefined_sections_read_back_as_empty(tmp_path):
    path = tmp_path / "calibration.yaml"
    path.write_text(yaml.safe_dump({"schema": "beltcam-calibration/1", "version": 3}))
    loaded = load_calibration(path)
    assert loaded.version == 3 and loaded.camera("c1").belt_plane is None and loaded.actuators is None


def test_the_check_picture_says_what_it_shows():
    """Origin, travel direction, lane numbers, mm labels and the caption, each where it belongs."""
    plane = BeltPlane(np.array([[1.25, 0.0, -100.0], [0.0, 1.25, -50.0], [0.0, 0.0, 1.0]]))  # origin: 80, 40
    frame = np.full((480, 640, 3), 60, np.uint8)
    bare = draw_validation(frame, plane)
    caption = "c1, calibration v5, first frame of recording 3 (c1)"
    picture = draw_validation(frame, plane, NOZZLES, caption=caption)
    around_origin = picture[40 - 7 : 40 + 8, 80 - 7 : 80 + 8]
    assert ((around_origin[..., 0] > 200) & (around_origin[..., 1] < 60)).any()  # the red origin ring
    white = (bare[390:425] == 255).all(axis=2)  # 85 % of the way down the view
    assert white.sum(axis=1).max() > 40 and white[:, :40].sum() < white[:, 40:200].sum()  # an arrow to +x
    captioned = picture[24:60, 8:400].astype(int) - draw_validation(frame, plane, NOZZLES)[24:60, 8:400]
    assert np.abs(captioned).sum() > 0  # the caption is written under "grid 50 mm"
    lanes_numbered = picture.astype(int) - draw_validation(frame, plane, None).astype(int)
    ejector_u = round((NOZZLES.ejector_line_x_mm + 100) / 1.25)
    numbers = lanes_numbered[:, ejector_u + 4 : ejector_u + 30]
    assert (np.abs(numbers).sum(axis=(1, 2)) > 0).sum() > 100  # lane numbers down the ejector line
