"""How an in-flight task ends when it does not end done: retried with backoff, failed, dead or paused.

Every transition is guarded by the task's lease (``lease_owner`` is this worker), so a worker whose
lease expired cannot overwrite the outcome of the worker that took the task over.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from .. import mapping
from ..errors import AuthError, PermanentError, RateLimitedError, TransientError
from ..models import ConnectionStatus, RateLimit, TaskStatus
from ..ratelimit import Budget, WindowFull
from ..redact import safe_error
from ..store.schema import connections, outbox_tasks, utcnow
from .schedule import task_audit
from .settings import OutboundSettings, TickStats

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class _StopBatch(Exception):
    """Stop draining this connection for now (a retry schedule, a rate window, refused credentials)."""

    def __init__(
        self, not_before: dt.datetime | None = None, *, park: bool = False, rate_limited: bool = False
    ) -> None:
        self.not_before = not_before
        self.park = park  # the connection cannot push any more (credentials refused)
        self.rate_limited = rate_limited  # the account's window had no room for the next task


class _LeaseLost(Exception):
    pass


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

    def _guarded(self, task: Any, budget: Budget, stats: TickStats, push: Callable[[], _T]) -> _T | None:
        """Run one push; an error ends the attempt as its class says (``None``), or stops the batch."""
        try:
            return push()
        except WindowFull as full:
            self._requeue(task, full.retry_at, "rate window full", count_attempt=False)
            stats.rate_limited += 1
            raise _StopBatch(full.retry_at) from None
        except RateLimitedError as exc:
            wait = exc.retry_after if exc.retry_after is not None else _window(budget.limit)
            until = utcnow() + dt.timedelta(seconds=max(wait, 0.0))
            self._requeue(task, until, safe_error(exc), count_attempt=exc.uncertain, uncertain=exc.uncertain)
            stats.rate_limited += 1
            raise _StopBatch(until) from None
        except TransientError as exc:
            self._retry_or_die(task, safe_error(exc), exc.uncertain, stats, retry_after=exc.retry_after)
            raise _StopBatch() from None
        except AuthError as exc:
            self._auth_failed(task, safe_error(exc), stats)
            raise _StopBatch(park=True) from None
        except (PermanentError, mapping.MappingConflict) as exc:
            self._fail(task, getattr(exc, "message", None) or str(exc), stats)
            return None
        except Exception as exc:
            # Unknown failure: we cannot tell whether the remote applied the write, so look up first.
            log.warning("task %s: unexpected %s", task.id, type(exc).__name__)
            self._retry_or_die(task, safe_error(exc), True, stats)
            raise _StopBatch() from None


def _window(limit: RateLimit | None) -> float:
    return float(limit.per_seconds) if limit is not None else 60.0
