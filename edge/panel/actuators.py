"""The Actuators page: the link's state, heartbeat and one-way time, the nozzle bank, the command
log, and a test-fire (technicians only) that is logged with who fired."""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from calibration import CalibrationError
from edge.actuators.link import nozzle_bank
from edge.actuators.test_fire import logged_test_fire, test_fire_problem
from edge.panel.auth import technician_required
from edge.panel.context import PanelContext
from edge.store.frame_store import FrameStore
from edge.store.models import RemovalCommand
from firmware_bridge.messages import CommandOutcome

bp = Blueprint("actuators", __name__)
SHOWN_COMMANDS = 50
ANSWER_S = 3.0


def recent_commands(store: FrameStore, limit: int = SHOWN_COMMANDS) -> list[dict]:
    with store.session() as session:
        rows = session.scalars(select(RemovalCommand).order_by(RemovalCommand.id.desc()).limit(limit))
        return [
            {
                "id": row.id,
                "created_utc": row.created_utc.isoformat(timespec="seconds"),
                "object_id": row.object_id,
                "channels": row.channels,
                "pulse_ms": row.pulse_ms,
                "status": row.status,
                "kind": (row.detail or {}).get("kind", "removal"),
                "by": (row.detail or {}).get("by"),
            }
            for row in rows
        ]


def link_state(context: PanelContext) -> dict:
    if context.transport is None:
        return {"running": False, "connected": None, "alarm": "the agent is not running in this process"}
    status = context.transport.status()
    return {"running": True, **status.model_dump()}


def _bank(context: PanelContext):
    try:
        return nozzle_bank(context.config.calibration_file), None
    except CalibrationError as error:
        return None, str(error)


@bp.route("/actuators")
def page():
    context: PanelContext = current_app.extensions["beltcam"]
    bank, bank_problem = _bank(context)
    return render_template(
        "actuators.html", link=link_state(context), bank=bank, bank_problem=bank_problem,
        commands=recent_commands(context.store),
    )  # fmt: skip


@bp.route("/actuators/test-fire", methods=["POST"])
@technician_required
def test_fire():
    context: PanelContext = current_app.extensions["beltcam"]
    try:
        channel = int(request.form["channel"])
        pulse_ms = float(request.form["pulse_ms"])
    except (KeyError, ValueError):
        flash("test-fire: channel must be a whole number and pulse a number of milliseconds", "error")
        return redirect(url_for("actuators.page"))
    bank, bank_problem = _bank(context)
    problem = bank_problem or (test_fire_problem(bank, channel, pulse_ms) if bank else None)
    if problem is None and (context.transport is None or context.command_log is None):
        problem = "the agent is not running in this process: no link to fire through"
    if problem is not None:
        flash(f"test-fire refused: {problem}", "error")
        return redirect(url_for("actuators.page"))
    future = logged_test_fire(context.transport, context.command_log, channel, pulse_ms, current_user.name)
    try:
        outcome = future.result(timeout=ANSWER_S)
    except FutureTimeout:
        flash(f"channel {channel}: no answer from the device within {ANSWER_S:g} s", "error")
        return redirect(url_for("actuators.page"))
    if outcome in (CommandOutcome.ACKED, CommandOutcome.DRY_RUN):
        done = "dry run: no valve opened" if outcome == CommandOutcome.DRY_RUN else "opened"
        flash(f"channel {channel} {done} ({pulse_ms:g} ms)", "ok")
    else:
        flash(f"channel {channel}: the device did not acknowledge ({outcome.value})", "error")
    return redirect(url_for("actuators.page"))
