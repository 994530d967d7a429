"""The store's tables (SQLAlchemy 2.0 typed ORM). Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Recording(Base):
    """One camera's continuous stretch of frames (a segment of a recording session, or one import)."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    camera: Mapped[str] = mapped_column(String(8), index=True)
    label: Mapped[str] = mapped_column(String(16))  # before | after | unlabeled
    source: Mapped[str] = mapped_column(String(512))  # camera kind and address, or the imported path
    status: Mapped[str] = mapped_column(
        String(16), default="recording"
    )  # recording|importing|closed|interrupted|evicted
    started_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_utc: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    evicted_utc: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    session: Mapped[str | None] = mapped_column(String(64), index=True)  # groups the C1/C2 segments
    image_format: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int] = mapped_column(Integer, default=0)
    dropped_frames: Mapped[int] = mapped_column(Integer, default=0)  # queue full: never written
    source_errors: Mapped[int] = mapped_column(Integer, default=0)
    reconnects: Mapped[int] = mapped_column(Integer, default=0)
    paired_frames: Mapped[int] = mapped_column(Integer, default=0)
    evicted_frames: Mapped[int] = mapped_column(Integer, default=0)  # removed by the disk quota

    frames: Mapped[list[Frame]] = relationship(back_populates="recording", passive_deletes=True)


class Frame(Base):
    __tablename__ = "frames"
    __table_args__ = (UniqueConstraint("recording_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(512), unique=True)  # relative to the data directory
    bytes: Mapped[int] = mapped_column(BigInteger)
    capture_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    capture_ns: Mapped[int | None] = mapped_column(BigInteger)  # monotonic, meaningful within a session
    capture_estimated: Mapped[bool] = mapped_column(Boolean, default=False)  # repaired from an orphan file
    missing: Mapped[bool] = mapped_column(Boolean, default=False)  # file gone, found by db check
    pair_frame_id: Mapped[int | None] = mapped_column(Integer)  # the other camera's frame, by timestamp
    depth_path: Mapped[str | None] = mapped_column(String(512), unique=True)  # 16-bit PNG, mm, aligned
    depth_bytes: Mapped[int] = mapped_column(BigInteger, default=0)

    recording: Mapped[Recording] = relationship(back_populates="frames")
    mask: Mapped[Mask | None] = relationship(back_populates="frame", passive_deletes=True)


class Mask(Base):
    """Ground truth for one frame: a PNG label map (0 background, 1 illegal, 2 legal)."""

    __tablename__ = "masks"

    id: Mapped[int] = mapped_column(primary_key=True)
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"), unique=True)
    path: Mapped[str] = mapped_column(String(512), unique=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    origin: Mapped[str] = mapped_column(String(16))  # import | panel | simulator
    objects: Mapped[list | None] = mapped_column(JSON)  # per-object truth, when known (simulator)
    created_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    frame: Mapped[Frame] = relationship(back_populates="mask")


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    method: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # running | paused | interrupted | finished | failed
    run_dir: Mapped[str] = mapped_column(String(512))
    started_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_utc: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    metrics: Mapped[dict | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(String(512))  # why it paused, was interrupted or failed
    origin: Mapped[str] = mapped_column(String(16), default="manual")  # manual | nightly | starter


class TrainingRunRecording(Base):
    """Which recordings a run was trained on: retention keeps those of the live model."""

    __tablename__ = "training_run_recordings"

    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), primary_key=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True
    )


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id", ondelete="SET NULL"))
    path: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), index=True)  # candidate | live | retired | rejected
    created_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    metrics: Mapped[dict | None] = mapped_column(JSON)  # the run's, and the gate's under "gate"
    reason: Mapped[str | None] = mapped_column(String(512))  # why rejected, retired or promoted
    promoted_utc: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # last time it went live
    files_removed: Mapped[bool] = mapped_column(Boolean, default=False)  # retired beyond the kept ones

    # the database itself refuses a second live model, whoever writes
    __table_args__ = (
        Index("uq_models_one_live", "status", unique=True, sqlite_where=text("status = 'live'"),
              postgresql_where=text("status = 'live'")),
    )  # fmt: skip


class Calibration(Base):
    __tablename__ = "calibrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(512))
    created_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    content: Mapped[dict] = mapped_column(JSON)


class RemovalCommand(Base):
    __tablename__ = "removal_commands"

    id: Mapped[int] = mapped_column(primary_key=True)
    object_id: Mapped[int] = mapped_column(BigInteger, index=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    fire_time_ns: Mapped[int] = mapped_column(BigInteger)
    channels: Mapped[list] = mapped_column(JSON)
    pulse_ms: Mapped[float] = mapped_column(Float)
    capture_ns: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # planned | sent | acked | late | dropped | dry_run
    created_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detail: Mapped[dict | None] = mapped_column(JSON)


class CameraStatus(Base):
    """Each camera's health right now, as the recorder last saw it: what the panel shows."""

    __tablename__ = "camera_status"

    camera: Mapped[str] = mapped_column(String(8), primary_key=True)
    source: Mapped[str] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(16))  # connecting | ok | stalled | failing | stopped
    since_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # in this state since
    updated_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the recorder's last word
    last_frame_utc: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    session: Mapped[str | None] = mapped_column(String(64))
    frames: Mapped[int] = mapped_column(BigInteger, default=0)  # counters of this recording session
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    stalls: Mapped[int] = mapped_column(Integer, default=0)
    invalid_frames: Mapped[int] = mapped_column(Integer, default=0)  # black, frozen, wrong size
    errors: Mapped[int] = mapped_column(Integer, default=0)  # other failures: disconnects, open errors
    reconnects: Mapped[int] = mapped_column(Integer, default=0)
    paired: Mapped[int] = mapped_column(BigInteger, default=0)  # frames matched with the other camera's
    unpaired: Mapped[int] = mapped_column(BigInteger, default=0)  # the other camera had none in tolerance
    last_error: Mapped[str | None] = mapped_column(String(512))


class CameraEvent(Base):
    """A change of a camera's state (connected, stalled, failing, recovered, stopped), kept as history."""

    __tablename__ = "camera_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    camera: Mapped[str] = mapped_column(String(8), index=True)
    utc: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(512))


class User(Base):
    """Who may use the panel. Only an argon2 hash of the password is kept; `role` is viewer (looks)
    or technician (also acts: promote, test-fire, settings, annotation)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))  # viewer | technician
    created_utc: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_login_utc: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
