"""The frame store: image files under the data directory, indexed in a SQL database.

The index is the only truth about what exists. Files are always written before the rows that name
them, so a crash leaves at worst files the index does not know yet, which `db check --repair` adopts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edge.config import StorageConfig
from edge.store.database import make_engine, shrink_index, upgrade_schema
from edge.store.files import atomic_write
from edge.store.models import Frame, Mask, Recording

FRAMES_DIR = "frames"
MASKS_DIR = "masks"
DEPTH_DIR = "depth"


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@dataclass(frozen=True)
class WrittenFile:
    path: str  # relative to the data directory
    bytes: int


class FrameStore:
    def __init__(self, data_dir: Path, database_url: str) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(database_url)
        upgrade_schema(self.engine, existing=False)  # a new database is made; an old one is not migrated
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_config(cls, storage: StorageConfig) -> FrameStore:
        return cls(storage.data_dir, storage.resolved_database_url())

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends normally, rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def shrink_index(self) -> None:
        """Give the index's spare WAL space back to the disk (see `database.shrink_index`)."""
        shrink_index(self.engine)

    # --- paths --------------------------------------------------------------------------------
    def absolute(self, relative: str) -> Path:
        return self.data_dir / relative

    @staticmethod
    def frame_relpath(camera: str, recording_id: int, seq: int, image_format: str) -> str:
        return f"{FRAMES_DIR}/{camera}/{recording_id}/{seq:08d}.{image_format}"

    @staticmethod
    def mask_relpath(camera: str, recording_id: int, seq: int) -> str:
        return f"{MASKS_DIR}/{camera}/{recording_id}/{seq:08d}.png"

    @staticmethod
    def depth_relpath(camera: str, recording_id: int, seq: int) -> str:
        return f"{DEPTH_DIR}/{camera}/{recording_id}/{seq:08d}.png"

    def recording_dir(self, camera: str, recording_id: int) -> Path:
        return self.data_dir / FRAMES_DIR / camera / str(recording_id)

    # --- writing ------------------------------------------------------------------------------
    def begin_recording(
        self,
        camera: str,
        label: str,
        source: str,
        image_format: str,
        size: tuple[int, int],
        fps: float | None,
        session_name: str | None = None,
        status: str = "recording",
    ) -> int:
        with self.session() as session:
            recording = Recording(
                camera=camera,
                label=label,
                source=source,
                status=status,
                started_utc=utc_now(),
                session=session_name,
                image_format=image_format,
                width=size[0],
                height=size[1],
                fps=fps,
            )
            session.add(recording)
            session.flush()
            return recording.id

    def write_file(self, relative: str, data: bytes) -> WrittenFile:
        atomic_write(self.absolute(relative), data)
        return WrittenFile(relative, len(data))

    def close_recording(self, recording_id: int, status: str = "closed") -> None:
        with self.session() as session:
            recording = session.get(Recording, recording_id)
            recording.status = status
            recording.ended_utc = utc_now()
            recording.frame_count = session.scalar(
                select(func.count(Frame.id)).where(Frame.recording_id == recording_id)
            )

    # --- reading ------------------------------------------------------------------------------
    def usage_bytes(self) -> int:
        """Bytes of all indexed frame, depth and mask files: what the disk quota counts."""
        with self.session() as session:
            frames = session.scalar(
                select(func.coalesce(func.sum(Frame.bytes), 0)).where(Frame.missing.is_(False))
            )
            depth = session.scalar(select(func.coalesce(func.sum(Frame.depth_bytes), 0)))
            masks = session.scalar(select(func.coalesce(func.sum(Mask.bytes), 0)))
        return int(frames) + int(depth) + int(masks)

    def recordings(self) -> list[Recording]:
        with self.session() as session:
            return list(session.scalars(select(Recording).order_by(Recording.id)))
