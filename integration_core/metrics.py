"""Prometheus metrics (``prometheus_client``), served at ``/metrics`` by ``integration-core serve``.

Counters and histograms live in this process's :data:`REGISTRY`; the outbox gauges are read from the
database at each scrape (so every worker process reports the same, shared numbers). Labels carry
provider names only as the runtime values of a connection's ``provider``: the core names none.
docs/operations.md lists every metric with an example alert.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .models import TaskStatus
from .store.schema import connections, outbox_tasks, utcnow

if TYPE_CHECKING:
    from .hub import Hub
    from .outbox.settings import TickStats

METRICS_PATH = "/metrics"
REGISTRY = CollectorRegistry(auto_describe=True)

PUSHES = Counter(
    "integration_core_pushes", "Outbox push attempts by outcome (done, adopted, retrying, failed, dead, paused, "
    "rate_limited, not_finished).", ["provider", "outcome"], registry=REGISTRY,
)
PUSH_SECONDS = Histogram(
    "integration_core_push_duration_seconds", "Time of one push attempt, provider calls included.", ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=REGISTRY,
)
WEBHOOKS = Counter(
    "integration_core_webhooks", "Webhook deliveries by outcome (ok, retry, unauthorized, malformed, not_found, "
    "too_large, error, ...).", ["provider", "outcome"], registry=REGISTRY,
)
RATE_LIMIT_WAITS = Counter(
    "integration_core_rate_limit_waits", "Pushes put off for a rate limit (the shared window full, or the "
    "provider answered 429).", ["provider"], registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "integration_core_token_refreshes", "Access-token refreshes reported by providers, by outcome (ok, failed).",
    ["provider", "outcome"], registry=REGISTRY,
)

# TickStats fields that name a push's outcome, in the order they are looked at.
_OUTCOMES = ("adopted", "done", "failed", "dead", "paused", "rate_limited", "retrying")
_WEBHOOK_OUTCOMES = {
    200: "ok", 503: "retry", 401: "unauthorized", 400: "malformed", 404: "not_found",
    405: "method_not_allowed", 411: "length_required", 413: "too_large", 500: "error",
}


@contextmanager
def push_observed(provider: str, stats: TickStats) -> Iterator[None]:
    """Around one task's processing: its duration and outcome, read from what it added to ``stats``."""
    before = attrs.asdict(stats)
    started = time.monotonic()
    try:
        yield
    finally:
        after = attrs.asdict(stats)
        if after["attempted"] > before["attempted"]:
            outcome = next((name for name in _OUTCOMES if after[name] > before[name]), "not_finished")
            PUSHES.labels(provider, outcome).inc()
            PUSH_SECONDS.labels(provider).observe(time.monotonic() - started)
            if outcome == "rate_limited":
                RATE_LIMIT_WAITS.labels(provider).inc()


def token_refreshed(provider: str, ok: bool) -> None:
    TOKEN_REFRESHES.labels(provider, "ok" if ok else "failed").inc()


def webhook_answered(provider: str | None, status: int) -> None:
    """One webhook delivery; ``provider`` only when a connection was found (unknown names are not labels)."""
    WEBHOOKS.labels(provider or "unknown", _WEBHOOK_OUTCOMES.get(status, str(status))).inc()


class OutboxCollector(Collector):
    """Gauges read from the shared database at each scrape: tasks by status and provider, and the age of
    the oldest pending task per provider."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[GaugeMetricFamily]:
        tasks = GaugeMetricFamily(
            "integration_core_outbox_tasks", "Outbox tasks by status and provider.", labels=["status", "provider"]
        )
        oldest = GaugeMetricFamily(
            "integration_core_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending or in-flight task per provider (0 when none).", labels=["provider"],
        )
        t, c = outbox_tasks.c, connections.c
        joined = outbox_tasks.join(connections, t.connection_id == c.id)
        waiting = (TaskStatus.PENDING, TaskStatus.IN_FLIGHT)
        with self.engine.connect() as db:
            counts = db.execute(
                sa.select(c.provider, t.status, sa.func.count()).select_from(joined).group_by(c.provider, t.status)
            ).all()
            firsts = db.execute(
                sa.select(c.provider, sa.func.min(t.created_at)).select_from(joined)
                .where(t.status.in_(waiting)).group_by(c.provider)
            ).all()
        seen: dict[str, set[str]] = {}
        for provider, status, count in counts:
            tasks.add_metric([status, provider], float(count))
            seen.setdefault(provider, set()).add(status)
        for provider, statuses in seen.items():
            for status in TaskStatus:
                if status not in statuses:
                    tasks.add_metric([status.value, provider], 0.0)
        now = utcnow()
        ages = {provider: _age(now, first) for provider, first in firsts}
        for provider in seen:
            oldest.add_metric([provider], ages.get(provider, 0.0))
        yield tasks
        yield oldest


def _age(now: dt.datetime, first: Any) -> float:
    if isinstance(first, str):  # SQLite's aggregate may come back as text, without the column's conversion
        first = dt.datetime.fromisoformat(first)
    if not isinstance(first, dt.datetime):
        return 0.0
    if first.tzinfo is None:  # stored as naive UTC
        first = first.replace(tzinfo=dt.UTC)
    return max(0.0, (now - first).total_seconds())


def exposition(hub: Hub) -> bytes:
    """The text exposition: this process's counters, then the database's outbox gauges."""
    per_hub = CollectorRegistry(auto_describe=False)
    per_hub.register(OutboxCollector(hub.engine))
    return generate_latest(REGISTRY) + generate_latest(per_hub)


StartResponse = Callable[..., Any]


def with_metrics(app: Callable[..., Iterable[bytes]], hub: Hub) -> Callable[..., Iterable[bytes]]:
    """``app`` with ``GET /metrics`` answered in front of it."""

    def metrics_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            return app(environ, start_response)
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET"), ("Content-Length", "0")])
            return [b""]
        body = exposition(hub)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [body]

    return metrics_app
