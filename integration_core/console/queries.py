"""What the console reads, always through a tenant scope: ``tenant=None`` sees every connection, a
tenant-limited login sees only its tenant's connections and their tasks, events and audit rows.
Read-only; the connections' secret column is never selected."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from .. import ratelimit
from ..models import EventStatus, TaskStatus
from ..store.db import is_postgres
from ..store.schema import audit_log, connections, entity_mappings, inbox_events, outbox_tasks

c = connections.c
t = outbox_tasks.c
e = inbox_events.c

PAGE_SIZE = 50
TASK_STATUSES = tuple(TaskStatus)
EVENT_STATUSES = tuple(EventStatus)
# Every column but ``secrets``: what a page may show about a connection.
CONNECTION_COLUMNS = [col for col in connections.c if col.name != "secrets"]
_CONN_LABELS = [c.tenant_id.label("tenant_id"), c.environment_id.label("environment_id"),
                c.provider.label("provider"), c.name.label("connection_name")]


def _scoped(query: sa.Select, tenant: str | None) -> sa.Select:
    return query if tenant is None else query.where(c.tenant_id == tenant)


# --- connections -------------------------------------------------------------------------------------


def list_connections(engine: sa.Engine, tenant: str | None) -> list[Any]:
    query = _scoped(sa.select(*CONNECTION_COLUMNS).order_by(c.tenant_id, c.environment_id, c.provider), tenant)
    with engine.connect() as db:
        return list(db.execute(query))


def get_connection(engine: sa.Engine, tenant: str | None, connection_id: str) -> Any | None:
    query = _scoped(sa.select(*CONNECTION_COLUMNS).where(c.id == connection_id), tenant)
    with engine.connect() as db:
        return db.execute(query).first()


def overview(engine: sa.Engine, tenant: str | None, now: dt.datetime) -> list[dict[str, Any]]:
    """Per visible connection: invoices synced and failed over the last hour and day, tasks waiting and
    the oldest of them, webhooks received over the last day by outcome, the current rate window."""
    hour, day = now - dt.timedelta(hours=1), now - dt.timedelta(days=1)
    done, failing = t.status == TaskStatus.DONE, t.status.in_((TaskStatus.FAILED, TaskStatus.DEAD))
    waiting = t.status.in_((TaskStatus.PENDING, TaskStatus.IN_FLIGHT))

    def count(cond: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    task_query = _scoped(
        sa.select(
            t.connection_id,
            count(sa.and_(done, t.completed_at >= hour)).label("synced_hour"),
            count(sa.and_(done, t.completed_at >= day)).label("synced_day"),
            count(sa.and_(failing, t.updated_at >= hour)).label("failed_hour"),
            count(sa.and_(failing, t.updated_at >= day)).label("failed_day"),
            count(failing).label("failed_now"),
            count(waiting).label("waiting"),
            count(t.status == "paused").label("paused"),
            sa.func.min(sa.case((waiting, t.created_at))).label("oldest_waiting"),
        ).join(connections, c.id == t.connection_id).group_by(t.connection_id),
        tenant,
    )
    event_query = _scoped(
        sa.select(e.connection_id, e.status, sa.func.count().label("n"))
        .join(connections, c.id == e.connection_id)
        .where(e.received_at >= day)
        .group_by(e.connection_id, e.status),
        tenant,
    )
    with engine.connect() as db:
        task_stats = {r.connection_id: r for r in db.execute(task_query)}
        events: dict[str, dict[str, int]] = {}
        for r in db.execute(event_query):
            events.setdefault(r.connection_id, {})[r.status] = int(r.n)
    rows = []
    for conn in list_connections(engine, tenant):
        stats = task_stats.get(conn.id)
        oldest = stats.oldest_waiting if stats is not None else None
        if isinstance(oldest, str):  # SQLite returns MIN() over a CASE as text
            oldest = dt.datetime.fromisoformat(oldest).replace(tzinfo=dt.UTC)
        elif isinstance(oldest, dt.datetime) and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        recent, busy = ratelimit.usage(conn.rate_state, 60.0, now)
        rows.append({
            "connection": conn,
            "rate_recent": recent,
            "rate_busy": busy,
            "synced_hour": int(stats.synced_hour) if stats else 0,
            "synced_day": int(stats.synced_day) if stats else 0,
            "failed_hour": int(stats.failed_hour) if stats else 0,
            "failed_day": int(stats.failed_day) if stats else 0,
            "failed_now": int(stats.failed_now) if stats else 0,
            "waiting": int(stats.waiting) if stats else 0,
            "paused": int(stats.paused) if stats else 0,
            "oldest_waiting": oldest,
            "events": events.get(conn.id, {}),
        })
    return rows


def hourly(engine: sa.Engine, tenant: str | None, now: dt.datetime, hours: int = 24) -> list[dict[str, Any]]:
    """Invoices synced and failed per hour over the last ``hours`` (the overview's chart)."""
    start = (now - dt.timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)

    def bucket(col: Any) -> Any:
        if is_postgres(engine):
            return sa.func.to_char(col, "YYYY-MM-DD HH24")
        return sa.func.strftime("%Y-%m-%d %H", col)

    synced = _scoped(
        sa.select(bucket(t.completed_at).label("h"), sa.func.count().label("n"))
        .join(connections, c.id == t.connection_id)
        .where(t.status == "done", t.completed_at >= start).group_by(sa.text("1")),
        tenant,
    )
    failed = _scoped(
        sa.select(bucket(t.updated_at).label("h"), sa.func.count().label("n"))
        .join(connections, c.id == t.connection_id)
        .where(t.status.in_((TaskStatus.FAILED, TaskStatus.DEAD)), t.updated_at >= start).group_by(sa.text("1")),
        tenant,
    )
    with engine.connect() as db:
        ok = {r.h: int(r.n) for r in db.execute(synced)}
        bad = {r.h: int(r.n) for r in db.execute(failed)}
    out = []
    for i in range(hours):
        at = start + dt.timedelta(hours=i)
        key = at.strftime("%Y-%m-%d %H")
        out.append({"hour": at, "synced": ok.get(key, 0), "failed": bad.get(key, 0)})
    return out


# --- outbox --------------------------------------------------------------------------------------------


def list_tasks(
    engine: sa.Engine, tenant: str | None, *, status: str | None = None, connection_id: str | None = None,
    kind: str | None = None, local_id: str | None = None, before: int | None = None, limit: int = PAGE_SIZE,
) -> list[Any]:
    """Newest first; ``local_id`` matches from the start; ``before`` pages on (ids below it)."""
    query = sa.select(outbox_tasks, *_CONN_LABELS).join(connections, c.id == t.connection_id)
    if status:
        query = query.where(t.status == status)
    if connection_id:
        query = query.where(t.connection_id == connection_id)
    if kind:
        query = query.where(t.entity_type == kind)
    if local_id:
        query = query.where(t.local_id.startswith(local_id, autoescape=True))
    if before:
        query = query.where(t.id < before)
    query = _scoped(query, tenant).order_by(t.id.desc()).limit(limit)
    with engine.connect() as db:
        return list(db.execute(query))


def get_task(engine: sa.Engine, tenant: str | None, task_id: int) -> Any | None:
    query = _scoped(sa.select(outbox_tasks, *_CONN_LABELS).join(connections, c.id == t.connection_id)
                    .where(t.id == task_id), tenant)
    with engine.connect() as db:
        return db.execute(query).first()


def history(engine: sa.Engine, subject: str, subject_id: str | int) -> list[Any]:
    a = audit_log.c
    with engine.connect() as db:
        return list(db.execute(sa.select(audit_log).where(a.subject == subject, a.subject_id == str(subject_id))
                               .order_by(a.id)))


def connection_history(engine: sa.Engine, connection_id: str, limit: int = 30) -> list[Any]:
    a = audit_log.c
    with engine.connect() as db:
        rows = db.execute(sa.select(audit_log).where(a.subject == "connection", a.subject_id == connection_id)
                          .order_by(a.id.desc()).limit(limit))
        return list(rows)


def task_kinds(engine: sa.Engine) -> list[str]:
    with engine.connect() as db:
        return sorted(db.execute(sa.select(t.entity_type).distinct()).scalars())


# --- inbox ---------------------------------------------------------------------------------------------


def list_events(
    engine: sa.Engine, tenant: str | None, *, status: str | None = None, connection_id: str | None = None,
    kind: str | None = None, before: int | None = None, limit: int = PAGE_SIZE,
) -> list[Any]:
    query = sa.select(inbox_events, *_CONN_LABELS).join(connections, c.id == e.connection_id)
    if status:
        query = query.where(e.status == status)
    if connection_id:
        query = query.where(e.connection_id == connection_id)
    if kind:
        query = query.where(e.kind == kind)
    if before:
        query = query.where(e.id < before)
    query = _scoped(query, tenant).order_by(e.id.desc()).limit(limit)
    with engine.connect() as db:
        return list(db.execute(query))


def get_event(engine: sa.Engine, tenant: str | None, event_id: int) -> Any | None:
    query = _scoped(sa.select(inbox_events, *_CONN_LABELS).join(connections, c.id == e.connection_id)
                    .where(e.id == event_id), tenant)
    with engine.connect() as db:
        return db.execute(query).first()


def event_kinds(engine: sa.Engine) -> list[str]:
    with engine.connect() as db:
        return sorted(db.execute(sa.select(e.kind).distinct()).scalars())


# --- search --------------------------------------------------------------------------------------------


def search(engine: sa.Engine, tenant: str | None, text: str, limit: int = PAGE_SIZE) -> dict[str, Sequence[Any]]:
    """Tasks by local id, invoice number, remote id or customer email; events by remote id or dedupe key;
    mappings by either id."""
    text = text.strip()
    if not text:
        return {"tasks": [], "events": [], "mappings": []}
    number = t.payload["number"].as_string()
    email = t.payload[("customer", "email")].as_string()
    tasks = _scoped(
        sa.select(outbox_tasks, *_CONN_LABELS).join(connections, c.id == t.connection_id).where(
            sa.or_(t.local_id == text, t.remote_id == text, number == text,
                   sa.func.lower(email) == text.lower())
        ),
        tenant,
    ).order_by(t.id.desc()).limit(limit)
    events = _scoped(
        sa.select(inbox_events, *_CONN_LABELS).join(connections, c.id == e.connection_id)
        .where(sa.or_(e.remote_id == text, e.dedupe_key == text)),
        tenant,
    ).order_by(e.id.desc()).limit(limit)
    m = entity_mappings.c
    mappings = _scoped(
        sa.select(entity_mappings, *_CONN_LABELS).join(connections, c.id == m.connection_id)
        .where(sa.or_(m.local_id == text, m.remote_id == text)),
        tenant,
    ).order_by(m.id.desc()).limit(limit)
    with engine.connect() as db:
        return {"tasks": list(db.execute(tasks)), "events": list(db.execute(events)),
                "mappings": list(db.execute(mappings))}
