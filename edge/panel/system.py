"""The System page: each camera's health and counters with its recent state changes, the alarms a
technician must act on, and the machine: CPU, memory, GPU and disk. A technician records here that a
camera was moved, re-aimed or replaced (`beltcam cameras moved`): doctor then fails the calibration
until that camera's belt plane is measured again."""

from __future__ import annotations

import shutil
import subprocess
from typing import get_args

import psutil
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from edge.capture.mounts import record_mount_change
from edge.capture.report import UNHEALTHY_STATES, camera_events, camera_reports, reports_as_json
from edge.config import CameraId
from edge.panel.actuators import link_state
from edge.panel.auth import technician_required
from edge.panel.context import PanelContext
from edge.store.disk_report import disk_report

bp = Blueprint("system", __name__)
GPU_QUERY_S = 2.0
LOW_DISK_DAYS = 3.0
CPU_SAMPLE_S = 0.2


def cameras_json(context: PanelContext) -> dict:
    return reports_as_json(camera_reports(context.store), camera_events(context.store))


def gpus() -> list[dict] | str:
    """NVIDIA GPUs as nvidia-smi reports them, or why there are none to show."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "no NVIDIA GPU driver on this machine (nvidia-smi not found)"
    fields = "name,utilization.gpu,memory.used,memory.total,temperature.gpu"
    try:
        done = subprocess.run(
            [smi, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=GPU_QUERY_S, check=True,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError) as error:
        return f"nvidia-smi failed: {error}"
    keys = ("name", "utilization_pct", "memory_used_mb", "memory_total_mb", "temperature_c")
    return [
        dict(zip(keys, (part.strip() for part in line.split(",")), strict=False))
        for line in done.stdout.splitlines()
    ]


def machine() -> dict:
    memory = psutil.virtual_memory()
    return {
        "cpu_pct": psutil.cpu_percent(interval=CPU_SAMPLE_S),  # measured now: between calls it is 0 or stale
        "cpu_count": psutil.cpu_count(),
        "load_1m": round(psutil.getloadavg()[0], 2),
        "memory_used_mb": round((memory.total - memory.available) / 2**20),
        "memory_total_mb": round(memory.total / 2**20),
        "gpus": gpus(),
    }


def alarms(context: PanelContext) -> list[str]:
    """What needs a technician now, one line each."""
    found = []
    for report in camera_reports(context.store):
        if report.state in UNHEALTHY_STATES:
            why = f": {report.last_error}" if report.last_error else ""
            found.append(f"camera {report.camera} is {report.state}{why}")
    link = link_state(context)
    if link["running"] and not link["connected"]:
        found.append(f"actuator link down: {link.get('alarm') or 'not connected'}")
    space = disk_report(context.store, context.config.storage)
    if space["days_to_full"] is not None and space["days_to_full"] < LOW_DISK_DAYS:
        found.append(f"disk full in {space['days_to_full']:g} days at the recent rate: recording will pause")
    if not context.agent_running:
        found.append("the agent is not running in this process: the live view and test-fire are off")
    return found


@bp.route("/system/cameras/moved", methods=["POST"])
@technician_required
def camera_moved():
    context: PanelContext = current_app.extensions["beltcam"]
    camera = request.form.get("camera", "")
    if camera not in get_args(CameraId):
        flash(f"not recorded: {camera or 'no camera'} is not a camera (c1 or c2)", "error")
        return redirect(url_for("system.page"))
    note = request.form.get("note", "").strip() or None
    change = record_mount_change(
        context.store, camera, f"{note or 'moved'} (by {current_user.name} in the panel)"
    )
    flash(
        f"recorded: {camera} mounted anew {change.utc:%Y-%m-%d %H:%M:%S} UTC; measure its belt plane again "
        "(Calibration page), then the offsets",
        "ok",
    )
    return redirect(url_for("system.page"))


@bp.route("/system")
def page():
    context: PanelContext = current_app.extensions["beltcam"]
    return render_template(
        "system.html", cameras=cameras_json(context), alarms=alarms(context), machine=machine(),
        disk=disk_report(context.store, context.config.storage),
    )  # fmt: skip
