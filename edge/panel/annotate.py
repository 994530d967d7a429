"""The Annotate page: a technician draws an evaluation mask on a recorded C1 frame in the browser
(static/annotate.js) and saves it as the same mask `beltcam import --masks` stores
(`edge.store.masks.save_mask`, origin "panel"); a mask the frame already has is replaced.

The browser sends the label map itself, not a picture of it: `{"width", "height", "labels"}` with
`labels` the base64 of width x height bytes, row by row, each 0, 1 or 2. Nothing drawn in a canvas
(anti-aliasing, colour management) can then blur a class boundary, and the server checks exactly
what will be stored: the frame exists and is C1, the size is the frame's, the values are labels, and
the body is no bigger than that size needs. The JSON routes live under /api/ so every refusal,
the login's, the CSRF check's and the technician check's included, answers as JSON.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from edge.panel.auth import technician_required
from edge.panel.suggestions import suggest_frames
from edge.store.masks import MaskError, MaskTarget, mask_target, read_mask_labels, save_mask

bp = Blueprint("annotate", __name__)
CAMERA = "c1"  # evaluation masks are drawn on what the model segments: the camera before the sorter
SUGGESTIONS = 12
BODY_SLACK = 1024  # bytes of JSON around the labels


def _store():
    return current_app.extensions["beltcam"].store


def _refused(error: MaskError):
    return jsonify(error=str(error)), error.status


@bp.route("/annotate")
def page():
    """The frames most worth annotating, and a way to open any C1 frame by its id."""
    wanted = request.args.get("frame", "").strip()
    if wanted:
        if wanted.isdigit():
            return redirect(url_for("annotate.editor", frame_id=int(wanted)))
        return render_template("annotate.html", suggestions=[], error=f"{wanted!r} is not a frame id"), 400
    return render_template("annotate.html", suggestions=suggest_frames(_store(), SUGGESTIONS), error=None)


@bp.route("/annotate/<int:frame_id>")
def editor(frame_id: int):
    try:
        target = mask_target(_store(), frame_id, CAMERA)
    except MaskError as error:
        return render_template("error.html", code=error.status, message=str(error)), error.status
    return render_template("annotate_frame.html", target=target, can_save=current_user.is_technician)


@bp.route("/api/annotate/<int:frame_id>")
def labels(frame_id: int):
    """The frame's size and its current mask (the labels as base64), for the editor to start from."""
    store = _store()
    try:
        target = mask_target(store, frame_id, CAMERA)
    except MaskError as error:
        return _refused(error)
    mask = None
    if target.mask_path is not None:
        stored = read_mask_labels(store, target.mask_path)
        if stored is not None and stored.shape == (target.height, target.width):
            mask = {
                "origin": target.mask_origin,
                "created_utc": target.mask_created_utc.isoformat(timespec="seconds"),
                # anything else counts as illegal, as `beltcam import` reads it
                "labels": base64.b64encode(
                    np.where(stored > 2, 1, stored).astype(np.uint8).tobytes()
                ).decode(),
            }
    return jsonify(frame_id=frame_id, width=target.width, height=target.height, mask=mask)


@bp.route("/api/annotate/<int:frame_id>", methods=["POST"])
@technician_required
def save(frame_id: int):
    store = _store()
    try:
        target = mask_target(store, frame_id, CAMERA)
        mask = _received_labels(target)
        saved = save_mask(store, frame_id, mask, origin="panel", camera=CAMERA)
    except MaskError as error:
        return _refused(error)
    pixels = saved.pixels
    message = (
        f"saved the mask of frame {frame_id}: {pixels['illegal']} illegal and {pixels['legal']} legal pixels"
        + (f" (replaced the earlier {saved.replaced} mask)" if saved.replaced else "")
    )
    current_app.logger.info("%s, by %s", message, current_user.name)
    return jsonify(ok=True, message=message, mask_id=saved.mask_id, replaced=saved.replaced, pixels=pixels)


def _received_labels(target: MaskTarget) -> np.ndarray:
    """The request's label map, checked for size before it is read and decoded."""
    pixels = target.width * target.height
    limit = 4 * ((pixels + 2) // 3) + BODY_SLACK
    if request.content_length is None or request.content_length > limit:
        size = "of unknown size" if request.content_length is None else f"{request.content_length} bytes"
        raise MaskError(
            f"the request is {size}; a mask of this {target.width}x{target.height} frame "
            f"needs at most {limit} bytes",
            status=413,
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("labels"), str):
        raise MaskError('send JSON {"width": W, "height": H, "labels": base64 of W x H label bytes}')
    width, height = body.get("width"), body.get("height")
    if (width, height) != (target.width, target.height):
        raise MaskError(
            f"the mask is {width}x{height} but frame {target.frame_id} is {target.width}x{target.height}"
        )
    try:
        raw = base64.b64decode(body["labels"], validate=True)
    except (binascii.Error, ValueError):
        raise MaskError("the labels are not valid base64") from None
    if len(raw) != pixels:
        raise MaskError(f"the labels hold {len(raw)} values but a {width}x{height} mask has {pixels}")
    return np.frombuffer(raw, np.uint8).reshape(height, width)
