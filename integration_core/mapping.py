"""The shared mapping engine: local id ⇄ remote id per (connection, entity type), unique both ways.

Customers map per currency: a remote contact often holds one currency, so the same host customer billed in
two currencies has one remote contact per currency, under the entity type ``customer:<CURRENCY>``
(:func:`contact_type`). Inbound events resolve any of them back to the one host customer
(:func:`customer_for_remote`). Rows of the plain ``customer`` type (links made by inbound events, and links
from before per-currency contacts) still resolve inbound; outbound uses the per-currency ones.

Every function takes an open SQLAlchemy connection so a mapping is written in the same transaction as
the change that depends on it (completing an outbox task, applying an inbox event).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .context import Mappings
from .errors import IntegrationError
from .store.schema import entity_mappings, utcnow

CUSTOMER = "customer"
INVOICE = "invoice"
PAYMENT = "payment"
VOID = "void"  # an outbox task kind only: a void is never mapped


def contact_type(currency: str) -> str:
    """The entity type of the remote contact holding a customer's invoices in ``currency``."""
    return f"{CUSTOMER}:{currency.strip().upper()}"


def fingerprint(data: Any) -> str:
    """A stable hash of JSON-like local data (what was last sent to the remote record)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class MappingConflict(IntegrationError):
    """A link would map one id to two different ids: the store refuses rather than corrupt the mapping."""


# Built once with bound parameters: a lookup then costs no statement construction or cache-key work.
_m = entity_mappings.c
_REMOTE_ID = sa.select(_m.remote_id).where(
    _m.connection_id == sa.bindparam("cid"), _m.entity_type == sa.bindparam("etype"), _m.local_id == sa.bindparam("id")
)
_LOCAL_ID = sa.select(_m.local_id).where(
    _m.connection_id == sa.bindparam("cid"), _m.entity_type == sa.bindparam("etype"), _m.remote_id == sa.bindparam("id")
)


def remote_id(conn: sa.Connection, connection_id: str, entity_type: str, local_id: str) -> str | None:
    return conn.execute(_REMOTE_ID, {"cid": connection_id, "etype": entity_type, "id": local_id}).scalar_one_or_none()


def local_id(conn: sa.Connection, connection_id: str, entity_type: str, remote_id_: str) -> str | None:
    return conn.execute(_LOCAL_ID, {"cid": connection_id, "etype": entity_type, "id": remote_id_}).scalar_one_or_none()


def customer_for_remote(conn: sa.Connection, connection_id: str, remote_id_: str) -> str | None:
    """The host customer linked to a remote contact, whatever the contact's currency."""
    m = entity_mappings.c
    return conn.execute(
        sa.select(m.local_id).where(
            m.connection_id == connection_id, m.remote_id == remote_id_,
            sa.or_(m.entity_type == CUSTOMER, m.entity_type.like(f"{CUSTOMER}:%")),
        ).order_by(m.id).limit(1)
    ).scalar_one_or_none()


def remote_and_fingerprint(
    conn: sa.Connection, connection_id: str, entity_type: str, local_id_: str
) -> tuple[str | None, str | None]:
    m = entity_mappings.c
    row = conn.execute(
        sa.select(m.remote_id, m.fingerprint).where(
            m.connection_id == connection_id, m.entity_type == entity_type, m.local_id == local_id_
        )
    ).first()
    return (row.remote_id, row.fingerprint) if row is not None else (None, None)


def set_fingerprint(conn: sa.Connection, connection_id: str, entity_type: str, local: str, value: str) -> None:
    m = entity_mappings.c
    conn.execute(
        entity_mappings.update()
        .where(m.connection_id == connection_id, m.entity_type == entity_type, m.local_id == local)
        .values(fingerprint=value)
    )


def link(conn: sa.Connection, connection_id: str, entity_type: str, local: str, remote: str,
         fingerprint: str | None = None) -> None:
    """Record ``local ⇄ remote``. Idempotent for the same pair; a conflicting pair raises ``MappingConflict``.

    The unique constraints on both directions are the final guard: two workers racing to link
    different pairs cannot both succeed.
    """
    existing_remote = remote_id(conn, connection_id, entity_type, local)
    if existing_remote == remote:
        if fingerprint is not None:
            set_fingerprint(conn, connection_id, entity_type, local, fingerprint)
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
                    fingerprint=fingerprint,
                )
            )
    except sa.exc.IntegrityError as exc:
        raise MappingConflict(f"{entity_type} {local!r} ⇄ {remote!r} conflicts with a concurrent link") from exc


_NEW_LINK = {
    "sqlite": sqlite_insert(entity_mappings).on_conflict_do_nothing().returning(_m.id),
    "postgresql": pg_insert(entity_mappings).on_conflict_do_nothing().returning(_m.id),
}


def link_new(conn: sa.Connection, connection_id: str, entity_type: str, local: str, remote: str,
             fingerprint: str | None = None) -> None:
    """:func:`link` in one statement when neither id is linked yet (a record's first link, the usual case);
    else as :func:`link`: nothing for the same pair, ``MappingConflict`` for another."""
    insert = _NEW_LINK.get(conn.dialect.name)
    if insert is not None:
        values = {"connection_id": connection_id, "entity_type": entity_type, "local_id": local,
                  "remote_id": remote, "created_at": utcnow(), "fingerprint": fingerprint}
        if conn.execute(insert, values).first() is not None:
            return
    link(conn, connection_id, entity_type, local, remote, fingerprint)


def unlink(conn: sa.Connection, connection_id: str, entity_type: str, local: str) -> bool:
    m = entity_mappings.c
    result = conn.execute(
        entity_mappings.delete().where(
            m.connection_id == connection_id, m.entity_type == entity_type, m.local_id == local
        )
    )
    return result.rowcount > 0


def provider_mappings(engine: sa.Engine, connection_id: str) -> Mappings:
    """The ``ctx.mappings`` of a provider: its own links (e.g. product code -> remote item) in this table."""

    def get(entity_type: str, local: str) -> str | None:
        with engine.connect() as db:
            return remote_id(db, connection_id, entity_type, local)

    def put(entity_type: str, local: str, remote: str) -> None:
        with engine.begin() as db:  # a different earlier link (the remote record was replaced) gives way
            if remote_id(db, connection_id, entity_type, local) not in (None, remote):
                unlink(db, connection_id, entity_type, local)
            try:
                link(db, connection_id, entity_type, local, remote)
            except MappingConflict:  # the remote is linked to another local id: keep the existing link
                pass

    return Mappings(get, put)
