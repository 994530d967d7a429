"""model registry: why a model or run ended as it did, when a model went live, one live model at most

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 18:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ONE_LIVE = sa.text("status = 'live'")


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("promoted_utc", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("files_removed", sa.Boolean(), nullable=False, server_default="0"))
    op.create_index(
        "uq_models_one_live",
        "models",
        ["status"],
        unique=True,
        sqlite_where=ONE_LIVE,
        postgresql_where=ONE_LIVE,
    )
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.String(length=512), nullable=True))
        batch_op.add_column(
            sa.Column("origin", sa.String(length=16), nullable=False, server_default="manual")
        )


def downgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_column("origin")
        batch_op.drop_column("reason")
    op.drop_index("uq_models_one_live", table_name="models")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("files_removed")
        batch_op.drop_column("promoted_utc")
        batch_op.drop_column("reason")
