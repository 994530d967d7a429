"""Which C1 frames to annotate first, from what the store already knows, in a few indexed queries.

Only C1 recordings labelled `before` (what the recorder records C1 as) are considered: the nightly
manifest uses masks on those only, and a mask makes its whole recording evaluation footage, never
trained on (`edge.nightly.manifests.build_manifest`). The ranking, as the Annotate page states it:

1. Spread: one frame per recording per round, so the first suggestions cover as many recordings
   as there are; within a round, recordings that have no mask yet come before those that have,
   and recordings are taken in an order that spreads them over the recorded period (the middle
   one first, then the quarters, and so on).
2. Inside a recording, a frame where the live model planned a removal (a `removal_commands` row
   carries the capture time of the C1 frame the object was first seen in, the same clock the
   recorder stores per frame): a mask there checks the model's own claim. Without one, the frame
   in the middle of the longest stretch without a mask.

What it does not use: the removal-based object check's per-object verdicts (the store does not
keep them; the nightly run computes them on held-out footage and keeps only the figures), and no
model runs here, so "where the live model and the object check disagree" is not part of the rank.
Only the newest `RECORDINGS` C1 recordings and the newest `COMMANDS` live commands are read.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from edge.store.frame_store import FrameStore, utc_now
from edge.store.models import Frame, Mask, Recording, RemovalCommand

RECORDINGS = 200  # newest C1 recordings considered
COMMANDS = 2000  # newest live removal commands considered
MATCH_NS = 500_000_000  # a command's capture time matches a frame within half a second
LIVE_STATUSES = ("recording", "closed", "interrupted")
GAPS_TRIED = 8  # stretches of a recording tried per pick before it counts as done


@dataclass(frozen=True)
class Suggestion:
    frame_id: int
    recording_id: int
    seq: int
    capture_utc: datetime
    reason: str


@dataclass
class _Candidate:
    recording: Recording
    masked: int  # masks it had before any suggestion
    taken: list[int]  # seqs masked or already suggested, sorted
    commands: deque[int]  # capture_ns of live commands in its time, spread order
    seq_range: tuple[int, int] | None = None
    done: bool = False
    picked: list[Suggestion] = field(default_factory=list)


def spread_order(count: int) -> list[int]:
    """0..count-1 so that every prefix is spread evenly: the middle, then the quarters, ..."""
    order, spans = [], deque([(0, count - 1)])
    while spans:
        low, high = spans.popleft()
        if low > high:
            continue
        middle = (low + high) // 2
        order.append(middle)
        spans.extend(((low, middle - 1), (middle + 1, high)))
    return order


def suggest_frames(store: FrameStore, limit: int = 12) -> list[Suggestion]:
    """Up to `limit` C1 frames without a mask, the most worth annotating first (see the module doc)."""
    with store.session() as session:
        candidates = _candidates(session)
        suggestions: list[Suggestion] = []
        while len(suggestions) < limit and any(not c.done for c in candidates):
            for candidate in candidates:
                if len(suggestions) >= limit:
                    break
                if candidate.done:
                    continue
                pick = _next_pick(session, candidate)
                if pick is None:
                    candidate.done = True
                else:
                    suggestions.append(pick)
    return suggestions


def _candidates(session) -> list[_Candidate]:
    recordings = list(
        session.scalars(
            select(Recording)
            .where(
                Recording.camera == "c1",
                Recording.label == "before",  # the nightly loop evaluates masks of these only
                Recording.frame_count > 0,
                Recording.status.in_(LIVE_STATUSES),
            )
            .order_by(Recording.id.desc())
            .limit(RECORDINGS)
        )
    )
    if not recordings:
        return []
    recordings.sort(key=lambda r: r.started_utc)
    ids = [r.id for r in recordings]
    masked: dict[int, list[int]] = {}
    for recording_id, seq in session.execute(
        select(Frame.recording_id, Frame.seq)
        .join(Mask, Mask.frame_id == Frame.id)
        .where(Frame.recording_id.in_(ids))
    ):
        masked.setdefault(recording_id, []).append(seq)
    commands = _commands_by_recording(session, recordings)
    candidates = [
        _Candidate(
            recording,
            len(masked.get(recording.id, [])),
            sorted(masked.get(recording.id, [])),
            deque(commands.get(recording.id, [])),
        )
        for recording in (recordings[i] for i in spread_order(len(recordings)))
    ]
    # a stable sort keeps the spread order inside each group
    candidates.sort(key=lambda c: (c.masked > 0, not c.commands))
    return candidates


def _commands_by_recording(session, recordings: list[Recording]) -> dict[int, list[int]]:
    """Capture times of the live path's removal commands, by the camera recording that ran then
    (imported footage has no live commands: its recording time is the import's)."""
    recorded = [r for r in recordings if not r.source.startswith("import:")]
    if not recorded:
        return {}
    since = min(r.started_utc for r in recorded)
    rows = session.execute(
        select(RemovalCommand.capture_ns, RemovalCommand.created_utc, RemovalCommand.detail)
        .where(RemovalCommand.created_utc >= since, RemovalCommand.capture_ns.is_not(None))
        .order_by(RemovalCommand.id.desc())
        .limit(COMMANDS)
    ).all()
    starts = [_aware(r.started_utc) for r in recorded]
    now = utc_now()
    found: dict[int, list[int]] = {}
    for capture_ns, created, detail in rows:
        if isinstance(detail, dict) and detail.get("kind"):  # a test fire, not the model's claim
            continue
        created = _aware(created)
        index = bisect.bisect_right(starts, created) - 1
        if index < 0:
            continue
        recording = recorded[index]
        if created <= _aware(recording.ended_utc or now):
            found.setdefault(recording.id, []).append(capture_ns)
    spread: dict[int, list[int]] = {}
    for recording_id, times in found.items():
        distinct = sorted(set(times))
        spread[recording_id] = [distinct[i] for i in spread_order(len(distinct))]
    return spread


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=utc_now().tzinfo)


def _next_pick(session, candidate: _Candidate) -> Suggestion | None:
    recording = candidate.recording
    while candidate.commands:
        frame = _frame_at_capture(session, recording, candidate.commands.popleft())
        if frame is not None and frame.seq not in candidate.taken:
            return _take(candidate, frame, "the live model planned a removal of an object first seen here")
    if candidate.seq_range is None:
        low, high = session.execute(
            select(func.min(Frame.seq), func.max(Frame.seq)).where(Frame.recording_id == recording.id)
        ).one()
        if low is None:
            return None
        candidate.seq_range = (low, high)
    low, high = candidate.seq_range
    gaps = sorted(_gaps(candidate.taken, low, high), key=lambda gap: gap[1] - gap[0], reverse=True)
    for gap_low, gap_high in gaps[:GAPS_TRIED]:  # a gap can hold only masked or evicted frames
        frame = _free_frame(session, recording.id, gap_low, gap_high)
        if frame is not None:
            if candidate.masked:
                masks = f"{candidate.masked} mask" + ("s" if candidate.masked > 1 else "")
                where = f"has {masks}; this frame is in its longest stretch without one"
            else:
                where = "has no mask yet"
            return _take(candidate, frame, f"recording {recording.id} {where}")
    return None


def _gaps(taken: list[int], low: int, high: int) -> list[tuple[int, int]]:
    """The inclusive seq ranges of [low, high] that no mask or suggestion holds."""
    gaps, start = [], low
    for seq in taken:
        if seq > high:
            break
        if seq >= start:
            if seq > start:
                gaps.append((start, seq - 1))
            start = seq + 1
    if start <= high:
        gaps.append((start, high))
    return gaps


def _free_frame(session, recording_id: int, low: int, high: int):
    """The unmasked, present frame nearest the middle of [low, high] (the seq index does the work)."""
    middle = (low + high) // 2
    free = (Frame.recording_id == recording_id, Frame.missing.is_(False), ~Frame.mask.has())
    columns = (Frame.id, Frame.seq, Frame.capture_utc)
    after = session.execute(
        select(*columns).where(*free, Frame.seq >= middle, Frame.seq <= high).order_by(Frame.seq).limit(1)
    ).first()
    if after is not None:
        return after
    return session.execute(
        select(*columns)
        .where(*free, Frame.seq >= low, Frame.seq < middle)
        .order_by(Frame.seq.desc())
        .limit(1)
    ).first()


def _frame_at_capture(session, recording: Recording, capture_ns: int):
    """The recording's frame captured at `capture_ns` (nearest within MATCH_NS), found among the
    frames around where its time puts it, so no query scans a whole recording."""
    first = session.execute(
        select(Frame.seq, Frame.capture_ns)
        .where(Frame.recording_id == recording.id, Frame.capture_ns.is_not(None))
        .order_by(Frame.seq)
        .limit(1)
    ).first()
    if first is None or recording.fps is None or recording.fps <= 0:
        return None
    around = first.seq + round((capture_ns - first.capture_ns) / 1e9 * recording.fps)
    reach = max(int(recording.fps), 5)
    rows = session.execute(
        select(Frame.id, Frame.seq, Frame.capture_utc, Frame.capture_ns).where(
            Frame.recording_id == recording.id,
            Frame.missing.is_(False),
            ~Frame.mask.has(),
            Frame.seq.between(around - reach, around + reach),
            Frame.capture_ns.is_not(None),
        )
    ).all()
    nearest = min(rows, key=lambda row: abs(row.capture_ns - capture_ns), default=None)
    if nearest is None or abs(nearest.capture_ns - capture_ns) > MATCH_NS:
        return None
    return nearest


def _take(candidate: _Candidate, frame, reason: str) -> Suggestion:
    bisect.insort(candidate.taken, frame.seq)
    pick = Suggestion(frame.id, candidate.recording.id, frame.seq, frame.capture_utc, reason)
    candidate.picked.append(pick)
    return pick
