"""Thin events: a :class:`~integration_core.models.Notice` stored in the inbox queues one outbox task of kind
``fetch`` (in the inbox's transaction), which the outbox runs later under the connection's rate limit and retries
(:mod:`integration_core.outbox.fetch`). So a webhook is answered as soon as the notice is stored, and a slow or
failing provider never loses an event nor holds the answer up.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa

from .models import Notice, TaskStatus
from .store.schema import connections, outbox_tasks, utcnow

FETCH = "fetch"  # the outbox task kind


def task_key(dedupe_key: str) -> str:
    """The task's ``local_id``: the notice's dedupe key, hashed when it would not fit the column."""
    return dedupe_key if len(dedupe_key) <= 200 else "sha256:" + hashlib.sha256(dedupe_key.encode()).hexdigest()


def queue_fetch(db: sa.Connection, connection_id: str, notice: Notice) -> str:
    """Queue the fetch of ``notice`` (once per notice) and wake the connection; an audit detail."""
    t = outbox_tasks.c
    key = task_key(notice.dedupe_key)
    existing = db.execute(
        sa.select(t.id, t.status).where(t.connection_id == connection_id, t.entity_type == FETCH, t.local_id == key)
    ).first()
    now = utcnow()
    if existing is not None:
        if existing.status in (TaskStatus.FAILED, TaskStatus.DEAD):
            db.execute(outbox_tasks.update().where(t.id == existing.id).values(
                status=TaskStatus.PENDING, attempts=0, next_attempt_at=now, updated_at=now))
            _wake(db, connection_id, now)
            return f"fetch task {existing.id} queued again"
        return f"fetch task {existing.id} already queued ({existing.status})"
    payload: dict[str, Any] = {"dedupe_key": notice.dedupe_key, "notices": [notice.data]}
    task_id = db.execute(outbox_tasks.insert().values(
        connection_id=connection_id, entity_type=FETCH, local_id=key, payload=payload,
        payload_hash=hashlib.sha256(notice.dedupe_key.encode()).hexdigest(), status=TaskStatus.PENDING,
        attempts=0, submissions=1, next_attempt_at=now, uncertain=False, created_at=now, updated_at=now,
    )).inserted_primary_key[0]  # type: ignore[index]
    _wake(db, connection_id, now)
    return f"fetch queued (task {task_id})"


def _wake(db: sa.Connection, connection_id: str, due: Any) -> None:
    c = connections.c
    db.execute(connections.update().where(c.id == connection_id, sa.or_(c.next_due_at.is_(None), c.next_due_at > due))
               .values(next_due_at=due))
