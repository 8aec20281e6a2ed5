"""The inbox: store each inbound event once under its dedupe key, then apply it once through host hooks.

One transaction per first delivery. The row is inserted first (as applied: the common outcome; corrected
when the event is ignored, rolled back when the host fails), so the unique constraint on
``(connection_id, dedupe_key)`` decides, race-free across threads and processes, which delivery is the
first (on PostgreSQL a concurrent insert of the same key waits for the first transaction and then fails;
SQLite's ``BEGIN IMMEDIATE`` serializes writers). The host hook call, the mapping writes, the status and
the audit rows then commit in that same transaction: a delivery is stored and applied together or not at
all. When the host hook fails, that transaction rolls back and the event is stored ``failed`` with the
reason (the sender retries; ``events retry`` too). A redelivery counts itself on the stored row and
applies it only while it is ``received`` (rows of older versions) or ``failed``, re-read under a lock
(``FOR UPDATE`` on PostgreSQL), so concurrent redeliveries apply once. The host hook gets
``payment_key`` = the dedupe key so a host can also be idempotent on its side (the one window we cannot
close: the host committed, we crashed before our commit).

Host hooks run inside the apply transaction. On SQLite it holds the database's write lock, so a host
hook must not write to the integration database itself (a host keeps its own store; the reference host
does).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from . import audit, effects, mapping
from .errors import NotFoundError
from .inbox_views import get_event as get_event
from .inbox_views import list_events as list_events
from .models import (
    Connection,
    Event,
    EventStatus,
    event_from_dict,
    event_to_dict,
)
from .store.db import lock_rows
from .store.schema import entity_mappings, inbox_events, utcnow

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)

_APPLICABLE = (EventStatus.RECEIVED, EventStatus.FAILED)


@attrs.frozen
class EventOutcome:
    """What happened to one event of a delivery."""

    event_id: int
    dedupe_key: str
    kind: str
    status: EventStatus = attrs.field(converter=EventStatus)
    duplicate: bool = False
    reason: str | None = None


@attrs.frozen
class Guard:
    """A condition the first event's insert tests in the same statement (an SQL boolean ``clause`` over
    other tables, with its bound ``params``): when it no longer holds, nothing is written and
    :class:`GuardFailed` is raised. The dispatcher guards with "the connection's row is still as the cached
    context saw it" at no extra round trip. Build ``clause`` once: the insert is compiled once per clause."""

    clause: sa.ColumnElement[bool]
    params: Mapping[str, Any]


class GuardFailed(Exception):
    """The guard of :func:`apply` did not hold: nothing was stored."""


# The hot path's statements, built once with bound parameters (no per-call construction or cache-key work).
# The insert returns the new row's id and, in the same statement, the local invoice its remote invoice maps
# to (what an invoice event needs next): one round trip instead of three with a guard.
_COLUMNS = ("connection_id", "dedupe_key", "kind", "payload", "status", "reason", "deliveries", "received_at",
            "last_delivery_at", "applied_at", "remote_id")
_m = entity_mappings.c
_LOCAL_INVOICE = sa.select(_m.local_id).where(
    _m.connection_id == sa.bindparam("connection_id"), _m.entity_type == mapping.INVOICE,
    _m.remote_id == sa.bindparam("remote_id"),
).scalar_subquery()
_SETTLE = (
    inbox_events.update()
    .where(inbox_events.c.id == sa.bindparam("eid"))
    .values(status=sa.bindparam("st"), reason=sa.bindparam("why"), applied_at=sa.bindparam("at"))
)


@functools.cache  # per clause object (hashed by identity, and kept alive here)
def _insert_statement(clause: sa.ColumnElement[bool] | None) -> sa.Insert:
    """``INSERT INTO inbox_events (...) SELECT <values> [WHERE clause] RETURNING id, <local invoice>``."""
    values = sa.select(*(sa.bindparam(name, type_=inbox_events.c[name].type) for name in _COLUMNS))
    if clause is not None:
        values = values.where(clause)
    return inbox_events.insert().from_select(list(_COLUMNS), values).returning(inbox_events.c.id, _LOCAL_INVOICE)


def apply(hub: Hub, connection: Connection, events: Iterable[Event], *, guard: Guard | None = None
          ) -> list[EventOutcome]:
    """Store and apply ``events`` for ``connection``; each outcome says applied / ignored / failed / duplicate.

    ``guard`` is tested by the first event's insert; when it fails, :class:`GuardFailed` is raised with
    nothing written."""
    outcomes = []
    for event in events:
        outcomes.append(_receive(hub, connection, event, guard))
        guard = None
    return outcomes


def summarize(outcomes: Sequence[EventOutcome]) -> dict[str, int]:
    """Counts for the dispatcher's response and for logs."""
    counts = {"events": len(outcomes), "applied": 0, "ignored": 0, "failed": 0, "duplicates": 0}
    for o in outcomes:
        if o.duplicate:
            counts["duplicates"] += 1
        elif o.status in counts:
            counts[o.status] += 1
    return counts


# --- receive ----------------------------------------------------------------------------------------


class _EffectFailed(Exception):
    def __init__(self, exc: Exception) -> None:
        super().__init__(exc.__class__.__name__)
        self.exc = exc


def _receive(hub: Hub, connection: Connection, event: Event, guard: Guard | None) -> EventOutcome:
    """A first delivery is inserted, applied and audited in one transaction: the unique key decides which
    delivery is first (a concurrent insert of the same key waits for this one, then fails), and the host
    hook runs before that transaction commits, so an event is applied once and never half-stored."""
    payload = event_to_dict(event)
    now = utcnow()
    try:
        with hub.engine.begin() as db:
            # Inserted as applied: if the effect fails, this transaction rolls back; if it is skipped, the
            # status is corrected below. Either way nobody sees the row before it is settled.
            event_id, local_invoice = _insert(db, connection, event, payload, now, EventStatus.APPLIED, None, now,
                                              guard=guard)
            try:
                detail = effects.apply(hub, db, connection, event, local_invoice)
                status, reason = EventStatus.APPLIED, None
            except effects.Skip as skip:
                status, reason, detail = EventStatus.IGNORED, skip.reason, skip.reason
                db.execute(_SETTLE, {"eid": event_id, "st": status, "why": reason, "at": utcnow()})
            except Exception as exc:
                raise _EffectFailed(exc) from exc
            audit.record_many(db, "event", event_id, [("received", event.kind), (status, detail)],
                              connection_id=connection.id)
        return EventOutcome(event_id, event.dedupe_key, event.kind, status, reason=reason)
    except sa.exc.IntegrityError:
        pass  # a delivery of this event was stored before: count it, apply only if it never got applied
    except _EffectFailed as failed:
        stored = _store_failed(hub, connection, event, payload, now, failed.exc)
        if stored is not None:
            return stored
    return _redelivered(hub, connection, event, now)


def _insert(db: sa.Connection, connection: Connection, event: Event, payload: dict[str, Any], now: Any,
            status: EventStatus, reason: str | None, applied_at: Any = None, *, guard: Guard | None = None
            ) -> tuple[int, str | None]:
    """Insert the event's row: its id and the local invoice its remote invoice maps to (``None``: unmapped)."""
    params = {
        "applied_at": applied_at,
        "connection_id": connection.id,
        "dedupe_key": event.dedupe_key,
        "kind": event.kind,
        "payload": payload,
        "status": status,
        "reason": reason,
        "deliveries": 1,
        "received_at": now,
        "last_delivery_at": now,
        "remote_id": getattr(event, "remote_invoice_id", None),
    }
    if guard is not None:
        params.update(guard.params)
    row = db.execute(_insert_statement(None if guard is None else guard.clause), params).first()
    if row is None:
        raise GuardFailed(connection.id)
    return int(row[0]), row[1]


def _store_failed(hub: Hub, connection: Connection, event: Event, payload: dict[str, Any], now: Any,
                  exc: Exception) -> EventOutcome | None:
    """The host failed on a first delivery (its transaction rolled back): keep the event as ``failed``.
    ``None`` when a concurrent delivery stored it meanwhile (the caller counts this one as a redelivery)."""
    reason = effects.failure_reason(exc)
    log.warning("inbox event %s failed: %s", event.dedupe_key[:80], exc.__class__.__name__)
    try:
        with hub.engine.begin() as db:
            event_id, _ = _insert(db, connection, event, payload, now, EventStatus.FAILED, reason)
            audit.record_many(db, "event", event_id, [("received", event.kind), (EventStatus.FAILED, reason)],
                              connection_id=connection.id)
    except sa.exc.IntegrityError:
        return None
    except Exception:
        raise exc from None  # our own database is failing too: the caller answers 500, the sender retries
    return EventOutcome(event_id, event.dedupe_key, event.kind, EventStatus.FAILED, reason=reason)


def _redelivered(hub: Hub, connection: Connection, event: Event, now: Any) -> EventOutcome:
    with hub.engine.begin() as db:
        row = _locked_row(db, connection.id, event.dedupe_key)
        if row is None:  # deleted in between (connection removed): nothing to do
            return EventOutcome(
                0, event.dedupe_key, event.kind, EventStatus.IGNORED, duplicate=True, reason="event vanished"
            )
        db.execute(
            inbox_events.update()
            .where(inbox_events.c.id == row.id)
            .values(deliveries=inbox_events.c.deliveries + 1, last_delivery_at=now)
        )
        audit.record(db, "event", row.id, "redelivered", f"delivery {row.deliveries + 1}", connection_id=connection.id)
    if row.status in _APPLICABLE:  # crashed before (older versions) or failed: (re)apply, once
        return _apply_one(hub, connection, row.id)
    return EventOutcome(row.id, row.dedupe_key, row.kind, row.status, duplicate=True, reason=row.reason)


def _locked_row(db: sa.Connection, connection_id: str, dedupe_key: str) -> Any:
    c = inbox_events.c
    query = sa.select(inbox_events).where(c.connection_id == connection_id, c.dedupe_key == dedupe_key)
    return db.execute(lock_rows(db, query)).first()


# --- apply ------------------------------------------------------------------------------------------


def _apply_one(hub: Hub, connection: Connection, event_id: int, *, also_ignored: bool = False) -> EventOutcome:
    """Apply a stored event if it is still applicable; host effect, mappings and status commit together.

    ``also_ignored``: apply an event that was ignored too (its invoice has been linked since)."""
    c = inbox_events.c
    applicable = (*_APPLICABLE, EventStatus.IGNORED) if also_ignored else _APPLICABLE
    try:
        with hub.engine.begin() as db:
            row = db.execute(lock_rows(db, sa.select(inbox_events).where(c.id == event_id))).first()
            if row is None:
                raise NotFoundError(f"no inbox event {event_id}")
            if row.status not in applicable:  # a concurrent delivery applied it first
                return EventOutcome(row.id, row.dedupe_key, row.kind, row.status, duplicate=True, reason=row.reason)
            event = event_from_dict(row.payload)
            try:
                detail = effects.apply(hub, db, connection, event)
                status, reason = EventStatus.APPLIED, None
            except effects.Skip as skip:
                status, reason, detail = EventStatus.IGNORED, skip.reason, skip.reason
            db.execute(
                inbox_events.update().where(c.id == event_id).values(status=status, reason=reason, applied_at=utcnow())
            )
            audit.record(db, "event", event_id, status, detail, connection_id=connection.id)
            return EventOutcome(row.id, row.dedupe_key, row.kind, status, reason=reason)
    except NotFoundError:
        raise
    except Exception as exc:  # the host (or a mapping conflict) failed: keep the event as failed, visibly
        reason = effects.failure_reason(exc)
        log.warning("inbox event %s failed: %s", event_id, exc.__class__.__name__)
        try:
            with hub.engine.begin() as db:
                failed = inbox_events.update().where(c.id == event_id).values(status=EventStatus.FAILED, reason=reason)
                db.execute(failed)
                audit.record(db, "event", event_id, EventStatus.FAILED, reason, connection_id=connection.id)
                row = db.execute(sa.select(inbox_events).where(c.id == event_id)).one()
        except Exception:
            raise exc from None  # our own database is failing too: the caller answers 500, the sender retries
        return EventOutcome(row.id, row.dedupe_key, row.kind, EventStatus.FAILED, reason=reason)


_WAITING = sa.select(inbox_events.c.id).where(  # built once: the outbox reads it with every pushed invoice
    inbox_events.c.connection_id == sa.bindparam("cid"), inbox_events.c.remote_id == sa.bindparam("rid"),
    inbox_events.c.status.in_((*_APPLICABLE, EventStatus.IGNORED)),
    inbox_events.c.kind.in_(("invoice_paid", "invoice_voided", "payment_reversed"))).order_by(inbox_events.c.id)


def waiting_events(db: sa.Connection, connection_id: str, remote_invoice_id: str) -> list[int]:
    """Ids of the invoice events :func:`apply_waiting` would apply (read in the caller's transaction)."""
    return list(db.execute(_WAITING, {"cid": connection_id, "rid": remote_invoice_id}).scalars())


def apply_waiting(hub: Hub, connection_id: str, remote_invoice_id: str,
                  ids: Sequence[int] | None = None) -> list[EventOutcome]:
    """Apply the invoice events that arrived before ``remote_invoice_id`` was linked to a local invoice
    (``ids``: as :func:`waiting_events` read them in the transaction that linked it).

    Called right after the outbox links an invoice. A payment webhook can beat the link: the push's
    response was lost and the customer paid before the retry adopted the invoice. Without this the
    payment would stay ``ignored`` for good. Each event is re-checked under its row lock, so an event
    being applied concurrently by a redelivery is applied once.
    """
    if ids is None:
        with hub.engine.connect() as db:
            ids = waiting_events(db, connection_id, remote_invoice_id)
    if not ids:
        return []
    conn = hub.get_connection(connection_id)
    outcomes = []
    for event_id in ids:
        with hub.engine.begin() as db:
            audit.record(
                db,
                "event",
                event_id,
                "invoice_linked",
                f"remote invoice {remote_invoice_id} is now linked",
                connection_id=connection_id,
            )
        outcomes.append(_apply_one(hub, conn, event_id, also_ignored=True))
    return outcomes


# --- operator views and retry -----------------------------------------------------------------------


def retry(hub: Hub, event_id: int) -> EventOutcome:
    """Apply a ``failed`` (or stuck ``received``) event again, e.g. after the host was fixed."""
    with hub.engine.connect() as db:
        row = db.execute(sa.select(inbox_events).where(inbox_events.c.id == event_id)).first()
    if row is None:
        raise NotFoundError(f"no inbox event {event_id}")
    if row.status not in _APPLICABLE:
        return EventOutcome(row.id, row.dedupe_key, row.kind, row.status, duplicate=True, reason=row.reason)
    conn = hub.get_connection(row.connection_id)
    with hub.engine.begin() as db:
        audit.record(db, "event", event_id, "retried", None, connection_id=conn.id)
    return _apply_one(hub, conn, event_id)
