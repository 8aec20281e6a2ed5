"""Outbox tasks name the invoice a payment or void depends on (pushed after that invoice).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_tasks") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(200), nullable=True))
        batch.create_index("ix_outbox_parent", ["connection_id", "parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("outbox_tasks") as batch:
        batch.drop_index("ix_outbox_parent")
        batch.drop_column("parent_id")
