"""The Models page: every model with its figures and why it has its status; promote and rollback
for technicians. The running agent swaps to the new live model within `live.model_check_s`."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from edge.panel.auth import technician_required
from edge.store.registry import RegistryError, models, promote, rollback

bp = Blueprint("models", __name__)


@bp.route("/models")
def page():
    return render_template("models.html", models=models(current_app.extensions["beltcam"].store))


@bp.route("/models/<int:model_id>/promote", methods=["POST"])
@technician_required
def promote_model(model_id: int):
    context = current_app.extensions["beltcam"]
    try:
        promote(context.store, model_id, f"promoted by {current_user.name} in the panel")
    except RegistryError as error:
        flash(f"not promoted: {error}", "error")
    else:
        flash(
            f"model {model_id} is live; the agent swaps to it within {context.config.live.model_check_s:g} s",
            "ok",
        )
    return redirect(url_for("models.page"))


@bp.route("/models/rollback", methods=["POST"])
@technician_required
def rollback_model():
    context = current_app.extensions["beltcam"]
    try:
        was, now = rollback(context.store, f"rolled back by {current_user.name} in the panel")
    except RegistryError as error:
        flash(f"no rollback: {error}", "error")
    else:
        flash(f"model {now} is live again, model {was} rejected", "ok")
    return redirect(url_for("models.page"))
