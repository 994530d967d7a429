"""Camera health as the store knows it: what `beltcam cameras` prints and the panel will show.

The recorder refreshes each camera's `camera_status` row every commit (about twice a second). A row
that has not been refreshed for a while while not `stopped` means the agent itself is gone (crashed,
killed, host down): the report says so instead of showing a stale "ok".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select

from edge.capture.camera_health import FAILING, FINAL_STATES, PAUSED, STALLED, UNAVAILABLE, CameraCounters
from edge.store.frame_store import FrameStore, as_utc, utc_now
from edge.store.models import CameraEvent, CameraStatus

SILENT_AFTER_S = 10.0
SILENT = "silent"  # not a state the recorder writes: the report's verdict on a stale row
UNHEALTHY_STATES = (STALLED, FAILING, PAUSED, UNAVAILABLE, SILENT)


@dataclass(frozen=True)
class CameraReport:
    camera: str
    source: str
    state: str  # connecting|ok|stalled|failing|paused|stopped|unavailable, or "silent": the agent is gone
    since_utc: datetime
    updated_utc: datetime
    last_frame_utc: datetime | None
    last_error: str | None
    counts: CameraCounters
    paired: int  # C1/C2 pairs this session
    unpaired: int  # this camera's frames the other camera had nothing for


@dataclass(frozen=True)
class CameraEventReport:
    camera: str
    utc: datetime
    state: str
    detail: str | None


def camera_reports(
    store: FrameStore, now: datetime | None = None, silent_after_s: float = SILENT_AFTER_S
) -> list[CameraReport]:
    now = now or utc_now()
    reports = []
    with store.session() as session:
        for row in session.scalars(select(CameraStatus).order_by(CameraStatus.camera)):
            updated = as_utc(row.updated_utc)
            silent = row.state not in FINAL_STATES and (now - updated).total_seconds() > silent_after_s
            reports.append(
                CameraReport(
                    camera=row.camera,
                    source=row.source,
                    state=SILENT if silent else row.state,
                    since_utc=updated if silent else as_utc(row.since_utc),
                    updated_utc=updated,
                    last_frame_utc=as_utc(row.last_frame_utc),
                    last_error=row.last_error,
                    counts=CameraCounters.of(row),
                    paired=row.paired,
                    unpaired=row.unpaired,
                )
            )
    return reports


def camera_events(store: FrameStore, camera: str | None = None, limit: int = 20) -> list[CameraEventReport]:
    """The newest state changes first."""
    query = select(CameraEvent).order_by(CameraEvent.utc.desc(), CameraEvent.id.desc()).limit(limit)
    if camera is not None:
        query = query.where(CameraEvent.camera == camera)
    with store.session() as session:
        return [
            CameraEventReport(event.camera, as_utc(event.utc), event.state, event.detail)
            for event in session.scalars(query)
        ]


def reports_as_json(reports: list[CameraReport], events: list[CameraEventReport]) -> dict:
    """Plain JSON (ISO 8601 UTC times) for monitoring systems and the panel's API."""

    def plain(item) -> dict:
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(item).items()
        }

    return {"cameras": [plain(report) for report in reports], "events": [plain(event) for event in events]}


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "never"


def report_lines(reports: list[CameraReport], events: list[CameraEventReport]) -> list[str]:
    if not reports:
        return ["no camera has reported yet: start `beltcam record` (or `run`)"]
    lines = []
    for report in reports:
        state = "SILENT (the agent stopped reporting)" if report.state == SILENT else report.state
        lines.append(f"{report.camera} [{report.source}]: {state} since {_when(report.since_utc)}")
        counts = report.counts
        lines.append(
            f"    frames {counts.frames}, dropped {counts.dropped}, stalls {counts.stalls}, "
            f"invalid {counts.invalid_frames}, errors {counts.errors}, reconnects {counts.reconnects}; "
            f"last frame {_when(report.last_frame_utc)}"
        )
        lines.append(f"    paired with the other camera {report.paired}, unpaired {report.unpaired}")
        if report.last_error:
            lines.append(f"    last error: {report.last_error}")
    if events:
        lines.append("recent changes:")
        for event in events:
            detail = f": {event.detail}" if event.detail else ""
            lines.append(f"  {_when(event.utc)} {event.camera} {event.state}{detail}")
    return lines
