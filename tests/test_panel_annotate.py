"""The Annotate page against the real server: masks saved as the importer stores them (origin
"panel"), replaced, refused with a clear message when they do not fit, only by a technician with
the CSRF token; the suggested frames; and drawing with the brush and a polygon in Chromium."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import requests
from sqlalchemy import select

from edge.panel.suggestions import spread_order, suggest_frames
from edge.recorder.importer import import_footage
from edge.sources.image_files import encode_image, read_label_map
from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Mask, Recording, RemovalCommand
from tests.panel_helpers import browser_login, csrf_token

W, H, FPS = 128, 96, 10.0
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def _recording(
    store: FrameStore, camera: str = "c1", frames: int = 6, start: datetime = START, label: str = "before"
) -> list[int]:
    """A closed recording written through the store's API, as the recorder writes one: the frame ids."""
    recording_id = store.begin_recording(camera, label, "simulated", "png", (W, H), FPS)
    base_ns = int(start.timestamp() * 1e9)
    ids = []
    with store.session() as session:
        for seq in range(frames):
            image = np.full((H, W, 3), 60, np.uint8)
            image[20:50, 10 + 8 * seq : 40 + 8 * seq] = (200, 180, 40)
            written = store.write_file(
                store.frame_relpath(camera, recording_id, seq, "png"), encode_image(image, "png")
            )
            frame = Frame(
                recording_id=recording_id, seq=seq, path=written.path, bytes=written.bytes,
                capture_utc=start + timedelta(seconds=seq / FPS), capture_ns=base_ns + int(seq * 1e9 / FPS),
            )  # fmt: skip
            session.add(frame)
            session.flush()
            ids.append(frame.id)
        recording = session.get(Recording, recording_id)
        recording.status, recording.frame_count = "closed", frames
        recording.started_utc, recording.ended_utc = start, start + timedelta(seconds=frames / FPS)
    return ids


def _body(labels: np.ndarray) -> dict:
    return {
        "width": labels.shape[1],
        "height": labels.shape[0],
        "labels": base64.b64encode(labels.tobytes()).decode(),
    }


def _drawn() -> np.ndarray:
    labels = np.zeros((H, W), np.uint8)
    labels[10:30, 20:60] = 1
    labels[50:70, 80:100] = 2
    return labels


def _token(http: requests.Session, site, frame_id: int) -> str:
    page = http.get(site.url + f"annotate/{frame_id}")
    assert page.status_code == 200
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
    assert meta == csrf_token(page.text)  # the header the page's script sends is the page's token
    return meta


def _save(http: requests.Session, site, frame_id: int, body, token: str | None) -> requests.Response:
    headers = {"X-CSRFToken": token} if token else {}
    return http.post(site.url + f"api/annotate/{frame_id}", json=body, headers=headers)


def _masks(store: FrameStore) -> list[tuple[int, str, str]]:
    with store.session() as session:
        return [(m.frame_id, m.origin, m.path) for m in session.scalars(select(Mask).order_by(Mask.id))]


def test_a_technician_saves_a_mask_stored_as_an_import_stores_one_and_resaving_replaces_it(panel_site):
    site = panel_site()
    frames = _recording(site.store)
    http = site.session("tech")
    token = _token(http, site, frames[2])
    saved = _save(http, site, frames[2], _body(_drawn()), token)
    assert saved.status_code == 200, saved.text
    assert saved.json()["pixels"] == {"background": W * H - 1200, "illegal": 800, "legal": 400}
    [(frame_id, origin, path)] = _masks(site.store)
    with site.store.session() as session:
        frame = session.get(Frame, frames[2])
        assert path == site.store.mask_relpath("c1", frame.recording_id, frame.seq)
    assert (frame_id, origin) == (frames[2], "panel")
    stored = site.store.absolute(path)
    assert np.array_equal(read_label_map(stored), _drawn())
    assert stored.read_bytes() == encode_image(_drawn(), "png")  # byte for byte what the importer writes

    again = np.zeros((H, W), np.uint8)
    again[0:5, 0:5] = 2
    replaced = _save(http, site, frames[2], _body(again), token)
    assert replaced.status_code == 200 and replaced.json()["replaced"] == "panel"
    assert "replaced the earlier panel mask" in replaced.json()["message"]
    assert _masks(site.store) == [(frames[2], "panel", path)]
    assert np.array_equal(read_label_map(stored), again)
    loaded = http.get(site.url + f"api/annotate/{frames[2]}").json()
    assert (loaded["width"], loaded["height"], loaded["mask"]["origin"]) == (W, H, "panel")
    assert np.array_equal(
        np.frombuffer(base64.b64decode(loaded["mask"]["labels"]), np.uint8).reshape(H, W), again
    )
    assert "saving <strong>replaces</strong> it" in http.get(site.url + f"annotate/{frames[2]}").text


def test_an_imported_mask_is_replaced_in_place_and_becomes_the_panels(panel_site, tmp_path):
    site = panel_site()
    footage, masks = tmp_path / "footage", tmp_path / "masks"
    footage.mkdir()
    masks.mkdir()
    for index in range(2):
        cv2.imwrite(str(footage / f"{index}.png"), np.full((H, W, 3), 90, np.uint8))
    cv2.imwrite(str(masks / "1.png"), _drawn())
    import_footage(site.store, "c1", "before", footage, masks, progress=False)
    [(frame_id, origin, path)] = _masks(site.store)
    assert origin == "import"
    http = site.session("tech")
    response = _save(http, site, frame_id, _body(np.ones((H, W), np.uint8)), _token(http, site, frame_id))
    assert response.status_code == 200 and response.json()["replaced"] == "import"
    assert _masks(site.store) == [(frame_id, "panel", path)]
    assert (read_label_map(site.store.absolute(path)) == 1).all()


def test_only_a_technician_with_the_csrf_token_saves(panel_site):
    site = panel_site()
    frames = _recording(site.store, frames=2)
    viewer = site.session("viewer")
    refused = _save(viewer, site, frames[0], _body(_drawn()), _token(viewer, site, frames[0]))
    assert refused.status_code == 403 and "technician" in refused.json()["error"]
    assert 'id="annotate-save" disabled' in viewer.get(site.url + f"annotate/{frames[0]}").text
    tech = site.session("tech")
    no_token = _save(tech, site, frames[0], _body(_drawn()), None)
    assert no_token.status_code == 400 and "CSRF" in no_token.json()["error"]
    anonymous = requests.post(site.url + f"api/annotate/{frames[0]}", json=_body(_drawn()))
    assert anonymous.status_code in (400, 401)  # the CSRF check runs before the login check
    assert _masks(site.store) == []


def test_what_does_not_fit_is_refused_with_a_clear_message_and_nothing_is_stored(panel_site):
    site = panel_site()
    c1 = _recording(site.store, frames=2)
    c2 = _recording(site.store, camera="c2", frames=2)
    http = site.session("tech")
    token = _token(http, site, c1[0])
    bad_values = _drawn()
    bad_values[0, 0] = 7
    short = _body(_drawn())
    short["labels"] = base64.b64encode(b"\x00" * 100).decode()
    cases = [
        (c1[0], _body(np.zeros((48, 64), np.uint8)), 400, f"the mask is 64x48 but frame {c1[0]} is 128x96"),
        (
            c1[0],
            _body(bad_values),
            400,
            "label values must be 0 (background), 1 (illegal) or 2 (legal); found 7",
        ),
        (c1[0], {**_body(_drawn()), "labels": "not base64!"}, 400, "the labels are not valid base64"),
        (c1[0], short, 400, "the labels hold 100 values but a 128x96 mask has 12288"),
        (c1[0], {"labels": 3}, 400, 'send JSON {"width": W, "height": H, "labels"'),
        (c1[0], _body(np.zeros((H * 4, W * 4), np.uint8)), 413, "a mask of this 128x96 frame needs at most"),
        (999_999, _body(_drawn()), 404, "no frame 999999 in the store"),
        (c2[0], _body(_drawn()), 400, f"frame {c2[0]} is a C2 frame: masks are drawn on C1 frames only"),
    ]
    for frame_id, body, status, message in cases:
        response = _save(http, site, frame_id, body, token)
        assert response.status_code == status, (message, response.text)
        assert message in response.json()["error"]
        assert "Traceback" not in response.text
    not_json = http.post(site.url + f"api/annotate/{c1[0]}", data="labels", headers={"X-CSRFToken": token})
    assert not_json.status_code == 400 and "send JSON" in not_json.json()["error"]
    assert _masks(site.store) == []
    assert not (site.store.data_dir / "masks").exists() or not any(
        (site.store.data_dir / "masks").rglob("*.png")
    )
    c2_page = http.get(site.url + f"annotate/{c2[0]}")
    assert c2_page.status_code == 400 and "is a C2 frame" in c2_page.text
    assert http.get(site.url + "annotate/999999").status_code == 404
    assert http.get(site.url + "annotate?frame=abc").status_code == 400
    opened = http.get(site.url + f"annotate?frame={c1[1]}", allow_redirects=False)
    assert opened.headers["Location"].endswith(f"/annotate/{c1[1]}")


def test_suggestions_cover_unmasked_recordings_first_and_frames_where_the_live_model_fired(panel_site):
    site = panel_site()
    store = site.store
    masked = _recording(store, start=START)
    plain = _recording(store, start=START + timedelta(hours=1))
    fired = _recording(store, start=START + timedelta(hours=2))
    c2 = _recording(store, camera="c2", start=START + timedelta(hours=2))
    unlabeled = _recording(store, start=START + timedelta(hours=3), label="unlabeled")
    labels = np.zeros((H, W), np.uint8)
    http = site.session("tech")
    assert _save(http, site, masked[1], _body(labels), _token(http, site, masked[1])).status_code == 200
    with store.session() as session:
        frame = session.get(Frame, fired[4])
        test_fire = session.get(Frame, fired[1])
        for capture_ns, detail in ((frame.capture_ns, None), (test_fire.capture_ns, {"kind": "test_fire"})):
            logged = frame.capture_utc + timedelta(seconds=0.2)
            session.add(RemovalCommand(
                object_id=7, sequence=1, fire_time_ns=capture_ns + 10**9, channels=[3], pulse_ms=20.0,
                capture_ns=capture_ns, status="dry_run", created_utc=logged, detail=detail,
            ))  # fmt: skip

    picks = suggest_frames(store, limit=5)
    assert [p.frame_id for p in picks[:3]] == [fired[4], plain[2], masked[3]]
    assert "live model planned a removal" in picks[0].reason
    assert picks[1].reason == f"recording {picks[1].recording_id} has no mask yet"
    assert "has 1 mask;" in picks[2].reason  # the recording with a mask comes after the others
    chosen = {p.frame_id for p in suggest_frames(store, limit=50)}
    assert chosen == set(masked + plain + fired) - {masked[1]}  # every free C1 before frame, none masked
    assert not chosen & set(c2 + unlabeled)  # no C2, and no C1 footage the nightly loop takes no mask from
    assert 'id="annotate-unused"' in http.get(site.url + f"annotate/{unlabeled[0]}").text
    assert 'id="annotate-unused"' not in http.get(site.url + f"annotate/{plain[0]}").text
    page = http.get(site.url + "annotate").text
    assert f'href="/annotate/{fired[4]}"' in page and "removal-based object check is not used" in page
    recordings = http.get(site.url + "recordings").text
    assert recordings.count('">annotate</a>') == 4 and f'href="/annotate/{c2[0]}"' not in recordings


def test_spread_order_takes_the_middle_first_then_the_quarters():
    assert spread_order(7) == [3, 1, 5, 0, 2, 4, 6]
    assert sorted(spread_order(10)) == list(range(10)) and spread_order(0) == []


def test_drawing_with_brush_eraser_and_polygon_in_the_browser_saves_the_mask(panel_site, browser_page):
    site = panel_site()
    frames = _recording(site.store, frames=2)
    page = browser_page
    browser_login(page, site)
    page.goto(site.url + f"annotate/{frames[0]}")
    page.wait_for_selector('#annotate[data-ready="1"]')
    canvas = page.locator("#annotate-draw")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()

    def at(x: float, y: float) -> tuple[float, float]:  # a frame pixel's centre on the screen
        return box["x"] + (x + 0.5) * box["width"] / W, box["y"] + (y + 0.5) * box["height"] / H

    def stroke(start: tuple[int, int], end: tuple[int, int]) -> None:
        page.mouse.move(*at(*start))
        page.mouse.down()
        page.mouse.move(*at(*end), steps=8)
        page.mouse.up()

    stroke((20, 20), (50, 20))  # brush, illegal, 4 px wide
    stroke((20, 80), (40, 80))
    page.click("#annotate-undo")  # takes the second stroke back
    page.check("input[name=tool][value=eraser]")
    stroke((45, 20), (50, 20))
    page.check("input[name=tool][value=polygon]")
    page.check("input[name=label][value='2']")
    for corner in ((70, 40), (110, 40), (110, 75), (70, 75), (70, 40)):  # back to the first corner: fill
        page.mouse.click(*at(*corner))
    page.click("#annotate-save")
    page.wait_for_selector("#annotate-status.ok")
    assert "saved the mask of frame" in page.text_content("#annotate-status")

    [(frame_id, origin, path)] = _masks(site.store)
    assert (frame_id, origin) == (frames[0], "panel")
    labels = read_label_map(site.store.absolute(path))
    assert (labels[19:22, 20:42] == 1).all()  # the brush
    assert (labels[18:23, 44:52] == 0).all()  # erased
    assert (labels[78:83, 15:45] == 0).all()  # undone
    assert (labels[42:73, 72:108] == 2).all() and (labels[labels == 2].size < 45 * 40)  # the polygon
    assert labels[5, 120] == 0 and set(np.unique(labels)) == {0, 1, 2}
    assert page.problems == []
