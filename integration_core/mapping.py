"""The shared mapping engine: local id ⇄ remote id per (connection, entity type), unique both ways.

Every function takes an open SQLAlchemy connection so a mapping is written in the same transaction as
the change that depends on it (completing an outbox task, applying an inbox event).
"""

from __future__ import annotations

import sqlalchemy as sa

from .errors import IntegrationError
from .store.schema import entity_mappings, utcnow

CUSTOMER = "customer"
INVOICE = "invoice"
PAYMENT = "payment"
VOID = "void"  # an outbox task kind only: a void is never mapped


class MappingConflict(IntegrationError):
    """A link would map one id to two different ids: the store refuses rather than corrupt the mapping."""


def remote_id(conn: sa.Connection, connection_id: str, entity_type: str, local_id: str) -> str | None:
    m = entity_mappings.c
    return conn.execute(
        sa.select(m.remote_id).where(
            m.connection_id == connection_id, m.entity_type == entity_type, m.local_id == local_id
        )
    ).scalar_one_or_none()


def local_id(conn: sa.Connection, connection_id: str, entity_type: str, remote_id_: str) -> str | None:
    m = entity_mappings.c
    return conn.execute(
        sa.select(m.local_id).where(
            m.connection_id == connection_id, m.entity_type == entity_type, m.remote_id == remote_id_
        )
    ).scalar_one_or_none()


def link(conn: sa.Connection, connection_id: str, entity_type: str, local: str, remote: str) -> None:
    """Record ``local ⇄ remote``. Idempotent for the same pair; a conflicting pair raises ``MappingConflict``.

    The unique constraints on both directions are the final guard: two workers racing to link
    different pairs cannot both succeed.
    """
    existing_remote = remote_id(conn, connection_id, entity_type, local)
    if existing_remote == remote:
        return
    if existing_remote is not None:
        raise MappingConflict(
            f"{entity_type} {local!r} is already linked to remote {existing_remote!r}, not {remote!r}"
        )
    existing_local = local_id(conn, connection_id, entity_type, remote)
    if existing_local is not None:
        raise MappingConflict(f"remote {entity_type} {remote!r} is already linked to local {existing_local!r}")
    try:
        with conn.begin_nested():
            conn.execute(
                entity_mappings.insert().values(
                    connection_id=connection_id,
                    entity_type=entity_type,
                    local_id=local,
                    remote_id=remote,
                    created_at=utcnow(),
                )
            )
    except sa.exc.IntegrityError as exc:
        raise MappingConflict(f"{entity_type} {local!r} ⇄ {remote!r} conflicts with a concurrent link") from exc


def unlink(conn: sa.Connection, connection_id: str, entity_type: str, local: str) -> bool:
    m = entity_mappings.c
    result = conn.execute(
        entity_mappings.delete().where(
            m.connection_id == connection_id, m.entity_type == entity_type, m.local_id == local
        )
    )
    return result.rowcount > 0
