"""The operator console: its logins, and who did each audited action.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("actor", sa.String(200), nullable=True))
    op.create_table(
        "console_operators",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=True),
        sa.Column("tenant_id", sa.String(200), nullable=True),
        sa.Column("one_time", sa.Boolean(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_console_operators")),
    )


def downgrade() -> None:
    op.drop_table("console_operators")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("actor")
