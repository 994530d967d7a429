"""The Live page: C1 with the mask overlay and C2 beside it, the agent's counters and the last
removal commands. Inside the agent the pictures are an MJPEG stream of every frame (capped at
`panel.live_fps` per viewer); a panel on its own shows the newest recorded frames instead."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, abort, current_app, redirect, render_template, url_for
from sqlalchemy import select

from edge.panel.context import PanelContext
from edge.panel.overlay import file_as_jpeg, jpeg, overlay
from edge.store.models import Frame, Recording

bp = Blueprint("live", __name__)
CAMERAS = ("c1", "c2")
WAIT_S = 1.0


def _context() -> PanelContext:
    return current_app.extensions["beltcam"]


@bp.route("/")
def home():
    return redirect(url_for("live.page"))


@bp.route("/live")
def page():
    context = _context()
    recorded = {
        camera: context.view is not None or _newest_path(context, camera) is not None for camera in CAMERAS
    }
    return render_template("live.html", cameras=CAMERAS, recorded=recorded)


def _stream(context: PanelContext, camera: str) -> Iterator[bytes]:
    period = 1.0 / context.config.panel.live_fps
    sequence = 0
    while not context.stopping.is_set():
        frame = context.view.wait_newer(camera, sequence, WAIT_S)
        if frame is None:
            continue
        sequence = frame.sequence
        picture = jpeg(overlay(frame.image, frame.labels))
        yield b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (
            len(picture),
            picture,
        )
        context.stopping.wait(period)


@bp.route("/live/<camera>.mjpg")
def stream(camera: str):
    context = _context()
    if camera not in CAMERAS:
        abort(404, f"no camera {camera}")
    if context.view is None:
        abort(404, "the agent is not running in this process: no live stream (see /live/<camera>.jpg)")
    return Response(
        _stream(context, camera),
        mimetype="multipart/x-mixed-replace; boundary=frame",
        headers={"Cache-Control": "no-store"},
    )


@bp.route("/live/<camera>.jpg")
def snapshot(camera: str):
    """The newest frame: live with its overlay inside the agent, else the newest recorded one."""
    context = _context()
    if camera not in CAMERAS:
        abort(404, f"no camera {camera}")
    if context.view is not None and (frame := context.view.newest(camera)) is not None:
        picture = jpeg(overlay(frame.image, frame.labels))
    else:
        picture = _newest_recorded(context, camera)
    return Response(picture, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})


def _newest_path(context: PanelContext, camera: str) -> str | None:
    with context.store.session() as session:
        return session.scalar(
            select(Frame.path)
            .join(Recording)
            .where(Recording.camera == camera, Frame.missing.is_(False))
            .order_by(Frame.id.desc())
            .limit(1)
        )


def _newest_recorded(context: PanelContext, camera: str) -> bytes:
    path = _newest_path(context, camera)
    if path is None:
        abort(404, f"camera {camera} has recorded nothing yet")
    picture = file_as_jpeg(context.store.absolute(path))
    if picture is None:
        abort(404, f"{path}: unreadable")
    return picture
