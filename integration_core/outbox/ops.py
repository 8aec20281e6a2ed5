"""Operator actions on the outbox: resume a re-authorized connection, retry failed tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from ..errors import ConfigurationError, NotFoundError
from ..models import ConnectionStatus, TaskStatus
from ..store.schema import connections, outbox_tasks, utcnow
from .schedule import recompute_due, resume_all, task_audit, wake
from .views import TaskInfo, get_task

if TYPE_CHECKING:
    from ..hub import Hub


def resume_paused(hub: Hub, connection_id: str) -> int:
    """Paused tasks of a re-authorized (or re-enabled) connection become pending; it is due now.

    Call it whenever a connection becomes active again. A no-op unless the connection is active.
    """
    now = utcnow()
    with hub.engine.begin() as db:
        status = db.execute(
            sa.select(connections.c.status).where(connections.c.id == connection_id)
        ).scalar_one_or_none()
        if status is None:
            raise NotFoundError(f"no connection {connection_id!r}")
        if status != ConnectionStatus.ACTIVE:
            return 0
        resumed = resume_all(db, connection_id, now)
        recompute_due(db, connection_id)
    return resumed


def retry_task(hub: Hub, task_id: int) -> TaskInfo:
    """Operator retry of a failed, dead or paused task: pending now, attempts reset, lookup first."""
    t = outbox_tasks.c
    now = utcnow()
    with hub.engine.begin() as db:
        row = db.execute(sa.select(outbox_tasks).where(t.id == task_id)).first()
        if row is None:
            raise NotFoundError(f"no task {task_id}")
        if row.status not in (TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.PAUSED):
            raise ConfigurationError(f"task {task_id} is {row.status}; only failed, dead or paused tasks are retried")
        db.execute(
            outbox_tasks.update()
            .where(t.id == task_id)
            .values(
                status=TaskStatus.PENDING,
                attempts=0,
                uncertain=row.uncertain or row.attempts > 0,
                next_attempt_at=now,
                updated_at=now,
            )
        )
        task_audit(db, task_id, row.connection_id, "retry_requested", f"operator retry (was {row.status})")
        wake(db, row.connection_id, now)
    return get_task(hub, task_id)


def retry_failed(hub: Hub, connection_id: str | None = None, *, include_dead: bool = True) -> list[int]:
    """Operator retry of every failed (and dead) task, optionally of one connection."""
    t = outbox_tasks.c
    statuses = [TaskStatus.FAILED, TaskStatus.DEAD] if include_dead else [TaskStatus.FAILED]
    query = sa.select(t.id).where(t.status.in_(statuses)).order_by(t.id)
    if connection_id is not None:
        query = query.where(t.connection_id == connection_id)
    with hub.engine.connect() as db:
        ids = list(db.execute(query).scalars())
    for task_id in ids:
        retry_task(hub, task_id)
    return ids
