"""depth images per frame; camera status and events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 07:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.add_column(sa.Column("depth_path", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("depth_bytes", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.create_unique_constraint("uq_frames_depth_path", ["depth_path"])
    op.create_table(
        "camera_status",
        sa.Column("camera", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=512), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_frame_utc", sa.DateTime(timezone=True), nullable=True),
        sa.Column("session", sa.String(length=64), nullable=True),
        sa.Column("frames", sa.BigInteger(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.Column("stalls", sa.Integer(), nullable=False),
        sa.Column("invalid_frames", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("reconnects", sa.Integer(), nullable=False),
        sa.Column("paired", sa.BigInteger(), nullable=False),
        sa.Column("unpaired", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("camera"),
    )
    op.create_table(
        "camera_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("camera", sa.String(length=8), nullable=False),
        sa.Column("utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("camera_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_camera_events_camera"), ["camera"], unique=False)
        batch_op.create_index(batch_op.f("ix_camera_events_utc"), ["utc"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("camera_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_camera_events_utc"))
        batch_op.drop_index(batch_op.f("ix_camera_events_camera"))
    op.drop_table("camera_events")
    op.drop_table("camera_status")
    with op.batch_alter_table("frames", schema=None) as batch_op:
        batch_op.drop_constraint("uq_frames_depth_path", type_="unique")
        batch_op.drop_column("depth_bytes")
        batch_op.drop_column("depth_path")
