"""`beltcam calibrate` end to end on the simulated belt: a technician's whole calibration, through
the CLI, against the simulator's ground truth; bad input ends in one line, nothing half-saved."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from calibration import load_calibration
from calibration.synthetic import place_markers_on_belt
from edge.cli.main import main
from edge.nightly.manifests import build_manifest
from edge.simulator.calibration_truth import local_plane, simulated_pair
from edge.store.frame_store import FrameStore
from edge.store.models import Calibration, Frame, Recording

BOARD = "charuco:6x4:60:45:DICT_4X4_50"
SIMULATOR = {"seed": 6, "c1_to_c2_mm": 1730, "c2_clock_offset_ms": 30, "realtime": False}


@pytest.fixture
def site(write_config, tmp_path):
    cameras = [{"id": c, "kind": "simulated", "resolution": [320, 240], "fps": 10} for c in ("c1", "c2")]
    return write_config(
        {"cameras": cameras, "simulator": SIMULATOR, "calibration_file": "calibration.yaml"}
    ), tmp_path


def test_full_calibration_through_the_cli(site, write_config, capsys):
    """Only the CLI, as on a real belt: print the board, lay it on the (simulated) belt, photograph
    it with each camera, fit the planes; take it away, record, then speed, offsets, actuators, show."""
    config, folder = site
    c1, c2 = simulated_pair(**{k: v for k, v in SIMULATOR.items() if k != "realtime"})
    assert _calibrate(config, "board", "--board", BOARD, "--out", str(folder / "board.pdf")) == 0
    assert (folder / "board.pdf").read_bytes().startswith(b"%PDF")
    cameras = [{"id": c, "kind": "simulated", "resolution": [320, 240], "fps": 10} for c in ("c1", "c2")]
    with_board = write_config(
        {"cameras": cameras, "calibration_file": "calibration.yaml",
         "simulator": {**SIMULATOR, "board": {"board": BOARD, "origin_mm": [100, 120]}}},
        name="board_on_belt.yaml",
    )  # fmt: skip
    held = {"board": BOARD, "held": True, "hold_s": 0.1, "cameras": ["c1"]}
    site = {"cameras": cameras, "calibration_file": "calibration.yaml"}
    held_up = write_config({**site, "simulator": {**SIMULATOR, "board": held}}, name="board_held_up.yaml")
    lens = ["--camera", "c1", "--board", BOARD, "--capture", "12", "--every", "0"]
    assert _calibrate(held_up, "intrinsics", *lens) == 0  # the board held at 12 tilts before C1's lens
    for camera in ("c1", "c2"):
        photos = folder / f"photos_{camera}"
        assert _calibrate(with_board, "capture", "--camera", camera, "--out", str(photos)) == 0
        (photo,) = photos.iterdir()
        where = ["--image", str(photo), "--board", BOARD, "--origin", "100,120"]
        assert _calibrate(config, "plane", "--camera", camera, *where) == 0
    shown = capsys.readouterr().out
    assert "held-out RMS" in shown and f"looking for the board {BOARD}" in shown

    assert main(["record", "--config", str(config), "--duration", "10"]) == 0  # 7 s was ambiguous under load
    assert _calibrate(config, "speed", "--camera", "c1") == 0
    assert _calibrate(config, "offsets") == 0
    assert _calibrate(
        config, "actuators", "--ejector-x", "1200", "--nozzles", "24", "--pitch", "25", "--first-y", "12.5",
        "--latency-ms", "12", "--min-pulse-ms", "5",
    ) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "C2 is" in out and "saved" in out
    assert "across the belt" in out  # the cross-belt speed docs/calibration.md promises

    saved = load_calibration(folder / "calibration.yaml")
    assert saved.version == 6
    fitted = np.array(saved.camera("c1").intrinsics.camera_matrix)
    assert fitted[0, 0] == pytest.approx(320, rel=0.03) and fitted[1, 1] == pytest.approx(320, rel=0.03)
    # the simulated lens (`simulated_lens`): f = 320 px, centre (160, 120); 12 poses at 320x240 pin the
    # centre down to a few pixels
    assert fitted[0, 2] == pytest.approx(160, abs=8) and fitted[1, 2] == pytest.approx(120, abs=8)
    assert saved.camera("c1").belt_plane.holdout_rms_mm < 2.0
    scale = saved.camera("c2").belt_plane.to_plane().mm_per_px((160, 120))
    assert scale == pytest.approx(c2.view.mm_per_px, rel=0.01)
    truth = (c1.world.belt_offset_mm(12.0) - c1.world.belt_offset_mm(0.0)) / 12.0
    assert saved.belt.speed_mm_s == pytest.approx(truth, rel=0.02)
    assert saved.offsets.c1_to_c2_mm == pytest.approx(1730.0, abs=20.0)
    assert saved.offsets.c2_clock_offset_ms == pytest.approx(30.0, abs=15.0)
    assert saved.inputs["belt_plane"][0].sha256 != "store"  # the photo's hash is kept

    assert _calibrate(config, "show", "--out", str(folder / "check")) == 0
    out = capsys.readouterr().out
    assert "version 6" in out and "c1_to_c2_mm" in out
    picture = cv2.imread(str(folder / "check" / "calibration_check_c1.png"))
    assert picture.shape == (240, 320, 3)
    store = FrameStore(folder / "data", f"sqlite:///{folder / 'data' / 'beltcam.db'}")
    with store.session() as session:
        versions = session.scalars(select(Calibration.version).order_by(Calibration.id)).all()
    assert versions == ["1", "2", "3", "4", "5", "6"]
    # belt-flow training now takes the belt's motion from this calibration
    manifest, _ = build_manifest(store, folder / "manifest.json", folder / "calibration.yaml")
    store.close()
    c1_sequence = next(s for s in manifest.sequences if s.camera == "c1")
    vx, vy = c1_sequence.belt_velocity_px_s
    assert vx == pytest.approx(saved.belt.speed_mm_s / c1.view.mm_per_px, rel=0.01) and abs(vy) < 1.0


PLANE = ["plane", "--camera", "c1", "--image"]
NO_NOZZLES = ["--ejector-x", "100", "--nozzles", "0", "--pitch", "25", "--first-y", "0", "--latency-ms", "1"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ([*PLANE, "missing.png", "--board", BOARD], "missing.png: file not found"),
        ([*PLANE, "{blank}", "--board", BOARD], "not found on the belt image"),
        ([*PLANE, "{blank}", "--board", "chessboard:8x6:25"], "needs a ChArUco"),
        ([*PLANE, "{blank}"], "--image needs --board"),
        (["plane", "--camera", "c1", "--points", "{csv}"], "bad.csv: line 3: expected numbers"),
        (["speed", "--camera", "c1"], "no c1 recording in the store"),
        (["speed", "--camera", "c1", "--clip", "{video}"], "not_a_video.mp4: cannot open as a video"),
        (["offsets"], "c1 has no belt plane yet"),
        (["intrinsics", "--camera", "c1", "--board", "chessboard:8x6", "{folder}"], "expected chessboard"),
        (["intrinsics", "--camera", "c1", "--board", "chessboard:8x6:25", "{folder}"], "only 0 usable"),
        (
            ["actuators", *NO_NOZZLES, "--min-pulse-ms", "1"],
            "argument --nozzles: 0 is out of range: must be > 0",
        ),
        (["show"], "no calibration yet"),
    ],
)
def test_bad_input_is_one_line_and_saves_nothing(site, capsys, args, reason):
    config, folder = site
    blank = folder / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 90, np.uint8))
    (folder / "boards").mkdir()
    cv2.imwrite(str(folder / "boards" / "a.png"), np.full((240, 320, 3), 90, np.uint8))
    (folder / "not_a_video.mp4").write_bytes(b"nonsense")
    (folder / "bad.csv").write_text("u,v,x_mm,y_mm\n1,2,3,4\n1,2,three,4\n")
    places = {
        "{csv}": folder / "bad.csv",
        "{blank}": blank,
        "{folder}": folder / "boards",
        "{video}": folder / "not_a_video.mp4",
    }
    args = [str(places.get(a, a)) for a in args]
    version = 0
    if args[0] == "speed":  # needs a belt plane first: from surveyed points this time
        assert _calibrate(config, "plane", "--camera", "c1", "--points", str(_points(folder))) == 0
        version = load_calibration(folder / "calibration.yaml").version
    assert _calibrate(config, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # FFmpeg may say something first
    assert err.startswith("beltcam: error: ") and reason in err
    assert load_calibration(folder / "calibration.yaml").version == version


def _calibrate(config, step: str, *args: str) -> int:
    return main(["calibrate", step, "--config", str(config), *args])


def _points(folder):
    """Six surveyed points of a top-down camera at 2.5 mm per pixel, one of them held out."""
    path = folder / "points.csv"
    rows = ["u,v,x_mm,y_mm,holdout"]
    for index, (u, v) in enumerate([(10, 10), (300, 12), (12, 230), (310, 228), (160, 120), (80, 200)]):
        rows.append(f"{u},{v},{u * 2.5},{v * 2.5},{int(index == 5)}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_recording_with_lost_frames_still_gives_the_belt_speed(write_config, capsys):
    """C1 stalls for 2 s mid-recording (a scripted fault): its recording has a gap, which the speed
    step bridges and reports instead of measuring flow across it."""
    stall = {"camera": "c1", "kind": "stall", "at_s": 1.0, "duration_s": 2.0}
    cameras = [{"id": c, "kind": "simulated", "resolution": [320, 240], "fps": 10} for c in ("c1", "c2")]
    site = {"cameras": cameras, "calibration_file": "calibration.yaml"}
    config = write_config({**site, "simulator": {**SIMULATOR, "faults": [stall]}})
    folder = config.parent
    c1, _ = simulated_pair(**{k: v for k, v in SIMULATOR.items() if k != "realtime"})
    assert main(["record", "--config", str(config), "--duration", "4"]) == 0
    store = FrameStore(folder / "data", f"sqlite:///{folder / 'data' / 'beltcam.db'}")
    with store.session() as session:
        times = session.scalars(
            select(Frame.capture_ns).join(Recording)
            .where(Recording.camera == "c1", Frame.missing.is_(False)).order_by(Frame.seq)
        ).all()  # fmt: skip
    store.close()
    assert max(np.diff(times)) >= 2e9  # the stall left a gap in the recording
    assert _calibrate(config, "plane", "--camera", "c1", "--points", str(_points(folder))) == 0
    assert _calibrate(config, "speed", "--camera", "c1") == 0
    assert "gaps of lost frames bridged" in capsys.readouterr().out
    belt = load_calibration(folder / "calibration.yaml").belt
    assert belt.bridged_gaps >= 1
    seconds = (times[-1] - times[0]) / 1e9
    truth = (c1.world.belt_offset_mm(seconds) - c1.world.belt_offset_mm(0.0)) / seconds
    assert belt.speed_mm_s == pytest.approx(truth, rel=0.02)


def test_markers_plane_and_live_capture(site, capsys):
    config, folder = site
    c1, _ = simulated_pair(**{k: v for k, v in SIMULATOR.items() if k != "realtime"})
    centres = {1: (80.0, 80.0), 2: (700.0, 80.0), 3: (80.0, 520.0), 4: (700.0, 520.0), 5: (400.0, 300.0),
               6: (250.0, 200.0)}  # fmt: skip
    photo = place_markers_on_belt(
        c1.frame_at(0).image, local_plane(c1).pixel_to_belt, "DICT_4X4_50", centres, 90.0
    )
    cv2.imwrite(str(folder / "markers.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    (folder / "markers.csv").write_text(
        "id,x_mm,y_mm\n" + "".join(f"{i},{x},{y}\n" for i, (x, y) in centres.items())
    )
    markers = ["--image", str(folder / "markers.png"), "--markers", str(folder / "markers.csv")]
    assert _calibrate(config, "plane", "--camera", "c1", *markers) == 0
    saved = load_calibration(folder / "calibration.yaml")
    assert saved.camera("c1").belt_plane.method == "markers"
    assert saved.camera("c1").belt_plane.to_plane().mm_per_px((160, 120)) == pytest.approx(2.5, rel=0.01)

    # the simulated belt shows no board: the captured images are kept and listed as unusable
    capture = ["--camera", "c1", "--board", "chessboard:8x6:25", "--capture", "3", "--every", "0"]
    assert _calibrate(config, "intrinsics", *capture, str(folder / "shots")) == 2
    captured = capsys.readouterr()
    assert "captured 3 images into" in captured.out
    assert "only 0 usable board images" in captured.err and "board_000.png: board chessboard" in captured.err
    assert sorted(p.name for p in (folder / "shots").iterdir()) == [
        "board_000.png",
        "board_001.png",
        "board_002.png",
    ]
    assert load_calibration(folder / "calibration.yaml").version == 1
