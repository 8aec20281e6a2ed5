"""Alembic environment: runs against the engine the core hands over (no alembic.ini needed)."""

from alembic import context

from integration_core.store.schema import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
