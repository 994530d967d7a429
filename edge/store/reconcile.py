"""`beltcam db check`: compare the files on disk with the index, both ways, and repair what is safe.

Safe repairs: index orphan frame files of a known recording (capture time estimated from the
recording's frame rate, flagged `capture_estimated`), mark indexed frames whose file is gone as
`missing` (rows are kept: they record that the frame existed), delete temp files of interrupted
writes (never a complete frame), and close recordings left open by a crash as `interrupted`. Depth
images follow their frames: an unindexed depth file is attached to its frame (same recording and
number), and a depth file that is gone is dropped from its frame's row.
Orphan files of unknown recordings are reported and left alone: nothing is deleted silently.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func, select

from edge.store.files import TEMP_SUFFIX
from edge.store.frame_store import DEPTH_DIR, FRAMES_DIR, MASKS_DIR, FrameStore, utc_now
from edge.store.models import Frame, Mask, Recording

IMPORTING = "importing"  # an import's recording until its last row is committed
_FRAME_NAME = re.compile(r"^(\d+)\.(jpg|png)$")


@dataclass
class CheckReport:
    missing_frames: list[str] = field(default_factory=list)  # indexed, file gone (not yet marked)
    missing_masks: list[str] = field(default_factory=list)
    missing_depth: list[str] = field(default_factory=list)
    orphan_frames: list[str] = field(default_factory=list)  # file of a known recording, not indexed
    orphan_depth: list[str] = field(default_factory=list)  # depth file of a known recording, not indexed
    unknown_files: list[str] = field(default_factory=list)  # files no recording explains
    temp_files: list[str] = field(default_factory=list)
    open_recordings: list[int] = field(default_factory=list)  # status 'recording' (crash or running)
    unfinished_imports: list[int] = field(default_factory=list)  # status 'importing': rolled back
    orphan_masks: list[str] = field(default_factory=list)  # mask files of known recordings, no row
    count_mismatches: list[int] = field(default_factory=list)
    already_missing: int = 0
    indexed_frames: int = 0

    @property
    def clean(self) -> bool:
        return not (
            self.missing_frames
            or self.missing_masks
            or self.missing_depth
            or self.orphan_frames
            or self.orphan_depth
            or self.unknown_files
            or self.temp_files
            or self.open_recordings
            or self.unfinished_imports
            or self.orphan_masks
            or self.count_mismatches
        )

    def without_work_in_progress(self) -> CheckReport:
        """The report as seen beside a running recorder: its open recordings, the files it has written
        but not indexed yet and its temp files are work in progress, not problems."""
        live = set(self.open_recordings)

        def settled(paths: list[str]) -> list[str]:
            return [p for p in paths if int(p.split("/")[2]) not in live]

        return replace(
            self,
            open_recordings=[],
            temp_files=[],
            orphan_frames=settled(self.orphan_frames),
            orphan_depth=settled(self.orphan_depth),
            orphan_masks=settled(self.orphan_masks),
        )

    def lines(self) -> list[str]:
        out = [f"indexed frames: {self.indexed_frames} ({self.already_missing} marked missing earlier)"]
        for title, items in (
            ("indexed frames whose file is missing", self.missing_frames),
            ("indexed masks whose file is missing", self.missing_masks),
            ("indexed depth images whose file is missing", self.missing_depth),
            ("frame files of known recordings not in the index", self.orphan_frames),
            ("depth files of known recordings not in the index", self.orphan_depth),
            ("files no recording explains (left alone)", self.unknown_files),
            ("temp files of interrupted writes", self.temp_files),
            ("recordings still marked as recording", [str(i) for i in self.open_recordings]),
            ("imports that never finished", [str(i) for i in self.unfinished_imports]),
            ("mask files of known recordings not in the index", self.orphan_masks),
            ("recordings whose frame_count is wrong", [str(i) for i in self.count_mismatches]),
        ):
            if items:
                shown = ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")
                out.append(f"{title}: {shown}")
        out.append("store is clean" if self.clean else "store has problems: run `beltcam db check --repair`")
        return out


def check_store(store: FrameStore) -> CheckReport:
    report = CheckReport()
    with store.session() as session:
        indexed = {row.path: row.missing for row in session.execute(select(Frame.path, Frame.missing))}
        masks = set(session.scalars(select(Mask.path)))
        depth = set(session.scalars(select(Frame.depth_path).where(Frame.depth_path.is_not(None))))
        recordings = {r.id: r for r in session.scalars(select(Recording))}
        counts = dict(
            session.execute(
                select(Frame.recording_id, func.count(Frame.id)).group_by(Frame.recording_id)
            ).all()
        )
    report.indexed_frames = len(indexed)
    report.already_missing = sum(indexed.values())
    report.missing_frames = sorted(
        p for p, missing in indexed.items() if not missing and not store.absolute(p).is_file()
    )
    report.missing_masks = sorted(p for p in masks if not store.absolute(p).is_file())
    report.missing_depth = sorted(p for p in depth if not store.absolute(p).is_file())
    report.open_recordings = sorted(i for i, r in recordings.items() if r.status == "recording")
    report.unfinished_imports = sorted(i for i, r in recordings.items() if r.status == IMPORTING)
    report.count_mismatches = sorted(
        i
        for i, r in recordings.items()
        if r.status not in ("recording", IMPORTING) and r.frame_count != counts.get(i, 0)
    )
    orphans = {
        FRAMES_DIR: report.orphan_frames,
        DEPTH_DIR: report.orphan_depth,
        MASKS_DIR: report.orphan_masks,
    }
    for top in (FRAMES_DIR, MASKS_DIR, DEPTH_DIR):
        root = store.data_dir / top
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if not path.is_file():
                continue
            relative = path.relative_to(store.data_dir).as_posix()
            if path.name.endswith(TEMP_SUFFIX):
                report.temp_files.append(relative)
            elif relative in indexed or relative in masks or relative in depth:
                continue
            elif _recording_of(relative, recordings) in report.unfinished_imports:
                continue  # rolled back as a whole, files and all
            elif _known_recording(relative, recordings):
                orphans[top].append(relative)
            else:
                report.unknown_files.append(relative)
    return report


def _recording_of(relative: str, recordings: dict[int, Recording]) -> int | None:
    parts = relative.split("/")
    return int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else None


def _known_recording(relative: str, recordings: dict[int, Recording]) -> bool:
    parts = relative.split("/")
    if len(parts) != 4 or not parts[2].isdigit() or not _FRAME_NAME.match(parts[3]):
        return False
    recording = recordings.get(int(parts[2]))
    return recording is not None and recording.camera == parts[1] and recording.status != "evicted"


def repair_store(store: FrameStore, report: CheckReport) -> list[str]:
    """Apply the safe repairs for `report`; returns one line per action taken."""
    actions = []
    if report.unfinished_imports:
        _roll_back_imports(store, report.unfinished_imports)
        actions.append(f"rolled back {len(report.unfinished_imports)} imports that never finished")
    for relative in report.temp_files:
        store.absolute(relative).unlink(missing_ok=True)
    if report.temp_files:
        actions.append(f"deleted {len(report.temp_files)} temp files of interrupted writes")
    with store.session() as session:
        if report.missing_frames:
            for frame in session.scalars(select(Frame).where(Frame.path.in_(report.missing_frames))):
                frame.missing = True
            actions.append(f"marked {len(report.missing_frames)} frames as missing")
        if report.missing_masks:
            for mask in session.scalars(select(Mask).where(Mask.path.in_(report.missing_masks))):
                session.delete(mask)  # a mask without its file is no ground truth at all
            actions.append(f"removed {len(report.missing_masks)} mask rows whose PNG is gone")
        if report.missing_depth:
            for frame in session.scalars(select(Frame).where(Frame.depth_path.in_(report.missing_depth))):
                frame.depth_path, frame.depth_bytes = None, 0
            actions.append(f"dropped {len(report.missing_depth)} depth images whose PNG is gone")
        adopted = _adopt_orphans(session, report.orphan_frames, store)
        if adopted:
            actions.append(f"indexed {adopted} orphan frame files (capture time estimated)")
        session.flush()
        attached = _attach_orphan_depth(session, report.orphan_depth, store)
        if attached:
            actions.append(f"attached {attached} orphan depth files to their frames")
        if len(report.orphan_depth) > attached:
            actions.append(f"left {len(report.orphan_depth) - attached} depth files without a frame alone")
        masks_attached = _attach_orphan_masks(session, report.orphan_masks, store)
        if masks_attached:
            actions.append(f"attached {masks_attached} orphan mask files to their frames")
        if len(report.orphan_masks) > masks_attached:
            gone = len(report.orphan_masks) - masks_attached
            actions.append(f"deleted {gone} mask files whose frame was never written")
        for recording_id in report.open_recordings:
            recording = session.get(Recording, recording_id)
            recording.status = "interrupted"
            recording.ended_utc = recording.ended_utc or utc_now()
        if report.open_recordings:
            actions.append(f"closed {len(report.open_recordings)} recordings left open as interrupted")
        session.flush()
        for recording in session.scalars(select(Recording)):
            recording.frame_count = session.scalar(
                select(func.count(Frame.id)).where(Frame.recording_id == recording.id)
            )
    if report.unknown_files:
        actions.append(f"left {len(report.unknown_files)} unexplained files alone (see the list above)")
    return actions


def _adopt_orphans(session, orphans: list[str], store: FrameStore) -> int:
    for relative in orphans:
        _, _, recording_id, name = relative.split("/")
        seq = int(_FRAME_NAME.match(name).group(1))
        recording = session.get(Recording, int(recording_id))
        before = session.scalars(
            select(Frame)
            .where(Frame.recording_id == recording.id, Frame.seq < seq, Frame.capture_estimated.is_(False))
            .order_by(Frame.seq.desc())
            .limit(1)
        ).first()
        period = timedelta(seconds=1 / recording.fps) if recording.fps else timedelta(0)
        if before is not None:
            capture_utc = before.capture_utc + period * (seq - before.seq)
        else:
            capture_utc = recording.started_utc + period * seq
        session.add(
            Frame(
                recording_id=recording.id,
                seq=seq,
                path=relative,
                bytes=Path(store.absolute(relative)).stat().st_size,
                capture_utc=capture_utc,
                capture_ns=None,
                capture_estimated=True,
            )
        )
    return len(orphans)


def _frame_of(session, relative: str) -> Frame | None:
    """The indexed frame a depth or mask file belongs to: same recording, same number."""
    _, _, recording_id, name = relative.split("/")
    seq = int(_FRAME_NAME.match(name).group(1))
    return session.scalars(
        select(Frame).where(Frame.recording_id == int(recording_id), Frame.seq == seq)
    ).first()


def _attach_orphan_depth(session, orphans: list[str], store: FrameStore) -> int:
    attached = 0
    for relative in orphans:
        frame = _frame_of(session, relative)
        if frame is not None and frame.depth_path is None:
            frame.depth_path = relative
            frame.depth_bytes = Path(store.absolute(relative)).stat().st_size
            attached += 1
    return attached


def reconcile_at_start(store: FrameStore) -> list[str]:
    """What an agent does before it records (DESIGN.md): check the store and apply the safe repairs,
    so a crash or power cut is mended without anyone running `db check --repair`. Only call it while
    holding the data directory's lock: a recording in progress looks like a crashed one."""
    report = check_store(store)
    return [] if report.clean else repair_store(store, report)


def _attach_orphan_masks(session, orphans: list[str], store: FrameStore) -> int:
    """A mask written just before a crash, its frame indexed (or adopted) but not the mask: the
    frame stays ground truth (held out of training), not training footage."""
    attached = 0
    for relative in orphans:
        frame = _frame_of(session, relative)
        if frame is None or frame.mask is not None:
            store.absolute(relative).unlink(missing_ok=True)  # ground truth of no frame: nothing to keep
            continue
        session.add(
            Mask(
                frame_id=frame.id,
                path=relative,
                bytes=Path(store.absolute(relative)).stat().st_size,
                origin="recovered",
                created_utc=utc_now(),
            )
        )
        attached += 1
    return attached


def _roll_back_imports(store: FrameStore, recording_ids: list[int]) -> None:
    """An import is all or nothing: one killed mid-way leaves no frame, mask or row behind."""
    with store.session() as session:
        for recording_id in recording_ids:
            recording = session.get(Recording, recording_id)
            for top in (FRAMES_DIR, MASKS_DIR, DEPTH_DIR):
                shutil.rmtree(store.data_dir / top / recording.camera / str(recording_id), ignore_errors=True)
            frame_ids = select(Frame.id).where(Frame.recording_id == recording_id)
            session.execute(delete(Mask).where(Mask.frame_id.in_(frame_ids)))
            session.execute(delete(Frame).where(Frame.recording_id == recording_id))
            session.delete(recording)
