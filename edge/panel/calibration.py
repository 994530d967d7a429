"""The Calibration page: the site's calibration and its stored versions, the check pictures, upload
of calibration photos, and the steps a technician runs from photos (lens model from board photos,
belt plane from a photo of the board on the belt), restore of an older version and redrawing the
check pictures.

The page reads the calibration file and the store itself; the steps run as `beltcam calibrate`
processes (`edge.panel.cli_steps` says why), each followed by `beltcam calibrate show`, which
redraws the check pictures where the command line leaves them
(`<data_dir>/calibration_check_<camera>.png`), so pictures drawn on a laptop show here too.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    send_from_directory,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from calibration import CalibrationError, CalibrationFile, load_calibration
from edge.panel.auth import technician_required
from edge.panel.calibration_uploads import (
    PURPOSES,
    Upload,
    UploadRefused,
    listed,
    remove_all,
    store_uploads,
    upload_folder,
)
from edge.panel.cli_steps import CalibrateRunner, StepBusy
from edge.panel.context import PanelContext
from edge.store.models import Calibration

bp = Blueprint("calibration", __name__)
RUNNER = "beltcam.calibrate_runner"
CHECK_PICTURE = "calibration_check_{camera}.png"  # where `beltcam calibrate show` draws by default
SHOW = ("show", [])
NO_FILE = "calibration_file is not set in the site file: add e.g. `calibration_file: calibration.yaml`"


@bp.record_once
def _runner(state) -> None:
    context: PanelContext = state.app.extensions["beltcam"]
    state.app.extensions[RUNNER] = CalibrateRunner(context.config_path, context.config.storage.data_dir)


def _context() -> PanelContext:
    return current_app.extensions["beltcam"]


def _runner_of_app() -> CalibrateRunner:
    return current_app.extensions[RUNNER]


def _cameras() -> list[str]:
    return [camera.id for camera in _context().config.cameras]


def _data_dir() -> Path:
    return _context().config.storage.data_dir


def _current() -> tuple[CalibrationFile | None, str | None]:
    path = _context().config.calibration_file
    if path is None:
        return None, NO_FILE
    try:
        return load_calibration(path), None
    except CalibrationError as error:
        return None, str(error)


def stored_versions() -> list[dict]:
    """The versions the store keeps of the site's calibration file, newest first."""
    path = _context().config.calibration_file
    if path is None:
        return []
    with _context().store.session() as session:
        rows = session.scalars(
            select(Calibration).where(Calibration.path == str(path)).order_by(Calibration.id.desc())
        ).all()
        versions, seen = [], set()
        for row in rows:
            if row.version in seen:
                continue  # a version saved twice (a file replaced by an older copy): its newest copy
            seen.add(row.version)
            history = (row.content or {}).get("history") or [{}]
            versions.append({
                "version": int(row.version), "saved_utc": row.created_utc.strftime("%Y-%m-%d %H:%M:%S"),
                "step": history[-1].get("step", "") if isinstance(history[-1], dict) else "",
            })  # fmt: skip
        return versions


def _check_pictures() -> dict[str, int | None]:
    """Per camera, the check picture's modification time (a new address for a new picture), or None."""
    pictures = {}
    for camera in _cameras():
        path = _data_dir() / CHECK_PICTURE.format(camera=camera)
        pictures[camera] = path.stat().st_mtime_ns if path.is_file() else None
    return pictures


@bp.route("/calibration")
def page():
    current, problem = _current()
    shown = current.model_dump(mode="json", by_alias=True, exclude_none=True) if current else None
    return render_template(
        "calibration.html", current=current, problem=problem, path=_context().config.calibration_file,
        as_yaml=yaml.safe_dump(shown, sort_keys=False) if shown else "", versions=stored_versions(),
        pictures=_check_pictures(), cameras=_cameras(), purposes=PURPOSES,
        uploads={c: {p: listed(upload_folder(_data_dir(), c, p)) for p in PURPOSES} for c in _cameras()},
        last=_runner_of_app().last(),
    )  # fmt: skip


@bp.route("/calibration/check/<camera>.png")
def check_picture(camera: str):
    if camera not in _cameras():
        abort(404, f"no camera {camera} in the site file")
    path = _data_dir() / CHECK_PICTURE.format(camera=camera)
    if not path.is_file():
        abort(404, f"no check picture of {camera} yet: run a step or draw the check pictures")
    response = send_file(path, mimetype="image/png", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.route("/calibration/photos/<camera>/<purpose>/<name>")
def photo(camera: str, purpose: str, name: str):
    if camera not in _cameras() or purpose not in PURPOSES:
        abort(404, "no such photo")
    return send_from_directory(upload_folder(_data_dir(), camera, purpose), name, max_age=0)


def _camera_and_purpose() -> tuple[str, str] | None:
    camera, purpose = request.form.get("camera", ""), request.form.get("purpose", "")
    if camera not in _cameras() or purpose not in PURPOSES:
        cameras, purposes = ", ".join(_cameras()), ", ".join(PURPOSES)
        flash(f"refused: camera must be one of {cameras} and purpose one of {purposes}", "error")
        return None
    return camera, purpose


@bp.route("/calibration/upload", methods=["POST"])
@technician_required
def upload():
    chosen = _camera_and_purpose()
    if chosen is None:
        return redirect(url_for("calibration.page"))
    files = [Upload(f.filename or "", f.read()) for f in request.files.getlist("photos") if f.filename]
    try:
        names = store_uploads(upload_folder(_data_dir(), *chosen), files)
    except UploadRefused as refusal:
        flash(f"upload refused, nothing kept: {refusal}", "error")
        return redirect(url_for("calibration.page"))
    flash(f"{chosen[0]}: kept {len(names)} photo(s) for the {chosen[1]} step: {', '.join(names)}", "ok")
    return redirect(url_for("calibration.page"))


@bp.route("/calibration/photos/clear", methods=["POST"])
@technician_required
def clear_photos():
    chosen = _camera_and_purpose()
    if chosen is not None:
        removed = remove_all(upload_folder(_data_dir(), *chosen))
        flash(f"{chosen[0]}: removed {removed} {chosen[1]} photo(s)", "ok")
    return redirect(url_for("calibration.page"))


def _run(steps: list[tuple[str, list[str]]]):
    try:
        outcome = _runner_of_app().run(steps, current_user.name)
    except StepBusy as busy:
        flash(f"not run: {busy}", "error")
    else:
        flash(
            outcome.summary if outcome.ok else f"step failed: {outcome.summary}",
            "ok" if outcome.ok else "error",
        )
    return redirect(url_for("calibration.page"))


def _refused(message: str):
    flash(f"not run: {message}", "error")
    return redirect(url_for("calibration.page"))


def _number(name: str, default: float | None = None) -> float:
    text = request.form.get(name, "").strip()
    if not text and default is not None:
        return default
    return float(text)  # ValueError for the caller


@bp.route("/calibration/intrinsics", methods=["POST"])
@technician_required
def intrinsics():
    camera, board = request.form.get("camera", ""), request.form.get("board", "").strip()
    if camera not in _cameras() or not board:
        return _refused("choose a camera and give the board, e.g. charuco:7x5:40:30:DICT_4X4_50")
    try:
        max_rms = _number("max_rms", 1.0)
    except ValueError:
        return _refused("the largest RMS is a number of pixels")
    folder = upload_folder(_data_dir(), camera, "lens")
    if not listed(folder):
        return _refused(f"no lens photos uploaded for {camera} yet")
    args = [f"--camera={camera}", f"--board={board}", f"--max-rms={max_rms!r}", str(folder.resolve())]
    return _run([("intrinsics", args), SHOW])


@bp.route("/calibration/plane", methods=["POST"])
@technician_required
def plane():
    camera, _, name = request.form.get("photo", "").partition("/")  # "c1/board.png"
    board = request.form.get("board", "").strip()
    if camera not in _cameras() or name not in listed(upload_folder(_data_dir(), camera, "belt")):
        return _refused("choose one of the uploaded photos of the board lying on the belt")
    if not board:
        return _refused("give the board, e.g. charuco:7x5:40:30:DICT_4X4_50")
    try:
        origin = f"{_number('origin_x', 0.0)!r},{_number('origin_y', 0.0)!r}"
    except ValueError:
        return _refused("the board's corner is at X,Y millimetres on the belt: two numbers")
    image = upload_folder(_data_dir(), camera, "belt").resolve() / name
    args = [f"--camera={camera}", f"--image={image}", f"--board={board}", f"--origin={origin}"]
    return _run([("plane", args), SHOW])


@bp.route("/calibration/restore", methods=["POST"])
@technician_required
def restore():
    version = request.form.get("version", "")
    if not version.isdigit():
        return _refused("choose a stored version to restore")
    return _run([("restore", [f"--version={int(version)}"]), SHOW])


@bp.route("/calibration/check", methods=["POST"])
@technician_required
def draw_check():
    return _run([SHOW])


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge):
    limit = _context().config.panel.max_upload_mb
    message = (
        f"upload refused: more than {limit:g} MB in one request (panel.max_upload_mb): "
        "send fewer or smaller photos"
    )
    return render_template("error.html", code=413, message=message), 413
