"""The Recordings page: what was recorded per day, camera and label, thumbnails with the ground
truth drawn over them, and the disk (edge.store.disk_report)."""

from __future__ import annotations

import cv2
from flask import Blueprint, Response, abort, current_app, render_template, request
from sqlalchemy import func, select

from edge.panel.overlay import file_as_jpeg, jpeg, overlay
from edge.store.disk_report import disk_report
from edge.store.frame_store import FrameStore
from edge.store.models import Frame, Mask, Recording

bp = Blueprint("recordings", __name__)
THUMBNAILS = 12


def daily_counts(store: FrameStore) -> list[dict]:
    day = func.date(Recording.started_utc)
    with store.session() as session:
        rows = session.execute(
            select(
                day.label("day"), Recording.camera, Recording.label,
                func.count(Recording.id).label("recordings"),
                func.coalesce(func.sum(Recording.frame_count), 0).label("frames"),
            )
            .group_by(day, Recording.camera, Recording.label)
            .order_by(day.desc(), Recording.camera, Recording.label)
        ).all()  # fmt: skip
        masked = dict(
            session.execute(
                select(func.date(Recording.started_utc), func.count(Mask.id))
                .select_from(Mask).join(Frame).join(Recording)
                .group_by(func.date(Recording.started_utc))
            ).all()
        )  # fmt: skip
    return [
        {"day": str(row.day), "camera": row.camera, "label": row.label, "recordings": row.recordings,
         "frames": int(row.frames), "masked_that_day": int(masked.get(row.day, 0))}
        for row in rows
    ]  # fmt: skip


def thumbnails(store: FrameStore, limit: int = THUMBNAILS, masked_only: bool = False) -> list[dict]:
    """The first frame of each of the newest recordings (or the newest masked frames)."""
    with store.session() as session:
        if masked_only:
            query = (
                select(Frame.id, Recording.camera, Recording.label, Frame.capture_utc)
                .join(Recording).join(Mask).order_by(Frame.id.desc()).limit(limit)
            )  # fmt: skip
            rows = session.execute(query).all()
        else:
            newest = session.execute(
                select(Recording.id, Recording.camera, Recording.label)
                .where(Recording.frame_count > 0).order_by(Recording.id.desc()).limit(limit)
            ).all()  # fmt: skip
            rows = []
            for recording in newest:
                frame = session.execute(
                    select(Frame.id, Frame.capture_utc).where(
                        Frame.recording_id == recording.id, Frame.missing.is_(False)
                    ).order_by(Frame.seq).limit(1)
                ).first()  # fmt: skip
                if frame is not None:
                    rows.append((frame.id, recording.camera, recording.label, frame.capture_utc))
    return [
        {"frame_id": frame_id, "camera": camera, "label": label, "utc": utc.isoformat(timespec="seconds")}
        for frame_id, camera, label, utc in rows
    ]


@bp.route("/recordings")
def page():
    context = current_app.extensions["beltcam"]
    return render_template(
        "recordings.html",
        days=daily_counts(context.store),
        disk=disk_report(context.store, context.config.storage),
        recent=thumbnails(context.store),
        masked=thumbnails(context.store, masked_only=True),
    )


@bp.route("/frames/<int:frame_id>.jpg")
def frame_picture(frame_id: int):
    """A stored frame; `?truth=1` draws its ground-truth mask over it."""
    store = current_app.extensions["beltcam"].store
    with store.session() as session:
        frame = session.get(Frame, frame_id)
        if frame is None or frame.missing:
            abort(404, f"no frame {frame_id}")
        path, mask_path = frame.path, frame.mask.path if frame.mask else None
    if request.args.get("truth") and mask_path is not None:
        image = cv2.imread(str(store.absolute(path)), cv2.IMREAD_COLOR)
        labels = cv2.imread(str(store.absolute(mask_path)), cv2.IMREAD_UNCHANGED)
        if image is None or labels is None:
            abort(404, f"frame {frame_id}: its file or its mask is unreadable")
        picture = jpeg(overlay(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), labels))
    else:
        picture = file_as_jpeg(store.absolute(path))
        if picture is None:
            abort(404, f"frame {frame_id}: {path} is unreadable")
    return Response(picture, mimetype="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
