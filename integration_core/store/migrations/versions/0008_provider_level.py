"""Provider-level webhooks and reconciliation: a connection's account key (the remote account a provider-level
webhook names) and reconciliation cursor, the provider-level settings and secrets, and the events of a
provider-level webhook that named no connection (acknowledged, stored as ignored with the reason).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("account_key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("reconcile_cursor", sa.Text, nullable=True))
        batch.add_column(sa.Column("reconciled_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_connections_account", ["provider", "account_key"])
    op.create_table(
        "provider_configs",
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("secrets", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("provider", name="pk_provider_configs"),
    )
    op.create_table(
        "unrouted_events",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("account_key", sa.String(200), nullable=False),
        sa.Column("dedupe_key", sa.String(300), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("last_delivery_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_unrouted_events"),
        sa.UniqueConstraint("provider", "dedupe_key", name="uq_unrouted_dedupe"),
    )


def downgrade() -> None:
    op.drop_table("unrouted_events")
    op.drop_table("provider_configs")
    with op.batch_alter_table("connections") as batch:
        batch.drop_index("ix_connections_account")
        batch.drop_column("reconciled_at")
        batch.drop_column("reconcile_cursor")
        batch.drop_column("account_key")
