"""The panel's data as JSON under /api/ (the same login as the pages): for scripts, monitoring and
the pages' own refreshes."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from edge.panel.actuators import link_state, recent_commands
from edge.panel.context import PanelContext
from edge.panel.recordings import daily_counts
from edge.panel.system import alarms, cameras_json, machine
from edge.store.disk_report import disk_report
from edge.store.registry import models

bp = Blueprint("api", __name__, url_prefix="/api")
MAX_COMMANDS = 500


def _context() -> PanelContext:
    return current_app.extensions["beltcam"]


@bp.route("/cameras")
def cameras():
    return jsonify(cameras_json(_context()))


@bp.route("/recordings")
def recordings():
    context = _context()
    return jsonify(days=daily_counts(context.store), disk=disk_report(context.store, context.config.storage))


@bp.route("/models")
def model_list():
    return jsonify(models=[entry.as_json() for entry in models(_context().store)])


@bp.route("/commands")
def commands():
    limit = min(request.args.get("limit", 50, type=int) or 50, MAX_COMMANDS)
    return jsonify(commands=recent_commands(_context().store, limit), link=link_state(_context()))


def live_state(context: PanelContext) -> dict:
    if context.view is None:
        return {"agent_running": False}
    frames = {}
    for camera in ("c1", "c2"):
        newest = context.view.newest(camera)
        rate = context.view.frame_rate(camera)
        frames[camera] = {
            "sequence": newest.sequence if newest else 0,
            "fps": round(rate, 1) if rate is not None else None,
            "masked": newest is not None and newest.labels is not None,
        }
    openings = context.judge() if context.judge is not None else None
    return {"agent_running": True, "frames": frames, "agent": context.view.status(), "openings": openings}


@bp.route("/live")
def live():
    return jsonify(live_state(_context()))


@bp.route("/system")
def system():
    context = _context()
    return jsonify(alarms=alarms(context), machine=machine())
