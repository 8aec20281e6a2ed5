"""Index connections by (tenant, environment): the lookup of every submit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_connections_tenant_env", "connections", ["tenant_id", "environment_id"])


def downgrade() -> None:
    op.drop_index("ix_connections_tenant_env", table_name="connections")
