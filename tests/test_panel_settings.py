"""The Settings page through HTTP against the real panel server: the form generated from the site
file's schema, validation next to the field with nothing written, the reviewed diff, the atomic
save with its backup, comments kept, secrets never shown, roles and CSRF, the workers a change
affects and the agent's restart; plus the pieces under it (YAML patch, affected workers, restart)."""

from __future__ import annotations

import re
import signal
import threading
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
import requests
import yaml

from edge.cli.restart import AgentRestart, same_command
from edge.config import load_config
from edge.panel.site_changes import affected_workers, changed_keys
from edge.panel.site_file import restore_secrets
from edge.panel.site_yaml import site_text
from edge.store.frame_store import FrameStore
from edge.store.users import add_user
from tests.panel_helpers import PASSWORD, csrf_token, login
from tests.test_panel_safe_mode import Command

CAMERA_URL = "rtsp://operator:hunter2secret@10.0.0.7/stream"


class _Form(HTMLParser):
    """The fields a browser would submit from one form (checked boxes only, selected options)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.fields = form_id, False, []
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and attrs.get("name") and attrs.get("type") not in ("submit",):
            if attrs.get("type") != "checkbox" or "checked" in attrs:
                self.fields.append((attrs["name"], attrs.get("value") or ""))
        elif tag == "select":
            self._select = attrs["name"]
        elif tag == "option" and self._select and "selected" in attrs:
            self.fields.append((self._select, attrs.get("value", "")))
        elif tag == "textarea":
            self._textarea = attrs["name"]
            self.fields.append((self._textarea, ""))

    def handle_data(self, data):
        if self._textarea:
            name, text = self.fields[-1]
            self.fields[-1] = (name, text + data)

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_fields(html: str, form_id: str = "settings-form") -> dict[str, str]:
    parser = _Form(form_id)
    parser.feed(html)
    return dict(parser.fields)


def _review(http, site, changes: dict[str, str | None]):
    fields = form_fields(http.get(site.url + "settings").text)
    for name, value in changes.items():
        if value is None:
            fields.pop(name, None)  # an unchecked box
        else:
            fields[name] = value
    return http.post(site.url + "settings/review", data=fields)


def _save(http, site, review_html: str, then: str = "save"):
    return http.post(site.url + "settings/save", data={**form_fields(review_html, "save-form"), "then": then})


def _field_error(html: str, name: str) -> str:
    found = re.search(rf'id="f-{re.escape(name.replace(".", "-"))}-error"[^>]*>([^<]*)<', html)
    return found.group(1) if found else ""


def test_the_form_is_made_from_the_schema_and_shows_the_file(panel_site):
    site = panel_site({"live": {"min_hits": 4}, "cameras": [
        {"id": "c1", "kind": "simulated", "resolution": [128, 96], "fps": 20.0, "source": CAMERA_URL},
        {"id": "c2", "kind": "simulated", "resolution": [128, 96], "fps": 20.0},
    ]})  # fmt: skip
    page = site.session("tech").get(site.url + "settings")
    assert page.status_code == 200 and "<script>" not in page.text
    fields = form_fields(page.text)
    assert fields["live.min_hits"] == "4"  # the file's value
    assert fields["live.max_missed"] == "3"  # a default the file does not set
    assert (fields["cameras.0.resolution.0"], fields["cameras.0.resolution.1"]) == ("128", "96")
    assert fields["cameras.1.kind"] == "simulated" and fields["storage.retention.keep_masked"] == "on"
    assert "storage.retention.keep_masked" in fields and "bridge.dry_run" not in fields  # checkboxes
    assert fields["cameras.__count"] == "2" and fields["simulator.faults.__count"] == "0"
    assert re.search(r'<select id="f-live-fusion" name="live.fusion">', page.text)  # Literal: a select
    assert re.search(r'name="recorder.queue_size" value="64" step="1"\s+min="1"', page.text)  # Field(ge=1)
    assert "frames waiting to be written before drops" in page.text  # the Field's description as help
    assert re.search(r'<textarea id="f-simulator-board" name="simulator.board"', page.text)  # YAML fallback
    assert "hunter2secret" not in page.text and "rtsp://operator:***@10.0.0.7/stream" in page.text


def test_an_invalid_value_is_refused_next_to_its_field_and_nothing_is_written(panel_site):
    site = panel_site()
    before = site.config_path.read_bytes()
    http = site.session("tech")
    refused = _review(
        http, site, {"recorder.queue_size": "0", "cameras.1.fps": "fast", "live.fusion": "magic"}
    )
    assert refused.status_code == 422
    assert _field_error(refused.text, "recorder.queue_size") == "Input should be greater than or equal to 1"
    assert _field_error(refused.text, "cameras.1.fps") == "expected a number, got &#39;fast&#39;"
    assert _field_error(refused.text, "live.fusion").startswith("choose one of none, belt, flow")
    assert form_fields(refused.text)["cameras.1.fps"] == "fast"  # what was typed stays in the form
    whole = _review(http, site, {"cameras.1.id": "c1"})  # a rule of the whole file: shown above the form
    assert whole.status_code == 422 and "exactly one camera c1 and one camera c2" in whole.text
    assert site.config_path.read_bytes() == before
    assert not site.config_path.with_name(site.config_path.name + ".bak").exists()


def test_a_change_is_reviewed_as_a_diff_then_saved_atomically_with_a_backup(panel_site):
    site = panel_site()
    commented = "# the belt of hall 3: ask Anna before changing anything\n" + site.config_path.read_text()
    site.config_path.write_text(commented)
    before = site.config_path.read_bytes()
    http = site.session("tech")
    review = _review(http, site, {"live.min_hits": "3", "cameras.1.fps": "15", "panel.public_metrics": None})
    assert review.status_code == 200, review.text
    diff = re.search(r'<pre class="diff" id="diff">(.*?)</pre>', review.text, re.S).group(1)
    assert "+  min_hits: 3" in diff and "+  public_metrics: false" in diff and "fps: 15.0" in diff
    assert "Comments and layout of the file are kept" in review.text
    affected = re.search(r'<ul id="affected">(.*?)</ul>', review.text, re.S).group(1)
    assert re.findall(r"<strong>([^<]+)</strong>", affected) == ["recording", "live path", "panel"]
    assert site.config_path.read_bytes() == before  # nothing written by the review
    saved = _save(http, site, review.text)
    assert saved.status_code == 200 and "saved; restart the agent to apply" in saved.text
    config = load_config(site.config_path)
    assert (config.live.min_hits, config.camera("c2").fps, config.panel.public_metrics) == (3, 15.0, False)
    assert site.config_path.read_text().startswith("# the belt of hall 3")  # the comment survived
    assert site.config_path.with_name(site.config_path.name + ".bak").read_bytes() == before
    assert [p.name for p in site.config_path.parent.glob(".*.tmp")] == []  # no temporary file left
    again = _save(http, site, review.text)  # the reviewed file is not the file any more
    assert again.status_code == 409 and "changed since your review" in again.text


def test_items_of_a_list_are_added_and_removed(panel_site):
    site = panel_site()
    http = site.session("tech")
    fields = form_fields(http.get(site.url + "settings").text)
    added = http.post(site.url + "settings/review", data={**fields, "__add": "simulator.faults"})
    assert added.status_code == 200 and "simulator.faults: a new item" in added.text
    fields = form_fields(added.text)
    assert fields["simulator.faults.__count"] == "1" and fields["simulator.faults.0.camera"] == ""
    missing = http.post(site.url + "settings/review", data=fields)
    assert missing.status_code == 422
    assert _field_error(missing.text, "simulator.faults.0.camera") == "choose one of c1, c2"
    assert _field_error(missing.text, "simulator.faults.0.at_s") == "a number is needed"
    fields.update(
        {
            "simulator.faults.0.camera": "c2",
            "simulator.faults.0.at_s": "4",
            "simulator.faults.0.kind": "stall",
        }
    )
    review = http.post(site.url + "settings/review", data=fields)
    assert review.status_code == 200 and "recording" in review.text
    assert _save(http, site, review.text).status_code == 200
    fault = load_config(site.config_path).simulator.faults[0]
    assert (fault.camera, fault.at_s, fault.kind, fault.duration_s) == ("c2", 4.0, "stall", 1.0)
    assert "duration_s" not in site.config_path.read_text()  # defaults are not written out
    removal = _review(http, site, {"simulator.faults.0.__remove": "on"})
    assert "its comments are lost" in removal.text  # a removed item cannot be patched in place
    assert _save(http, site, removal.text).status_code == 200
    assert load_config(site.config_path).simulator.faults == []


def test_a_password_is_never_shown_and_kept_when_left_alone(panel_site):
    cameras = [{"id": "c1", "kind": "simulated", "source": CAMERA_URL}, {"id": "c2", "kind": "simulated"}]
    site = panel_site({"cameras": cameras})
    http = site.session("tech")
    review = _review(http, site, {"cameras.1.fps": "12"})
    assert "hunter2secret" not in review.text
    assert _save(http, site, review.text).status_code == 200
    assert load_config(site.config_path).camera("c1").source == CAMERA_URL
    retyped = _review(http, site, {"cameras.0.source": "rtsp://operator:***@10.0.0.8/stream"})
    assert retyped.status_code == 422 and "a password shows as ***" in retyped.text


def test_a_viewer_sees_but_cannot_save_and_a_post_needs_its_csrf_token(panel_site):
    site = panel_site()
    before = site.config_path.read_bytes()
    viewer = site.session("viewer")
    page = viewer.get(site.url + "settings")
    assert page.status_code == 200 and '<fieldset class="plain" disabled>' in page.text
    assert 'id="review"' not in page.text
    token = csrf_token(page.text)
    for path in ("settings/review", "settings/save", "settings/restart"):
        assert (
            viewer.post(site.url + path, data={"csrf_token": token, "live.min_hits": "5"}).status_code == 403
        )
    tech = site.session("tech")
    fields = form_fields(tech.get(site.url + "settings").text)
    del fields["csrf_token"]
    refused = tech.post(site.url + "settings/review", data=fields)
    assert refused.status_code == 400 and "CSRF" in refused.text
    assert site.config_path.read_bytes() == before


def test_save_and_restart_asks_the_agent_to_restart(panel_site):
    site = panel_site()
    http = site.session("tech")
    token = csrf_token(http.get(site.url + "settings").text)
    alone = http.post(site.url + "settings/restart", data={"csrf_token": token})
    assert alone.status_code == 409 and "saved; restart the agent to apply" in alone.text
    asked: list[bool] = []
    site.context.restart = lambda: asked.append(True)  # what the agent hands the panel
    review = _review(http, site, {"bridge.heartbeat_ms": "50"})
    assert 'id="save-restart"' in review.text
    restarting = _save(http, site, review.text, then="restart")
    assert restarting.status_code == 200 and asked == [True]
    assert re.findall(r"<strong>([^<]+)</strong>", restarting.text) == ["actuator link"]
    assert 'id="restarting"' in restarting.text and "settings.js" in restarting.text
    pending = http.get(site.url + "settings")  # the agent still runs the old file until it restarts
    assert 'id="pending"' in pending.text and "actuator link" in pending.text


def test_the_workers_a_key_reaches():
    assert affected_workers(["live.min_hits"]) == ["live path"]
    assert affected_workers(["bridge.lead_ms"]) == ["live path"]
    assert affected_workers(["bridge.port", "schedule.nightly_cron"]) == ["actuator link", "nightly timer"]
    assert affected_workers(["storage.database_url"]) == [
        "recording", "live path", "actuator link", "panel", "nightly timer"
    ]  # fmt: skip
    assert affected_workers(["a_section_nobody_mapped.key"]) == affected_workers(["storage.data_dir"])
    before = {"cameras": [{"fps": 10}, {"fps": 10}], "panel": {"port": 1}}
    after = {"cameras": [{"fps": 10}, {"fps": 12}], "panel": {"port": 1}}
    assert changed_keys(before, after) == ["cameras.1.fps"]


def test_the_yaml_patch_keeps_comments_or_says_it_cannot():
    text = "site_name: hall3   # which belt\ncameras:\n  - id: c1\n    resolution: [64, 48]  # w, h\n"
    patched, kept = site_text(
        text, {"site_name": "hall 3", "cameras": [{"id": "c1", "resolution": [80, 60]}]}
    )
    assert (
        kept
        and patched
        == "site_name: hall 3   # which belt\ncameras:\n  - id: c1\n    resolution: [80, 60]  # w, h\n"
    )
    rewritten, kept = site_text(text, {"site_name": "hall3", "cameras": []})
    assert (
        not kept
        and "#" not in rewritten
        and yaml.safe_load(rewritten) == {"site_name": "hall3", "cameras": []}
    )


def test_redacted_secrets_come_back_only_on_untouched_lines():
    original = "storage:\n  database_url: postgresql://beltcam:s3cret@db/beltcam\n"
    shown = "storage:\n  database_url: postgresql://beltcam:***@db/beltcam\n"
    assert restore_secrets(original, shown + "site_name: x\n") == original + "site_name: x\n"
    with pytest.raises(ValueError, match="line 2: a password shows as"):
        restore_secrets(original, shown.replace("@db/", "@db2/"))


def test_the_agent_restart_runs_the_same_command_once_the_agent_has_stopped(monkeypatch):
    monkeypatch.setattr("sys.orig_argv", ["python3", "-m", "edge.cli", "run", "--config", "site.yaml"])
    monkeypatch.setattr("sys.executable", "/venv/bin/python")
    assert same_command() == ["/venv/bin/python", "-m", "edge.cli", "run", "--config", "site.yaml"]
    monkeypatch.setattr("edge.cli.restart.ANSWER_S", 0.01)
    restart, stops, executed = AgentRestart(), [], []
    restart.exec_if_requested(lambda *call: executed.append(call))
    assert executed == []  # nobody asked
    stopped = threading.Event()
    restart.bind(lambda: (stops.append(True), stopped.set()))
    restart()
    restart()  # a second click while stopping changes nothing
    assert stopped.wait(2) and restart.requested.is_set()
    assert stops == [True]
    restart.exec_if_requested(lambda *call: executed.append(call))
    assert executed == [("/venv/bin/python", same_command())]


def test_the_agent_restarts_in_place_with_the_saved_file(write_config, tmp_path):
    """The whole path: `beltcam run`, a save with restart from its panel, the same process (same
    PID, os.execv) running the agent again with the new file, then a clean stop."""
    path = write_config({"calibration_file": "calibration.yaml"})
    store = FrameStore.from_config(load_config(path).storage)
    add_user(store, "tech", PASSWORD, "technician")
    store.close()
    agent = Command("run", "--config", str(path))
    try:
        url = agent.wait_for(r"^panel at (http://\S+/)").group(1)
        http = requests.Session()
        login(http, url, "tech", PASSWORD)
        fields = form_fields(http.get(url + "settings").text)
        review = http.post(url + "settings/review", data={**fields, "live.min_hits": "5"})
        assert _save(http, SimpleNamespace(url=url), review.text, then="restart").status_code == 200
        agent.wait_for("restarting the agent with the saved site file")
        agent.wait_for(r"^panel at http://")  # the agent again, in the same process
        assert agent.process.poll() is None and load_config(path).live.min_hits == 5
        agent.process.send_signal(signal.SIGTERM)
        assert agent.ended() == 0
    finally:
        agent.stop()
