"""Unrouted provider-level events keep the request they came in (body, method, path, query, headers without
credentials), so an operator can replay one once its connection exists, and when it was last replayed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("unrouted_events") as batch:
        batch.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("request", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("replayed_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_unrouted_events_received_at", ["received_at"])


def downgrade() -> None:
    with op.batch_alter_table("unrouted_events") as batch:
        batch.drop_index("ix_unrouted_events_received_at")
        batch.drop_column("replayed_at")
        batch.drop_column("request")
        batch.drop_column("body")
