"""Durable state: SQLAlchemy tables, engine set-up and Alembic migrations."""

from .db import create_engine_for, upgrade
from .schema import audit_log, connections, entity_mappings, inbox_events, metadata, oauth_states, outbox_tasks

__all__ = [
    "audit_log",
    "connections",
    "create_engine_for",
    "entity_mappings",
    "inbox_events",
    "metadata",
    "oauth_states",
    "outbox_tasks",
    "upgrade",
]
