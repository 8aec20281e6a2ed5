"""The shared request budget becomes a sliding-window log with in-flight slots (``rate_state``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("rate_state", sa.Text(), nullable=True))
        batch.drop_column("rate_window_start")
        batch.drop_column("rate_window_count")


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("rate_window_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("rate_window_start", sa.DateTime(), nullable=True))
        batch.drop_column("rate_state")
