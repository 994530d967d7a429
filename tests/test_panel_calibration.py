"""The Calibration page against the real server: the calibration and its stored versions, uploads
checked (not an image, too large, unsafe names), steps run from uploaded photos of the simulated
belt's board (`beltcam calibrate` as a process) changing the stored calibration and drawing the check
picture, restore of an older version, and who may do what."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from calibration import load_calibration
from edge.simulator.calibration_truth import simulated_pair
from edge.store.calibrations import save_version
from edge.store.models import Calibration
from tests.conftest import simulated_cameras
from tests.panel_helpers import browser_login, csrf_token

BOARD = "charuco:6x4:60:45:DICT_4X4_50"
SIMULATOR = {"seed": 6, "c1_to_c2_mm": 1730}
WIDE = {"cameras": simulated_cameras(320, 240, 10.0)}  # a board of 6x4 squares is found at this size


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def belt_photo() -> bytes:
    """C1's photo of the board lying on the simulated belt, its corner at (100, 120) mm."""
    c1, _ = simulated_pair(board={"board": BOARD, "origin_mm": [100, 120]}, **SIMULATOR)
    return _png(c1.frame_at(0).image)


@pytest.fixture(scope="module")
def lens_photos() -> list[bytes]:
    """Twelve photos of the board held up before C1's lens at as many tilts."""
    held = {"board": BOARD, "held": True, "hold_s": 0.1, "cameras": ["c1"]}
    c1, _ = simulated_pair(board=held, **SIMULATOR)
    return [_png(c1.frame_at(seq).image) for seq in range(12)]


def _token(http, site) -> str:
    return csrf_token(http.get(site.url + "calibration").text)


def _upload(http, site, purpose: str, files: list[tuple[str, bytes]], camera: str = "c1"):
    return http.post(
        site.url + "calibration/upload",
        data={"csrf_token": _token(http, site), "camera": camera, "purpose": purpose},
        files=[("photos", (name, data, "application/octet-stream")) for name, data in files],
    )


def _kept(site, purpose: str, camera: str = "c1") -> list[str]:
    folder = site.context.config.storage.data_dir / "calibration_images" / camera / f"panel-{purpose}"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_the_page_shows_the_calibration_and_a_viewer_cannot_act(panel_site, belt_photo):
    site = panel_site()
    viewer = site.session("viewer")
    page = viewer.get(site.url + "calibration")
    assert page.status_code == 200 and "<script>" not in page.text
    assert "Now: version 1" in page.text and "24 nozzles every 25.0 mm at x = 1100.0 mm" in page.text
    assert 'id="upload"' not in page.text and 'id="step-plane"' not in page.text
    token = csrf_token(page.text)
    for path, data in (
        ("calibration/upload", {"camera": "c1", "purpose": "belt"}),
        ("calibration/plane", {"photo": "c1/x.png", "board": BOARD}),
        ("calibration/intrinsics", {"camera": "c1", "board": BOARD}),
        ("calibration/restore", {"version": "1"}),
        ("calibration/check", {}),
        ("calibration/photos/clear", {"camera": "c1", "purpose": "belt"}),
    ):
        refused = viewer.post(site.url + path, data={"csrf_token": token, **data})
        assert refused.status_code == 403, path
    tech = site.session("tech")
    no_token = tech.post(
        site.url + "calibration/upload", data={"camera": "c1", "purpose": "belt"},
        files=[("photos", ("board.png", belt_photo))],
    )  # fmt: skip
    assert no_token.status_code == 400 and "CSRF" in no_token.text
    assert _kept(site, "belt") == []


def test_uploads_are_checked_and_kept_under_safe_names(panel_site, belt_photo):
    site = panel_site()
    http = site.session("tech")
    answer = _upload(http, site, "belt", [("board.png", belt_photo), ("notes.png", b"just some text")])
    assert "upload refused, nothing kept: notes.png: not an image OpenCV can read" in answer.text
    answer = _upload(http, site, "belt", [("notes.txt", belt_photo)])
    assert "notes.txt: not an image file name" in answer.text
    answer = _upload(http, site, "belt", [("empty.png", b"")])
    assert "empty.png: empty file" in answer.text
    assert _kept(site, "belt") == []  # nothing of a refused upload is kept

    answer = _upload(
        http, site, "belt", [("../../../etc/board photo.jpg", belt_photo), (".hidden.png", belt_photo)]
    )
    assert "kept 2 photo(s)" in answer.text
    assert _kept(site, "belt") == ["board_photo.png", "hidden.png"]
    kept = (
        site.context.config.storage.data_dir / "calibration_images" / "c1" / "panel-belt" / "board_photo.png"
    )
    assert cv2.imread(str(kept)).shape == (240, 320, 3)  # the decoded photo, written again as PNG
    again = _upload(http, site, "belt", [("board photo.png", belt_photo)])
    assert "board_photo-2.png" in again.text  # never over an earlier photo
    shown = http.get(site.url + "calibration/photos/c1/belt/board_photo.png")
    assert shown.status_code == 200 and shown.content[:4] == b"\x89PNG"
    assert http.get(site.url + "calibration/photos/c1/belt/..%2F..%2Fbeltcam.db").status_code == 404
    assert http.get(site.url + "calibration/photos/c9/belt/board_photo.png").status_code == 404
    cleared = http.post(
        site.url + "calibration/photos/clear",
        data={"csrf_token": _token(http, site), "camera": "c1", "purpose": "belt"},
    )
    assert "removed 3 belt photo(s)" in cleared.text and _kept(site, "belt") == []


def test_an_oversized_upload_is_refused(panel_site, belt_photo):
    site = panel_site({"panel": {"max_upload_mb": 0.05}})
    http = site.session("tech")
    token = _token(http, site)
    big = _png(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    assert len(big) > 0.05 * 1024 * 1024
    answer = http.post(
        site.url + "calibration/upload", data={"csrf_token": token, "camera": "c1", "purpose": "belt"},
        files=[("photos", ("big.png", big))],
    )  # fmt: skip
    assert answer.status_code == 413
    assert "upload refused: more than 0.05 MB in one request (panel.max_upload_mb)" in answer.text
    assert _kept(site, "belt") == []


def test_a_huge_picture_in_a_small_file_is_refused_before_it_is_decoded(panel_site):
    site = panel_site()
    http = site.session("tech")
    bomb = cv2.imencode(".png", np.zeros((8000, 6000), np.uint8))[1].tobytes()  # 48 MP of black: ~50 KB
    answer = _upload(http, site, "lens", [("bomb.png", bomb)])
    assert "bomb.png: 6000x8000 pixels is more than a calibration photo needs" in answer.text


def test_the_belt_plane_from_an_uploaded_photo_changes_the_calibration(panel_site, belt_photo):
    site = panel_site(WIDE)
    http = site.session("tech")
    assert "kept 1 photo(s)" in _upload(http, site, "belt", [("board.png", belt_photo)]).text
    answer = http.post(
        site.url + "calibration/plane",
        data={"csrf_token": _token(http, site), "photo": "c1/board.png", "board": BOARD,
              "origin_x": "100", "origin_y": "120"},
    )  # fmt: skip
    assert answer.status_code == 200
    assert re.search(r"saved .*calibration.yaml \(version 2\)", answer.text), answer.text
    saved = load_calibration(site.context.config.calibration_file)
    plane = saved.camera("c1").belt_plane
    assert saved.version == 2 and plane.method == "board" and plane.holdout_rms_mm < 2.0
    c1, _ = simulated_pair(**SIMULATOR)
    assert plane.to_plane().mm_per_px((160, 120)) == pytest.approx(c1.view.mm_per_px, rel=0.01)
    assert saved.actuators is not None  # the other sections are kept
    with site.store.session() as session:
        assert session.scalars(select(Calibration.version)).all() == ["2"]
    assert 'id="version-2"' in answer.text and "board: fit RMS" in answer.text
    picture = http.get(site.url + "calibration/check/c1.png")
    assert picture.status_code == 200 and picture.headers["Content-Type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(picture.content, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    assert 'id="check-c1"' in answer.text


def test_the_lens_from_uploaded_board_photos_and_a_failing_step(panel_site, lens_photos):
    site = panel_site(WIDE)
    http = site.session("tech")
    answer = _upload(http, site, "lens", [(f"pose{n}.png", data) for n, data in enumerate(lens_photos)])
    assert "kept 12 photo(s)" in answer.text
    answer = http.post(
        site.url + "calibration/intrinsics",
        data={"csrf_token": _token(http, site), "camera": "c1", "board": BOARD, "max_rms": "1"},
    )
    assert re.search(r"saved .* \(version 2\)", answer.text), answer.text
    matrix = np.array(
        load_calibration(site.context.config.calibration_file).camera("c1").intrinsics.camera_matrix
    )
    assert matrix[0, 0] == pytest.approx(320, rel=0.03)  # the simulated lens: f = 320 px
    failing = http.post(
        site.url + "calibration/intrinsics",
        data={"csrf_token": _token(http, site), "camera": "c1", "board": "--help"},
    )
    assert (
        "step failed: beltcam: error: board &#39;--help&#39;: expected" in failing.text
    )  # a value, not an option
    assert load_calibration(site.context.config.calibration_file).version == 2
    assert 'id="last-step" class="bad"' in failing.text


def test_restore_brings_an_older_version_back(panel_site):
    site = panel_site()
    path = site.context.config.calibration_file
    current = load_calibration(path)
    for latency in (12.0, 30.0):  # versions 2 and 3, as earlier steps saved them
        geometry = current.actuators.model_copy(update={"valve_latency_ms": latency})
        current = save_version(
            site.store, path, current.model_copy(update={"actuators": geometry}), "actuators"
        )
    assert current.version == 3
    http = site.session("tech")
    answer = http.post(
        site.url + "calibration/restore", data={"csrf_token": _token(http, site), "version": "2"}
    )
    assert "version 2 restored, saved as version 4" in answer.text
    restored = load_calibration(path)
    assert restored.version == 4 and restored.actuators.valve_latency_ms == 12.0
    assert restored.history[-1].step == "restore"
    missing = http.post(
        site.url + "calibration/restore", data={"csrf_token": _token(http, site), "version": "9"}
    )
    assert "step failed:" in missing.text and "no stored version 9" in missing.text


def test_the_calibration_page_in_a_browser(panel_site, browser_page, belt_photo, tmp_path):
    site = panel_site(WIDE)
    page = browser_page
    browser_login(page, site)
    page.click("nav a:text('Calibration')")
    page.wait_for_url(re.compile(r".*/calibration$"))
    photo = tmp_path / "board.png"
    photo.write_bytes(belt_photo)
    page.select_option("#upload select[name=purpose]", "belt")
    page.set_input_files("#upload input[name=photos]", str(photo))
    page.click("#upload button[type=submit]")
    page.wait_for_selector("text=kept 1 photo(s)")
    page.fill("#step-plane input[name=board]", BOARD)
    page.fill("#step-plane input[name=origin_x]", "100")
    page.fill("#step-plane input[name=origin_y]", "120")
    page.click("#step-plane button[type=submit]")
    page.wait_for_selector("text=(version 2)", timeout=60_000)
    image = page.locator("#check-c1")
    image.wait_for()
    for _ in range(50):
        if image.evaluate("img => img.complete && img.naturalWidth") == 320:
            break
        page.wait_for_timeout(100)
    assert image.evaluate("img => img.naturalWidth") == 320
    assert page.problems == []
