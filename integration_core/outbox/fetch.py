"""Fetch tasks: thin notices stored by the inbox are fetched here, through the provider's ``fetch_events`` hook,
under the connection's rate limit and with the outbox's retries; the events fetched go through the inbox
(:func:`integration_core.inbound.apply`) with their own dedupe keys, so a notice fetched twice is harmless.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import inbound
from ..context import ProviderContext
from ..errors import TransientError
from ..models import EVENT_TYPES, Connection, Event, Notice, TaskStatus
from ..plugins import ProviderHooks
from ..ratelimit import Budget
from ..redact import safe_error
from ..store.schema import utcnow
from .finish import TaskTransitions, _StopBatch
from .settings import TickStats

log = logging.getLogger(__name__)
_EVENT_TYPES = tuple(EVENT_TYPES.values())


class FetchTasks(TaskTransitions):
    """Tasks of kind ``fetch`` of one worker's drain (a part of :class:`~.drain.Outbound`)."""

    def _process_fetch(
        self, conn: Connection, ctx: ProviderContext, provider: ProviderHooks, budget: Budget, task: Any,
        stats: TickStats,
    ) -> None:
        notices = task.payload.get("notices") if isinstance(task.payload, dict) else None
        if not isinstance(notices, list) or not notices:
            self._fail(task, "bad fetch payload: no notices", stats)
            return
        if not provider.implements("fetch_events"):
            self._fail(task, f"provider {conn.provider} has no fetch_events hook: the notice cannot be fetched", stats)
            return
        events = self._guarded(task, budget, stats, lambda: self._fetch(ctx, provider, budget, notices))
        if events is None:
            return
        try:
            outcomes = inbound.apply(self.hub, conn, events)
        except Exception as exc:  # our own store failed: keep the task, retry later
            self._retry_or_die(task, safe_error(exc), False, stats)
            raise _StopBatch() from None
        summary = inbound.summarize(outcomes)
        detail = f"fetched {len(events)} event(s): " + ", ".join(f"{k} {v}" for k, v in summary.items() if v)
        if self._finish(task, "done", detail, status=TaskStatus.DONE, last_error=None, completed_at=utcnow()):
            stats.done += 1

    def _fetch(self, ctx: ProviderContext, provider: ProviderHooks, budget: Budget, notices: list[Any]) -> list[Event]:
        budget.take("fetch_events")  # the declared cost (RateLimit.costs, else the outbox's call costs)
        try:
            events = provider.fetch_events(ctx=ctx, notices=notices)
        finally:
            budget.end_call()
        if events is None or isinstance(events, str | bytes | dict):
            raise TransientError("fetch_events returned no list of events")
        events = list(events)
        if not all(isinstance(e, _EVENT_TYPES) and not isinstance(e, Notice) for e in events):
            raise TransientError("fetch_events must return normalized events (no notices)")
        return events
