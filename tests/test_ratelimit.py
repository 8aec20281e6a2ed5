"""The shared per-connection request budget: a sliding-window log and in-flight slots in the connection row,
spent per request, never exceeded across workers, and used to (nearly) the whole limit."""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import time
import types
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from integration_core import ratelimit
from integration_core.hookspecs import hookimpl
from integration_core.hub import Hub
from integration_core.models import RateLimit, TaskStatus
from integration_core.outbox import Outbound
from integration_core.providers import ledger as ledger_mod
from integration_core.ratelimit import MAX_BUCKETS, Budget, spend
from integration_core.store.schema import connections, utcnow
from tests.workers.helpers import FAST, add_connection, invoice, tasks


def _spend(hub: Hub, cid: str, limit: RateLimit, n: int = 1, **kw: Any) -> float:
    with hub.engine.begin() as db:
        return spend(db, cid, limit, n, **kw)


def _max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def test_spending_is_atomic_across_threads(hub: Hub) -> None:
    conn, _ = add_connection(hub)
    limit = RateLimit(requests=10, per_seconds=60)
    barrier = threading.Barrier(20)
    waits: list[float] = []

    def take() -> None:
        barrier.wait()
        waits.append(_spend(hub, conn.id, limit))

    threads = [threading.Thread(target=take) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for w in waits if w == 0.0) == 10
    assert ratelimit.granted_in(hub.engine, conn.id) == 10
    assert 59 < _spend(hub, conn.id, limit) <= 60  # refused: the oldest request leaves the window in ~60 s


def test_room_returns_as_the_oldest_requests_leave_the_window(hub: Hub) -> None:
    conn, _ = add_connection(hub)
    limit = RateLimit(requests=3, per_seconds=0.3)
    assert _spend(hub, conn.id, limit, 2) == 0.0
    time.sleep(0.1)
    assert _spend(hub, conn.id, limit, 1) == 0.0
    wait = _spend(hub, conn.id, limit, 2)  # needs the first two to leave: ~0.2 s from now
    assert 0.1 < wait <= 0.21
    time.sleep(wait + 0.01)
    assert _spend(hub, conn.id, limit, 2) == 0.0
    assert _spend(hub, conn.id, limit, 1) > 0  # the third request is still in its window


@pytest.mark.parametrize("limit", [RateLimit(100, 60), RateLimit(7, 60), RateLimit(10_000, 60)])
def test_log_never_exceeds_the_limit_in_any_sliding_window_and_uses_it_all(hub: Hub, limit: RateLimit) -> None:
    """Zoho counts 100 requests in ANY minute. On a simulated clock, a client asking as fast as it may
    never gets more than L in any window W, and over three windows gets at least 95 % of 3 L."""
    conn, _ = add_connection(hub)
    start = utcnow().replace(microsecond=0)
    granted: list[float] = []
    batch = max(1, limit.requests // 50)  # a large limit: several requests per ask keep the test short
    step = int(limit.per_seconds * 1_000_000 / max(2 * limit.requests, 40)) * batch  # asks twice as often (µs)
    for at in range(0, int(3 * limit.per_seconds * 1_000_000), step):
        if _spend(hub, conn.id, limit, batch, now=start + dt.timedelta(microseconds=at)) == 0.0:
            granted.extend([at / 1_000_000] * batch)
    assert _max_in_any_window(granted, limit.per_seconds) <= limit.requests
    assert len(granted) >= 0.95 * 3 * limit.requests
    with hub.engine.connect() as db:
        raw = db.execute(sa.select(connections.c.rate_state).where(connections.c.id == conn.id)).scalar()
    assert len(ratelimit._load(raw)["log"]) <= min(limit.requests, MAX_BUCKETS) + 1  # the row stays small


def test_in_flight_slots_bound_the_workers_pushing_to_one_account(hub: Hub) -> None:
    conn, _ = add_connection(hub)
    limit = RateLimit(requests=1000, per_seconds=60, concurrency=2)
    assert _spend(hub, conn.id, limit, holder="a", hold_seconds=30) == 0.0
    assert _spend(hub, conn.id, limit, holder="b", hold_seconds=0.2) == 0.0
    assert _spend(hub, conn.id, limit, holder="a", hold_seconds=30) == 0.0  # a holder keeps its slot
    wait = _spend(hub, conn.id, limit, holder="c")
    assert 0.1 < wait <= 0.2  # until b's slot expires (a worker that died)
    with hub.engine.begin() as db:
        ratelimit.release(db, conn.id, "a")
    assert _spend(hub, conn.id, limit, holder="c") == 0.0
    assert ratelimit.in_flight(hub.engine, conn.id) == ["b", "c"]
    assert ratelimit.granted_in(hub.engine, conn.id) == 4  # refused attempts spent nothing


def test_budget_spends_declared_costs_up_front_or_per_request_when_metered(hub: Hub) -> None:
    conn, _ = add_connection(hub)
    costs = {"upsert_contact": 2, "push_invoice": 1}
    plain = Budget(hub.engine, conn.id, RateLimit(100, 60, costs=costs), holder="w", guard=0.5)
    with hub.engine.begin() as db:
        assert plain.take_in(db, "upsert_contact") == 0.0
    assert ratelimit.granted_in(hub.engine, conn.id) == 2  # a provider that does not report: its worst case
    plain.on_request()  # ignored: not metered
    assert ratelimit.granted_in(hub.engine, conn.id) == 2

    other, _ = add_connection(hub, tenant="t2")
    metered = Budget(hub.engine, other.id, RateLimit(3, 60, costs=costs, metered=True), holder="w", guard=0.5)
    with hub.engine.begin() as db:
        assert metered.take_in(db, "upsert_contact") == 0.0  # room for 2 checked, 1 spent
    assert ratelimit.granted_in(hub.engine, other.id) == 1
    metered.on_request()  # the search: the credit from take_in
    assert ratelimit.granted_in(hub.engine, other.id) == 1
    metered.on_request()  # the create: spent as it is made
    metered.end_call()
    assert ratelimit.granted_in(hub.engine, other.id) == 2
    metered.take("push_invoice")
    assert ratelimit.granted_in(hub.engine, other.id) == 3
    metered.on_request()
    with pytest.raises(ratelimit.WindowFull):  # a full minute ahead: longer than max_wait
        metered.take("push_invoice")
    assert metered.cost("find_invoice") == 1  # not declared: the fallback (1)


def test_a_stale_credit_moves_to_its_send_time_and_is_not_spent_twice(hub: Hub) -> None:
    """The first request of a task is spent when the task starts; sent later than guard/2 (a loaded machine),
    its grant moves to the moment of sending instead of a second request being spent."""
    conn, _ = add_connection(hub)
    limit = RateLimit(5, 60, costs={"push_invoice": 1}, metered=True)
    budget = Budget(hub.engine, conn.id, limit, holder="w", guard=0.1)
    with hub.engine.begin() as db:
        assert budget.take_in(db, "push_invoice") == 0.0
    granted_at = time.time()
    time.sleep(0.12)  # older than max(guard / 2, 0.05)
    budget.on_request()
    assert ratelimit.granted_in(hub.engine, conn.id) == 1  # moved, not spent again
    with hub.engine.connect() as db:
        raw = db.execute(sa.select(connections.c.rate_state).where(connections.c.id == conn.id)).scalar()
    (when, count), = ratelimit._load(raw)["log"]
    assert count == 1 and when >= granted_at + 0.1  # counted from when it was sent
    budget.on_request()  # a second request of the same call: spent as it is made
    assert ratelimit.granted_in(hub.engine, conn.id) == 2


def _ledger_with_clock(hub: Hub, limit: RateLimit, calls: list[float], *, metered: bool) -> types.ModuleType:
    """The ledger with a small limit. Every remote call records when it ran; a metered variant reports
    each call (``ctx.note_request``) just before making it, as the Zoho and QuickBooks clients do."""
    current: dict[int, Any] = {}

    def timed(ctx: Any, call: Any) -> Any:
        book = ledger_mod.ledger(str(ctx.settings["account"]))
        if "_count" not in vars(book):
            original = book._count

            def counted(op: str) -> None:
                if metered:
                    current[threading.get_ident()].note_request()
                calls.append(time.monotonic())
                original(op)

            book._count = counted  # type: ignore[method-assign]
        current[threading.get_ident()] = ctx
        return call()

    @hookimpl
    def upsert_contact(ctx: Any, customer: Any) -> Any:
        return timed(ctx, lambda: ledger_mod.upsert_contact(ctx, customer))

    @hookimpl
    def push_invoice(ctx: Any, invoice: Any, remote_contact_id: str) -> Any:
        return timed(ctx, lambda: ledger_mod.push_invoice(ctx, invoice, remote_contact_id))

    @hookimpl
    def find_invoice(ctx: Any, invoice: Any) -> Any:
        return timed(ctx, lambda: ledger_mod.find_invoice(ctx, invoice))

    @hookimpl
    def rate_limit(ctx: Any) -> RateLimit:
        return limit

    module = types.ModuleType("metered")
    module.provider_info = ledger_mod.provider_info  # type: ignore[attr-defined]
    module.validate_settings = ledger_mod.validate_settings  # type: ignore[attr-defined]
    for fn in (upsert_contact, push_invoice, find_invoice, rate_limit):
        setattr(module, fn.__name__, fn)
    return module


@pytest.mark.parametrize("metered", [False, True], ids=["declared-costs", "metered"])
def test_window_never_exceeded_across_workers(hub: Hub, metered: bool) -> None:
    # A new customer each: 3 calls per invoice (contact search + create, invoice), 6 invoices = 18 calls.
    limit = RateLimit(requests=4, per_seconds=1.0, costs={"upsert_contact": 2, "push_invoice": 1}, metered=metered)
    calls: list[float] = []
    hub.plugins.add_provider("metered", _ledger_with_clock(hub, limit, calls, metered=metered))
    _conn, account = add_connection(hub, "metered")
    for i in range(6):
        hub.submit_invoice("t1", "prod", invoice(i, customer=i))
    # No wait is slept in place: every full window ends the batch, so it is counted as rate limited.
    settings = attrs.evolve(FAST, rate_guard_seconds=0.05, rate_wait_seconds=0.0)
    workers = [Outbound(hub, f"w{i}", settings) for i in range(2)]
    rate_limited = 0
    for n in range(3000):
        rate_limited += workers[n % 2].tick().rate_limited  # the lease changes hands between workers
        if all(t.status == TaskStatus.DONE for t in tasks(hub)):
            break
        time.sleep(0.005)
    assert all(t.status == TaskStatus.DONE for t in tasks(hub))
    assert len(ledger_mod.ledger(account).invoices) == 6
    assert rate_limited > 0  # the window really was the bottleneck
    assert len(calls) == 18  # no call repeated, none lost
    assert calls[-1] - calls[0] >= 4 * limit.per_seconds  # 18 calls at 4 per window span 4+ windows
    assert _max_in_any_window(calls, limit.per_seconds) <= limit.requests


def test_a_task_waits_for_a_free_in_flight_slot(hub: Hub) -> None:
    """Another worker still pushing to the account (its slot held) with concurrency 1: nothing is sent
    and the task stays pending, not counted as an attempt, until the slot is free."""
    limit = RateLimit(requests=100, per_seconds=60, concurrency=1)
    calls: list[float] = []
    hub.plugins.add_provider("metered", _ledger_with_clock(hub, limit, calls, metered=True))
    conn, account = add_connection(hub, "metered")
    hub.submit_invoice("t1", "prod", invoice(1, customer=1))
    _spend(hub, conn.id, limit, 0, holder="someone-else", hold_seconds=3.0)
    outbound = Outbound(hub, "w1", attrs.evolve(FAST, rate_wait_seconds=0.5))
    stats = outbound.tick()
    assert stats.rate_limited == 1 and stats.done == 0 and calls == []
    (task,) = tasks(hub)
    assert task.status == TaskStatus.PENDING and task.attempts == 0
    with hub.engine.begin() as db:
        ratelimit.release(db, conn.id, "someone-else")
    deadline = time.monotonic() + 10
    while tasks(hub)[0].status != TaskStatus.DONE and time.monotonic() < deadline:
        outbound.tick()
        time.sleep(0.02)
    assert tasks(hub)[0].status == TaskStatus.DONE and len(calls) == 3
    assert ratelimit.in_flight(hub.engine, conn.id) == []  # the worker gave its slot back with the lease
    assert len(ledger_mod.ledger(account).invoices) == 1
