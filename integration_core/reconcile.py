"""Reconciliation: catch up what webhooks missed.

For each active connection whose provider implements ``changes_since``, the core asks for the events of
everything changed since the connection's stored cursor (``connections.reconcile_cursor``) and feeds them through
the inbox (:func:`integration_core.inbound.apply`) with the same dedupe keys as the webhook path: a missed webhook
is caught up, and an event already received is a harmless duplicate. The next cursor is stored only after every
event was stored, so a failed run is repeated from the same cursor.

It runs from the Worker every ``IC_RECONCILE_INTERVAL`` seconds per connection (:func:`reconcile_due`; a
conditional update on ``reconciled_at`` claims a connection, so two workers never reconcile it at once) and from
``integration-core connections reconcile ID``. Its requests count against the connection's shared rate window.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from . import audit, inbound
from .errors import ConfigurationError, TransientError
from .models import EVENT_TYPES, ConnectionStatus, Event
from .ratelimit import Budget
from .redact import safe_error
from .store.schema import connections, utcnow

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)
_EVENT_TYPES = tuple(EVENT_TYPES.values())
RECONCILE_COST = 2  # the declared cost of one changes_since call when the provider declares none


@attrs.frozen
class ReconcileResult:
    connection_id: str
    events: int
    counts: dict[str, int]
    cursor: str | None


def reconcile(hub: Hub, connection_id: str) -> ReconcileResult:
    """One reconciliation run of a connection; raises the provider's error (the cursor stays)."""
    ctx = hub.context(connection_id)
    conn = ctx.record
    if conn.status != ConnectionStatus.ACTIVE:
        raise ConfigurationError(f"connection {connection_id} is {conn.status}: only active connections reconcile")
    provider = hub.provider(conn.provider)
    if not provider.implements("changes_since"):
        raise ConfigurationError(f"provider {conn.provider} does not implement changes_since (no reconciliation)")
    with hub.engine.connect() as db:
        cursor = db.execute(sa.select(connections.c.reconcile_cursor).where(connections.c.id == conn.id)).scalar()
    limit = provider.rate_limit(ctx=ctx) if provider.implements("rate_limit") else None
    budget = Budget(hub.engine, conn.id, limit, holder=f"reconcile:{conn.id}",
                    fallback_costs={"changes_since": RECONCILE_COST})
    budget.take("changes_since")  # WindowFull when the shared window has no room: the next run tries again
    ctx.meter = budget.on_request
    try:
        answer = provider.changes_since(ctx=ctx, cursor=cursor)
    finally:
        budget.end_call()
        with hub.engine.begin() as db:
            budget.release_in(db)
    events, next_cursor = _checked(answer)
    outcomes = inbound.apply(hub, conn, events)
    counts = inbound.summarize(outcomes)
    with hub.engine.begin() as db:
        db.execute(connections.update().where(connections.c.id == conn.id)
                   .values(reconcile_cursor=next_cursor, reconciled_at=utcnow()))
        detail = f"{len(events)} event(s) since {cursor or 'the start'}: " + ", ".join(
            f"{k} {v}" for k, v in counts.items() if v and k != "events")
        audit.record(db, "connection", conn.id, "reconciled", detail.rstrip(": "), connection_id=conn.id)
    return ReconcileResult(conn.id, len(events), counts, next_cursor)


def _checked(answer: Any) -> tuple[list[Event], str | None]:
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        raise TransientError("changes_since must return (events, next_cursor)")
    events, next_cursor = list(answer[0]), answer[1]
    if not all(isinstance(e, _EVENT_TYPES) for e in events):
        raise TransientError("changes_since must return normalized events")
    if next_cursor is not None and not isinstance(next_cursor, str):
        raise TransientError("changes_since must return the next cursor as text")
    return events, next_cursor


def reconcile_due(hub: Hub, interval: float, limit: int = 20) -> list[ReconcileResult]:
    """Reconcile the active connections not reconciled for ``interval`` seconds (at most ``limit`` a run).
    A failure is logged and retried after the next interval; it never stops the others."""
    cutoff = utcnow() - dt.timedelta(seconds=interval)
    c = connections.c
    due = sa.or_(c.reconciled_at.is_(None), c.reconciled_at <= cutoff)
    providers = [p for p in hub.plugins.provider_names() if hub.provider(p).implements("changes_since")]
    if not providers:
        return []
    with hub.engine.connect() as db:
        rows = db.execute(sa.select(c.id).where(c.status == ConnectionStatus.ACTIVE, c.provider.in_(providers), due)
                          .order_by(c.reconciled_at.is_not(None), c.reconciled_at).limit(limit)).fetchall()
    results: list[ReconcileResult] = []
    for row in rows:
        with hub.engine.begin() as db:  # claim: another worker that got here first has moved reconciled_at
            claimed = db.execute(connections.update().where(c.id == row.id, due).values(reconciled_at=utcnow()))
        if claimed.rowcount != 1:
            continue
        try:
            results.append(reconcile(hub, row.id))
        except Exception as exc:
            log.warning("reconciliation of connection %s failed: %s", row.id, safe_error(exc))
    return results
