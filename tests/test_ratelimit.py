"""The shared per-connection rate window: atomic reservations, never exceeded across workers."""

from __future__ import annotations

import threading
import time
import types
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from integration_core.hookspecs import hookimpl
from integration_core.hub import Hub
from integration_core.models import RateLimit, TaskStatus
from integration_core.outbox import Outbound
from integration_core.providers import ledger as ledger_mod
from integration_core.ratelimit import Budget, reserve, sliding_safe
from integration_core.store.schema import connections, utcnow
from tests.workers.helpers import FAST, add_connection, invoice, tasks


def test_reservations_are_atomic_across_threads(hub: Hub) -> None:
    conn, _ = add_connection(hub)
    limit = RateLimit(requests=10, per_seconds=60)
    barrier = threading.Barrier(20)
    granted: list[int] = []

    def take() -> None:
        barrier.wait()
        granted.append(reserve(hub.engine, conn.id, limit, 1).granted)

    threads = [threading.Thread(target=take) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 10
    refused = reserve(hub.engine, conn.id, limit, 1)
    assert refused.granted == 0 and refused.retry_at is not None


def test_new_window_starts_after_the_old_one_ends(hub: Hub) -> None:
    conn, _ = add_connection(hub)
    limit = RateLimit(requests=3, per_seconds=0.2)
    assert reserve(hub.engine, conn.id, limit, 3).granted == 3
    full = reserve(hub.engine, conn.id, limit, 1)
    assert full.granted == 0
    time.sleep(max(0.0, (full.retry_at - utcnow()).total_seconds()) + 0.01)
    assert reserve(hub.engine, conn.id, limit, 2).granted == 2


def test_budget_reserves_in_chunks_and_refunds_what_it_did_not_use(hub: Hub) -> None:
    conn, _ = add_connection(hub)
    # 100 per 60 s becomes 10 per 6.67 s windows (sliding-safe); chunks of 4 are reserved at a time.
    budget = Budget(hub.engine, conn.id, RateLimit(requests=100, per_seconds=60), chunk=4)
    assert budget.limit == RateLimit(requests=10, per_seconds=60 / 9)

    def count() -> int:
        with hub.engine.connect() as db:
            return db.execute(
                sa.select(connections.c.rate_window_count).where(connections.c.id == conn.id)
            ).scalar_one()

    assert all(budget.take(1) for _ in range(5))
    assert count() == 8  # two chunks of 4 reserved, 5 used
    assert budget.refund() == 3 and count() == 5
    assert all(budget.take(1) for _ in range(5))
    assert not budget.take(1) and budget.retry_at is not None
    assert count() == 10


def test_sliding_safe_windows_never_exceed_the_limit_in_any_sliding_window(hub: Hub) -> None:
    """Zoho counts 100 requests in ANY minute; fixed windows must not allow two full windows back to back."""
    import datetime as dt

    conn, _ = add_connection(hub)
    for limit in (RateLimit(requests=100, per_seconds=60), RateLimit(requests=7, per_seconds=60)):
        with hub.engine.begin() as db:
            db.execute(connections.update().where(connections.c.id == conn.id)
                       .values(rate_window_start=None, rate_window_count=0))
        safe = sliding_safe(limit)
        start = utcnow()
        granted: list[dt.datetime] = []
        for step in range(0, 4 * 60_000, 250):  # every 0.25 s for four minutes, on a simulated clock
            now = start + dt.timedelta(milliseconds=step)
            if reserve(hub.engine, conn.id, safe, 1, now=now).granted:
                granted.append(now)
        window = dt.timedelta(seconds=limit.per_seconds)
        worst = max(sum(1 for t in granted if s <= t < s + window) for s in granted)
        assert worst <= limit.requests
        assert len(granted) >= 4 * limit.requests * 0.8  # and most of the allowed rate is used


def _metered_provider(hub: Hub, limit: RateLimit, log: dict[Any, int]) -> types.ModuleType:
    """The ledger with a small limit; every remote call is attributed to the window current when it ran."""

    def window(connection: Any) -> Any:
        with hub.engine.connect() as db:
            return db.execute(
                sa.select(connections.c.rate_window_start).where(connections.c.id == connection.id)
            ).scalar()

    def counted(ctx: Any, call: Any) -> Any:
        book = ledger_mod.ledger(str(ctx.settings["account"]))
        before = sum(book.calls.values())
        try:
            return call()
        finally:
            log[window(ctx)] += sum(book.calls.values()) - before

    @hookimpl
    def upsert_contact(ctx: Any, customer: Any) -> Any:
        return counted(ctx, lambda: ledger_mod.upsert_contact(ctx, customer))

    @hookimpl
    def push_invoice(ctx: Any, invoice: Any, remote_contact_id: str) -> Any:
        return counted(ctx, lambda: ledger_mod.push_invoice(ctx, invoice, remote_contact_id))

    @hookimpl
    def find_invoice(ctx: Any, invoice: Any) -> Any:
        return counted(ctx, lambda: ledger_mod.find_invoice(ctx, invoice))

    @hookimpl
    def rate_limit(ctx: Any) -> RateLimit:
        return limit

    module = types.ModuleType("metered")
    module.provider_info = ledger_mod.provider_info  # type: ignore[attr-defined]
    module.validate_settings = ledger_mod.validate_settings  # type: ignore[attr-defined]
    for fn in (upsert_contact, push_invoice, find_invoice, rate_limit):
        setattr(module, fn.__name__, fn)
    return module


def test_window_never_exceeded_across_workers(hub: Hub) -> None:
    limit = RateLimit(requests=7, per_seconds=0.3)
    calls: dict[Any, int] = defaultdict(int)
    hub.plugins.add_provider("metered", _metered_provider(hub, limit, calls))
    _conn, account = add_connection(hub, "metered")
    for i in range(12):
        hub.submit_invoice("t1", "prod", invoice(i, customer=i))  # new customer each: 3 calls per invoice
    workers = [Outbound(hub, f"w{i}", FAST) for i in range(2)]
    rate_limited = 0
    for n in range(2000):
        rate_limited += workers[n % 2].tick().rate_limited  # the lease changes hands between workers
        if all(t.status == TaskStatus.DONE for t in tasks(hub)):
            break
        time.sleep(0.005)
    assert all(t.status == TaskStatus.DONE for t in tasks(hub))
    assert len(ledger_mod.ledger(account).invoices) == 12
    assert rate_limited > 0  # the window really was the bottleneck
    assert len(calls) >= 4
    assert max(calls.values()) <= limit.requests, dict(calls)
    assert sum(calls.values()) == 36


def test_settle_returns_unused_calls_and_charges_extra_ones(hub: Hub) -> None:
    conn, _ = add_connection(hub)
    budget = Budget(hub.engine, conn.id, RateLimit(requests=100, per_seconds=60), chunk=1)

    def count() -> int:
        with hub.engine.connect() as db:
            return db.execute(
                sa.select(connections.c.rate_window_count).where(connections.c.id == conn.id)
            ).scalar_one()

    assert budget.take(5) and count() == 5
    budget.settle(5, 1)  # the provider made one request: four come back to this batch
    assert budget.available == 4
    assert budget.refund() == 4 and count() == 1
    assert budget.take(2)
    budget.settle(2, 4)  # two more than reserved were made: the shared window learns about them
    assert count() == 5
