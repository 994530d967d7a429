"""The Training page: every training run with its status and why, the live progress of a running
one, loss curves per epoch and the mIoU of run after run, each run's log, and a "start training
now" for technicians that starts the nightly loop's own command (`edge.panel.launches`).

The curves are drawn from what the trainer writes into each run directory (`epochs.jsonl`,
`settings.json`, `metrics.json`, `train.log`): the store only knows a run's status and final
metrics, the folder knows its epochs. The trainer measures mIoU once, when a run finishes, so the
mIoU curve is one point per finished run, the figure a technician compares night after night.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from edge.panel.auth import technician_required
from edge.panel.charts import line_chart
from edge.panel.context import PanelContext
from edge.panel.launches import LaunchRefused, NightlyLauncher
from edge.panel.run_files import LOG_FILE, RunFiles, log_tail, read_run, run_miou
from edge.store.models import TrainingRun

bp = Blueprint("training", __name__)
SHOWN_RUNS = 100
LAUNCHER = "beltcam.nightly_launcher"
MAX_WINDOW_H = 24.0  # what `beltcam nightly --window-h` accepts


@bp.record_once
def _launcher(state) -> None:
    """One launcher per app: it remembers the child it started for the pages that follow."""
    context: PanelContext = state.app.extensions["beltcam"]
    state.app.extensions[LAUNCHER] = NightlyLauncher(context.config_path, context.config.storage.data_dir)


@dataclass
class RunView:
    id: int
    method: str
    status: str
    origin: str
    reason: str | None
    started: str
    ended: str
    run_dir: str
    files: RunFiles
    miou: float | None


def _context() -> PanelContext:
    return current_app.extensions["beltcam"]


def launcher() -> NightlyLauncher:
    return current_app.extensions[LAUNCHER]


def _view(run: TrainingRun) -> RunView:
    files = read_run(Path(run.run_dir))
    return RunView(
        id=run.id, method=run.method, status=run.status, origin=run.origin, reason=run.reason,
        started=run.started_utc.strftime("%Y-%m-%d %H:%M"),
        ended=run.ended_utc.strftime("%Y-%m-%d %H:%M") if run.ended_utc else "",
        run_dir=run.run_dir, files=files, miou=run_miou(run.metrics or files.metrics),
    )  # fmt: skip


def recent_runs(limit: int = SHOWN_RUNS) -> list[RunView]:
    with _context().store.session() as session:
        runs = session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)).all()
        return [_view(run) for run in runs]


def loss_chart(run: RunView, chart_id: str = "loss-chart") -> Markup | None:
    series = run.files.loss_series()
    if not series:
        return None
    title = f"run {run.id} ({run.method}): mean loss per epoch"
    return line_chart(series, title, "epoch", "loss", chart_id=chart_id)


def miou_chart(runs: list[RunView]) -> Markup | None:
    """Test mIoU of every finished run, one line per method, oldest first."""
    series: dict[str, list[tuple[float, float]]] = {}
    for run in sorted(runs, key=lambda r: r.id):
        if run.miou is not None:
            series.setdefault(run.method, []).append((run.id, run.miou))
    if not series:
        return None
    return line_chart(
        series, "test mIoU of each finished run", "run", "mIoU (%)", (0.0, 100.0), chart_id="miou-chart"
    )


def _focus(runs: list[RunView]) -> RunView | None:
    """The run whose losses the page draws: the one training now, else the newest with epochs."""
    running = [run for run in runs if run.status == "running" and run.files.epochs]
    with_epochs = running or [run for run in runs if run.files.epochs]
    return with_epochs[0] if with_epochs else None


def _live_section() -> dict:
    runs = recent_runs()
    focus = _focus(runs)
    launch = launcher().state()
    return {
        "runs": runs,
        "launch": launch,
        "focus": focus,
        "loss_chart": loss_chart(focus) if focus else None,
        "miou_chart": miou_chart(runs),
        "live": launch.busy or any(run.status == "running" for run in runs),
        "running_logs": {
            run.id: log_tail(Path(run.run_dir) / LOG_FILE, 2048).strip().splitlines()[-1:]
            for run in runs
            if run.status == "running"
        },
    }


@bp.route("/training")
def page():
    return render_template(
        "training.html", default_window_h=_context().config.schedule.window_h, **_live_section()
    )


@bp.route("/training/live")
def live():
    """The page's changing part, for training.js to swap in while something runs."""
    return render_template("_training_live.html", **_live_section())


@bp.route("/training/runs/<int:run_id>")
def run_page(run_id: int):
    with _context().store.session() as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            abort(404, f"no training run {run_id}")
        view = _view(run)
    return render_template(
        "training_run.html",
        run=view,
        loss_chart=loss_chart(view),
        log=log_tail(Path(view.run_dir) / LOG_FILE),
    )


@bp.route("/training/start", methods=["POST"])
@technician_required
def start():
    window_h = None
    if text := request.form.get("window_h", "").strip():
        try:
            window_h = float(text)
        except ValueError:
            window_h = -1.0
        if not 0 < window_h <= MAX_WINDOW_H:
            flash(f"not started: the window is hours, more than 0 and at most {MAX_WINDOW_H:g}", "error")
            return redirect(url_for("training.page"))
    try:
        record = launcher().start(current_user.name, window_h)
    except LaunchRefused as refusal:
        flash(f"not started: {refusal}", "error")
    else:
        flash(
            f"night started (pid {record.pid}): it trains when there is new footage; its output is below",
            "ok",
        )
    return redirect(url_for("training.page"))
