"""When a connection is next due, and the bulk state changes shared by submit, drain and operator actions.

``connections.next_due_at`` (indexed) holds the earliest due task of each connection, so a tick's cost
follows the due work, never the number of connections.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa

from .. import audit
from ..models import TaskStatus
from ..store.db import lock_rows
from ..store.schema import audit_log, connections, outbox_tasks, utcnow


def task_audit(db: sa.Connection, task_id: int, connection_id: str, action: str, detail: str | None = None) -> None:
    audit.record(db, "task", task_id, action, detail, connection_id=connection_id)


def bulk_audit(db: sa.Connection, connection_id: str, task_ids: Iterable[int], action: str, detail: str) -> None:
    now = utcnow()
    rows = [
        {"at": now, "connection_id": connection_id, "subject": "task", "subject_id": str(i), "action": action,
         "detail": detail}
        for i in task_ids
    ]
    if rows:
        db.execute(audit_log.insert(), rows)


def wake(db: sa.Connection, connection_id: str, due: dt.datetime) -> None:
    """Move the connection's ``next_due_at`` earlier to ``due`` (never later)."""
    c = connections.c
    db.execute(
        connections.update()
        .where(c.id == connection_id, sa.or_(c.next_due_at.is_(None), c.next_due_at > due))
        .values(next_due_at=due)
    )


def recompute_due(
    db: sa.Connection, connection_id: str, *, not_before: dt.datetime | None = None
) -> dt.datetime | None:
    """Set ``next_due_at`` from the connection's tasks (an index range read), never before ``not_before``.

    The connection row is locked first, so a concurrent submit either is seen here or applies its own
    :func:`wake` after us: a wake-up is never lost.
    """
    c = connections.c
    t = outbox_tasks.c
    db.execute(lock_rows(db, sa.select(c.id).where(c.id == connection_id)))
    pending = db.execute(
        sa.select(sa.func.min(t.next_attempt_at)).where(
            t.connection_id == connection_id, t.status == TaskStatus.PENDING
        )
    ).scalar()
    in_flight = db.execute(
        sa.select(sa.func.min(t.lease_until)).where(t.connection_id == connection_id, t.status == TaskStatus.IN_FLIGHT)
    ).scalar()
    candidates = [d for d in (pending, in_flight) if d is not None]
    due = min(candidates) if candidates else None
    if due is not None and not_before is not None and due < not_before:
        due = not_before
    db.execute(connections.update().where(c.id == connection_id).values(next_due_at=due))
    return due


def pause_all(db: sa.Connection, connection_id: str, reason: str) -> int:
    """Every pending task of the connection pauses (its credentials were refused)."""
    return _move(db, connection_id, TaskStatus.PENDING, TaskStatus.PAUSED, "paused", reason, None)


def resume_all(db: sa.Connection, connection_id: str, now: dt.datetime) -> int:
    """Every paused task of the connection is pending again, due ``now``."""
    return _move(db, connection_id, TaskStatus.PAUSED, TaskStatus.PENDING, "resumed", "connection active again", now)


def _move(
    db: sa.Connection, connection_id: str, old: TaskStatus, new: TaskStatus, action: str, detail: str,
    due: dt.datetime | None,
) -> int:
    t = outbox_tasks.c
    ids = list(db.execute(sa.select(t.id).where(t.connection_id == connection_id, t.status == old)).scalars())
    if not ids:
        return 0
    values: dict[str, object] = {"status": new, "updated_at": utcnow()}
    if due is not None:
        values["next_attempt_at"] = due
    db.execute(outbox_tasks.update().where(t.id.in_(ids), t.status == old).values(**values))
    bulk_audit(db, connection_id, ids, action, detail)
    return len(ids)
