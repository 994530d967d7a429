"""The Training page against the real server: runs listed from the store with their loss curves drawn
from run directories in the trainer's own file format, the mIoU of run after run, a run's log
escaped, and "start training now": refused to viewers, without CSRF and while a night holds the
nightly lock; started for real (`beltcam nightly` as a process of its own) and shown running."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

from edge.nightly.runs import end_run, finish_run, start_run
from edge.store.lock import NIGHTLY_LOCK_FILE, DataDirLock
from tests.panel_helpers import browser_login, csrf_token
from trainer.evaluate import EvaluationResult
from trainer.train import RunResult, TrainSettings

HOSTILE_LINE = "epoch <script>alert('x')</script> & more"


def _epoch_record(epoch: int) -> dict:
    """One line of `epochs.jsonl` as `trainer.train` writes it (method `ours`)."""
    return {"epoch": epoch, "samples": 64, "seconds": 1.5, "frames_per_s": 42.0, "a": 0.1 * epoch, "b": 0.2,
            "cls": round(0.9 / epoch, 5), "pcls": round(0.8 / epoch, 5), "spatial": round(0.05 * epoch, 5),
            "temporal": 0.01}  # fmt: skip


def make_run_dir(folder: Path, epochs_done: int, planned: int, miou: float | None) -> Path:
    """A run directory with the trainer's files: settings, per-epoch records, log and, when finished,
    metrics with an evaluation."""
    folder.mkdir(parents=True)
    settings = TrainSettings(method="ours", backbone="resnet18", epochs=planned, weights="random")
    (folder / "settings.json").write_text(settings.model_dump_json(indent=2) + "\n", encoding="utf-8")
    lines = [json.dumps(_epoch_record(epoch)) for epoch in range(1, epochs_done + 1)]
    (folder / "epochs.jsonl").write_text("".join(line + "\n" for line in lines) + '{"epoch": 9, "cl', "utf-8")
    log = [f"2026-01-01 00:00:0{n} INFO trainer.train: epoch {n}" for n in range(epochs_done)]
    (folder / "train.log").write_text("\n".join([*log, HOSTILE_LINE]) + "\n", encoding="utf-8")
    if miou is not None:
        evaluation = EvaluationResult(
            maps="cam", threshold=0.4, threshold_source="masks", miou=miou, test_frames=9
        )
        metrics = {"method": "ours", "evaluation": evaluation.to_json(), "onnx_max_abs_diff": None,
                   "train_frames_per_s": 42.0, "weights": "random", "device": "cpu", "mixed_precision": None,
                   "processes": 1}  # fmt: skip
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return folder


def add_runs(site, tmp_path: Path) -> list[int]:
    """Two finished nightly runs (mIoU 41.5 then 55) and one running at epoch 2 of 5."""
    ids = []
    for n, miou in enumerate((41.5, 55.0)):
        run_dir = make_run_dir(tmp_path / f"run{n}", 3, 3, miou)
        run_id = start_run(site.store, "ours", run_dir, [], origin="nightly")
        finish_run(site.store, run_id, RunResult(run_dir, None, None, None, 42.0))
        ids.append(run_id)
    running = start_run(site.store, "ours", make_run_dir(tmp_path / "run2", 2, 5, None), [], origin="manual")
    return [*ids, running]


def test_runs_are_listed_with_their_curves_progress_and_log(panel_site, tmp_path):
    site = panel_site()
    first, second, running = add_runs(site, tmp_path)
    failed = start_run(site.store, "cam", make_run_dir(tmp_path / "run3", 0, 4, None), [])
    end_run(site.store, failed, "failed", "no `before` frames with masks <b>here</b>")
    http = site.session("viewer")

    page = http.get(site.url + "training")
    assert page.status_code == 200 and "<script>" not in page.text
    for run_id in (first, second, running, failed):
        assert f'id="run-{run_id}"' in page.text
    assert "epoch 2/5" in page.text and '<progress max="5" value="2">' in page.text
    assert 'data-live="1"' in page.text  # a run is training: the page refreshes itself
    assert "no `before` frames with masks &lt;b&gt;here&lt;/b&gt;" in page.text
    # the running run's losses: one line per loss term and their sum, one point per epoch
    loss = re.search(r'<svg[^>]*id="loss-chart".*?</svg>', page.text, re.S).group(0)
    names = re.findall(r'<path class="series" data-series="([^"]+)" d="([^"]+)"', loss)
    assert [name for name, _ in names] == ["total", "cls", "pcls", "spatial", "temporal"]
    assert all(len(re.findall(r"[ML]", d)) == 2 for _, d in names)
    # the mIoU of each finished run, oldest first, on a 0-100 axis
    miou = re.search(r'<svg[^>]*id="miou-chart".*?</svg>', page.text, re.S).group(0)
    (d,) = re.findall(r'data-series="ours" d="([^"]+)"', miou)
    points = [tuple(map(float, p.split(","))) for p in re.findall(r"[ML]([\d.]+,[\d.]+)", d)]
    assert len(points) == 2 and points[0][0] < points[1][0] and points[0][1] > points[1][1]  # higher: up
    assert "41.5" in page.text and "55.0" in page.text

    detail = http.get(site.url + f"training/runs/{first}")
    assert detail.status_code == 200 and 'id="loss-chart"' in detail.text
    assert "&lt;script&gt;alert(" in detail.text and "<script>alert" not in detail.text  # the log, escaped
    assert "0.4 (from masks)" in detail.text
    assert http.get(site.url + "training/runs/999").status_code == 404
    fragment = http.get(site.url + "training/live")
    assert fragment.status_code == 200 and fragment.text.lstrip().startswith('<section id="training-live"')


def test_start_training_is_refused_to_a_viewer_and_without_csrf(panel_site):
    site = panel_site()
    viewer = site.session("viewer")
    token = csrf_token(viewer.get(site.url + "training").text)
    refused = viewer.post(site.url + "training/start", data={"csrf_token": token})
    assert refused.status_code == 403 and "technician" in refused.text
    assert 'id="start-training"' not in viewer.get(site.url + "training").text  # no button to press
    tech = site.session("tech")
    assert 'id="start-training"' in tech.get(site.url + "training").text
    no_token = tech.post(site.url + "training/start")
    assert no_token.status_code == 400 and "CSRF" in no_token.text
    assert not (site.context.config.storage.data_dir / "panel" / "nightly-launch.json").exists()


def test_a_start_while_a_night_holds_the_lock_is_refused_with_a_message(panel_site):
    site = panel_site()
    http = site.session("tech")
    token = csrf_token(http.get(site.url + "training").text)
    with DataDirLock(site.context.config.storage.data_dir, "beltcam nightly", NIGHTLY_LOCK_FILE):
        answer = http.post(site.url + "training/start", data={"csrf_token": token})
        assert answer.status_code == 200
        assert "not started: a night is already running (beltcam nightly (pid" in answer.text
        assert "running: beltcam nightly (pid" in answer.text
    assert not (site.context.config.storage.data_dir / "panel" / "nightly-launch.json").exists()


def test_a_bad_window_is_refused(panel_site):
    site = panel_site()
    http = site.session("tech")
    token = csrf_token(http.get(site.url + "training").text)
    for window in ("0", "25", "nan", "soon"):
        answer = http.post(site.url + "training/start", data={"csrf_token": token, "window_h": window})
        assert "not started: the window is hours" in answer.text, window


def test_start_training_runs_the_nightly_command_and_the_page_follows_it(panel_site):
    site = panel_site()
    http = site.session("tech")
    token = csrf_token(http.get(site.url + "training").text)
    record = site.context.config.storage.data_dir / "panel" / "nightly-launch.json"
    try:
        started = http.post(site.url + "training/start", data={"csrf_token": token, "window_h": "0.5"})
        assert "night started (pid" in started.text
        assert (
            re.search(r'id="launch-state">(starting|running)', started.text)
            and 'data-live="1"' in started.text
        )
        again = http.post(site.url + "training/start", data={"csrf_token": token})
        assert re.search(r"not started: (the night started from the panel .* is still starting|a night is "
                         r"already running)", again.text)  # fmt: skip
        deadline = time.monotonic() + 90
        while "ended with exit code" not in (page := http.get(site.url + "training").text):
            assert time.monotonic() < deadline, "the night did not end"
            time.sleep(0.5)
        # an empty store: the night has nothing new to learn from and says so
        assert "ended with exit code 0" in page and 'data-live="0"' in page
        assert "beltcam nightly --config" in page and "--window-h 0.5000 --nice" in page
        assert "night skipped: 0 new before/after frames" in page
    finally:
        if record.exists() and _alive(pid := json.loads(record.read_text())["pid"]):
            os.kill(pid, signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_training_page_in_a_browser_draws_the_curves(panel_site, browser_page, tmp_path):
    site = panel_site()
    add_runs(site, tmp_path)
    page = browser_page
    browser_login(page, site)
    page.click("nav a:text('Training')")
    page.wait_for_url(re.compile(r".*/training$"))
    box = page.locator("#loss-chart path.series").first.bounding_box()
    assert box is not None and box["width"] > 50  # drawn across the plot, not a dot
    assert page.locator("#miou-chart path.series").count() == 1
    assert page.locator("#runs tbody tr").count() == 3
    page.wait_for_timeout(6000)  # one refresh of the live part (a run is training) without an error
    assert page.locator("#loss-chart path.series").count() == 5
    page.click("#runs a >> nth=0")
    page.wait_for_url(re.compile(r".*/training/runs/\d+$"))
    assert "alert(" in page.text_content("#run-log")
    assert page.problems == []
