"""What an operator (or a host) reads about the outbox: one task, lists, per-connection summaries.
Read-only; the state changes live beside it in :mod:`.submit`, :mod:`.drain` and :mod:`.ops`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from .. import audit
from ..errors import NotFoundError
from ..mapping import INVOICE
from ..models import ConnectionStatus, TaskStatus
from ..store.schema import connections, outbox_tasks

if TYPE_CHECKING:
    from ..hub import Hub


# --- queries --------------------------------------------------------------------------------------------


@attrs.frozen
class TaskInfo:
    id: int
    connection_id: str
    entity_type: str
    local_id: str
    status: TaskStatus
    attempts: int
    submissions: int
    uncertain: bool
    next_attempt_at: dt.datetime | None
    last_error: str | None
    remote_id: str | None
    payload: Mapping[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    completed_at: dt.datetime | None


def _task_info(row: Any) -> TaskInfo:
    return TaskInfo(
        id=row.id,
        connection_id=row.connection_id,
        entity_type=row.entity_type,
        local_id=row.local_id,
        status=TaskStatus(row.status),
        attempts=row.attempts,
        submissions=row.submissions,
        uncertain=bool(row.uncertain),
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        remote_id=row.remote_id,
        payload=row.payload,
        created_at=row.created_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
    )


def get_task(hub: Hub, task_id: int) -> TaskInfo:
    with hub.engine.connect() as db:
        row = db.execute(sa.select(outbox_tasks).where(outbox_tasks.c.id == task_id)).first()
    if row is None:
        raise NotFoundError(f"no task {task_id}")
    return _task_info(row)


def find_task(hub: Hub, connection_id: str, local_id: str, entity_type: str = INVOICE) -> TaskInfo | None:
    t = outbox_tasks.c
    with hub.engine.connect() as db:
        row = db.execute(
            sa.select(outbox_tasks).where(
                t.connection_id == connection_id, t.entity_type == entity_type, t.local_id == local_id
            )
        ).first()
    return None if row is None else _task_info(row)


def list_tasks(
    hub: Hub,
    *,
    status: str | None = None,
    connection_id: str | None = None,
    limit: int = 100,
    entity_type: str | None = None,
) -> list[TaskInfo]:
    """Newest first; ``entity_type`` is a task kind (``invoice``, ``payment``, ``void``)."""
    t = outbox_tasks.c
    query = sa.select(outbox_tasks).order_by(t.id.desc()).limit(limit)
    if status is not None:
        query = query.where(t.status == status)
    if entity_type is not None:
        query = query.where(t.entity_type == entity_type)
    if connection_id is not None:
        query = query.where(t.connection_id == connection_id)
    with hub.engine.connect() as db:
        return [_task_info(r) for r in db.execute(query)]


def task_history(hub: Hub, task_id: int) -> list[Any]:
    with hub.engine.connect() as db:
        return audit.history(db, "task", task_id)


@attrs.frozen
class ConnectionSummary:
    id: str
    provider: str
    tenant_id: str
    environment_id: str
    name: str
    status: str
    counts: Mapping[str, int]
    next_due_at: dt.datetime | None
    last_error: str | None
    last_success_at: dt.datetime | None
    # Task counts per kind (invoice, payment, void), then per status.
    counts_by_kind: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)


def connection_summaries(hub: Hub) -> list[ConnectionSummary]:
    """Task counts per status for every connection (an operator view; reads the whole outbox index)."""
    c = connections.c
    t = outbox_tasks.c
    with hub.engine.connect() as db:
        counts: dict[str, dict[str, int]] = {}
        by_kind: dict[str, dict[str, dict[str, int]]] = {}
        for cid, kind, status, n in db.execute(
            sa.select(t.connection_id, t.entity_type, t.status, sa.func.count())
            .group_by(t.connection_id, t.entity_type, t.status)
        ):
            counts.setdefault(cid, {})[status] = counts.get(cid, {}).get(status, 0) + n
            by_kind.setdefault(cid, {}).setdefault(kind, {})[status] = n
        rows = db.execute(sa.select(connections).order_by(c.tenant_id, c.environment_id, c.provider)).fetchall()
    return [
        ConnectionSummary(
            id=r.id,
            provider=r.provider,
            tenant_id=r.tenant_id,
            environment_id=r.environment_id,
            name=r.name,
            status=r.status,
            counts=counts.get(r.id, {}),
            next_due_at=r.next_due_at,
            last_error=r.last_error,
            last_success_at=r.last_success_at,
            counts_by_kind=by_kind.get(r.id, {}),
        )
        for r in rows
    ]


def pending_work(hub: Hub) -> int:
    """Tasks still to push on active connections (pending or in flight): 0 means idle."""
    t = outbox_tasks.c
    c = connections.c
    with hub.engine.connect() as db:
        return int(
            db.execute(
                sa.select(sa.func.count())
                .select_from(outbox_tasks.join(connections, c.id == t.connection_id))
                .where(t.status.in_([TaskStatus.PENDING, TaskStatus.IN_FLIGHT]), c.status == ConnectionStatus.ACTIVE)
            ).scalar_one()
        )
