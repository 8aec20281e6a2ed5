"""Operator views of the inbox: events newest first, one event with its audit history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import audit
from .errors import NotFoundError
from .store.schema import inbox_events

if TYPE_CHECKING:
    from .hub import Hub


def list_events(
    hub: Hub, *, connection_id: str | None = None, status: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Newest first."""
    c = inbox_events.c
    query = sa.select(inbox_events).order_by(c.id.desc()).limit(limit)
    if connection_id:
        query = query.where(c.connection_id == connection_id)
    if status:
        query = query.where(c.status == status)
    with hub.engine.connect() as db:
        return [_row_dict(r) for r in db.execute(query)]


def get_event(hub: Hub, event_id: int) -> dict[str, Any]:
    """One event with its audit history."""
    with hub.engine.connect() as db:
        row = db.execute(sa.select(inbox_events).where(inbox_events.c.id == event_id)).first()
        if row is None:
            raise NotFoundError(f"no inbox event {event_id}")
        data = _row_dict(row)
        data["history"] = [
            {"at": h.at.isoformat(), "action": h.action, "detail": h.detail}
            for h in audit.history(db, "event", event_id)
        ]
    return data


def _row_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "connection_id": row.connection_id,
        "dedupe_key": row.dedupe_key,
        "kind": row.kind,
        "status": row.status,
        "reason": row.reason,
        "deliveries": row.deliveries,
        "payload": row.payload,
        "received_at": row.received_at.isoformat() if row.received_at else None,
        "last_delivery_at": row.last_delivery_at.isoformat() if row.last_delivery_at else None,
        "applied_at": row.applied_at.isoformat() if row.applied_at else None,
    }


def events_failed_without_host(hub: Hub) -> int:
    """How many events are ``failed`` because the process that received them had no host application."""
    c = inbox_events.c
    query = sa.select(sa.func.count()).where(c.status == "failed", c.reason.like("%no host application%"))
    with hub.engine.connect() as db:
        return int(db.execute(query).scalar_one())
