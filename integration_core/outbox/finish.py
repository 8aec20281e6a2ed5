"""How an in-flight task ends when it does not end done: retried with backoff, failed, dead or paused.

Every transition is guarded by the task's lease (``lease_owner`` is this worker), so a worker whose
lease expired cannot overwrite the outcome of the worker that took the task over.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..models import ConnectionStatus, TaskStatus
from ..store.schema import connections, outbox_tasks, utcnow
from .schedule import task_audit
from .settings import OutboundSettings, TickStats

if TYPE_CHECKING:
    from ..hub import Hub


class TaskTransitions:
    """The state changes of one worker's in-flight tasks (a part of :class:`~.drain.Outbound`)."""

    hub: Hub
    engine: sa.Engine
    worker_id: str
    settings: OutboundSettings
    rng: random.Random

    def _finish(self, task: Any, action: str, detail: str | None, **values: Any) -> bool:
        """Move an in-flight task owned by this worker to another state, with its audit row."""
        t = outbox_tasks.c
        now = utcnow()
        with self.engine.begin() as db:
            result = db.execute(
                outbox_tasks.update()
                .where(t.id == task.id, t.status == TaskStatus.IN_FLIGHT, t.lease_owner == self.worker_id)
                .values(lease_owner=None, lease_until=None, updated_at=now, **values)
            )
            if result.rowcount != 1:
                return False
            task_audit(db, task.id, task.connection_id, action, detail)
            if values.get("last_error"):
                db.execute(
                    connections.update()
                    .where(connections.c.id == task.connection_id)
                    .values(last_error=values["last_error"], last_error_at=now)
                )
        return True

    def _requeue(
        self, task: Any, at: dt.datetime | None, reason: str, *, count_attempt: bool, uncertain: bool = False
    ) -> None:
        t = outbox_tasks.c
        values: dict[str, Any] = {"status": TaskStatus.PENDING, "next_attempt_at": at or utcnow()}
        if not count_attempt:
            values["attempts"] = t.attempts - 1  # waiting for rate is not the task's failure
        if uncertain:
            values["uncertain"] = True
        self._finish(task, "rate_limited", f"{reason}; next attempt at {values['next_attempt_at']:%H:%M:%S}", **values)

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(attempts-1)))."""
        s = self.settings
        ceiling = min(s.backoff_cap, s.backoff_base * (2 ** max(attempts - 1, 0)))
        return self.rng.uniform(0, ceiling)

    def _retry_or_die(
        self, task: Any, error: str, uncertain: bool, stats: TickStats, *, retry_after: float | None = None
    ) -> None:
        if task.attempts >= self.settings.max_attempts:
            if self._finish(
                task, "dead", f"gave up after {task.attempts} attempts: {error}",
                status=TaskStatus.DEAD, last_error=error, uncertain=True if uncertain else outbox_tasks.c.uncertain,
            ):
                stats.dead += 1
            return
        delay = max(self.backoff(task.attempts), retry_after or 0.0)
        at = utcnow() + dt.timedelta(seconds=delay)
        if self._finish(
            task, "retry", f"attempt {task.attempts} failed: {error}; retry in {delay:.1f}s",
            status=TaskStatus.PENDING, next_attempt_at=at, last_error=error,
            uncertain=True if uncertain else outbox_tasks.c.uncertain,
        ):
            stats.retrying += 1

    def _fail(self, task: Any, message: str, stats: TickStats) -> None:
        if self._finish(task, "failed", message, status=TaskStatus.FAILED, last_error=message[:4000]):
            stats.failed += 1

    def _auth_failed(self, task: Any, error: str, stats: TickStats) -> None:
        """Credentials refused: the connection needs re-authorization and every waiting task pauses."""
        if self._finish(
            task, "paused", f"auth refused: {error}",
            status=TaskStatus.PAUSED, last_error=error, attempts=outbox_tasks.c.attempts - 1,
        ):
            stats.paused += 1
        self.hub.set_status(task.connection_id, ConnectionStatus.NEEDS_REAUTH, error)
