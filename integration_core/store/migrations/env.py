"""Alembic environment: runs against the engine (or open connection) the core hands over; no alembic.ini."""

from alembic import context

from integration_core.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is not None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with context.config.attributes["engine"].begin() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()
