"""Inbox events remember the remote invoice they are about (applied when it gets linked later).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox_events") as batch:
        batch.add_column(sa.Column("remote_id", sa.String(200), nullable=True))
        batch.create_index("ix_inbox_remote", ["connection_id", "remote_id"])


def downgrade() -> None:
    with op.batch_alter_table("inbox_events") as batch:
        batch.drop_index("ix_inbox_remote")
        batch.drop_column("remote_id")
