"""Per-connection request budget and in-flight slots, shared by every worker through the connection row.

Providers count their limits over a *sliding* window (say, 100 requests in any 60 s). The connection row
keeps a sliding-window log of the requests granted (``rate_state``: JSON), so the budget is spent per
request, as requests are made, and a full window is used to the last request without ever going over:

* a request is granted when fewer than ``L`` requests were granted in the last ``W + guard`` seconds; the
  ``guard`` covers the time between the grant here and the request's arrival at the provider (network
  jitter, clock differences);
* the log is bucketed (at most :data:`MAX_BUCKETS` buckets per window) so a large limit (10,000 a minute)
  keeps the row small; a bucket counts as granted at its end, which can only make the log stricter;
* the row is locked for the read-modify-write (``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite),
  so two workers or processes can never both take the last request of a window. The same lock keeps the
  in-flight slots: at most ``RateLimit.concurrency`` workers push to one account at a time, each with one
  request in flight (its calls are sequential); a slot held by a worker that died expires.

:func:`spend` runs inside the caller's transaction, so marking a task in flight and spending its first
request is one commit (see ``outbox/drain.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from .errors import RateLimitedError
from .models import RateLimit
from .store.db import lock_rows
from .store.schema import connections, utcnow

_SAVE = connections.update().where(connections.c.id == sa.bindparam("b_cid")).values(
    rate_state=sa.bindparam("b_state"))
MAX_BUCKETS = 500  # log resolution: W / MAX_BUCKETS (0.12 s for a minute)


def _epoch(now: dt.datetime | None) -> float:
    return now.timestamp() if now is not None else time.time()


def _load(raw: str | None) -> dict[str, Any]:
    try:
        state = json.loads(raw) if raw else {}
    except ValueError:  # an unreadable state is dropped: the worst case is one window's over-count
        state = {}
    if not isinstance(state, dict):
        state = {}
    state.setdefault("log", [])
    state.setdefault("busy", {})
    return state


def _bucket(limit: RateLimit, at: float) -> float:
    """The end of ``at``'s bucket: exact (to the millisecond) for small limits, coarser for large ones."""
    if limit.requests > MAX_BUCKETS:
        step = limit.per_seconds / MAX_BUCKETS
        at = math.ceil(at / step) * step
    return math.ceil(at * 1000) / 1000  # rounded up: a request never counts as earlier than it was


def _append(log: list[list[Any]], limit: RateLimit, at: float, n: int) -> None:
    key = _bucket(limit, at)
    if log and log[-1][0] == key:
        log[-1][1] += min(n, limit.requests)
    else:
        log.append([key, min(n, limit.requests)])


def wait_for(state: dict[str, Any], limit: RateLimit, n: int, now: float, guard: float, holder: str | None) -> float:
    """Seconds until ``n`` requests (and ``holder``'s in-flight slot) fit; 0.0 when they fit now.

    Drops expired log buckets and slots from ``state`` as a side effect."""
    horizon = limit.per_seconds + guard
    log = [[t, c] for t, c in state["log"] if t > now - horizon]
    state["log"] = log
    busy = {h: until for h, until in state["busy"].items() if until > now}
    state["busy"] = busy
    n = min(n, limit.requests)  # a call costlier than the whole limit still gets one full window
    wait = 0.0
    over = sum(c for _t, c in log) + n - limit.requests
    if over > 0:
        for t, c in log:  # the oldest buckets expire first
            over -= c
            if over <= 0:
                wait = t + horizon - now
                break
    if holder is not None and holder not in busy and len(busy) >= max(1, limit.concurrency):
        wait = max(wait, min(busy.values()) - now)
    return max(wait, 0.0)


def spend(
    db: sa.Connection,
    connection_id: str,
    limit: RateLimit,
    n: int,
    *,
    need: int | None = None,
    guard: float = 0.0,
    holder: str | None = None,
    hold_seconds: float = 300.0,
    now: dt.datetime | float | None = None,
    read: bool = True,
    raw_state: str | None = None,
) -> float:
    """In the caller's transaction: record ``n`` requests now if ``need`` (default ``n``) fit the window.

    With ``holder``, the worker also takes (or keeps) one of the account's in-flight slots until
    ``hold_seconds`` from now. ``read=False``: the caller read ``raw_state`` under the row's lock already.
    Returns 0.0 when granted, else the seconds to wait (nothing written)."""
    at = now if isinstance(now, float) else _epoch(now)
    state = _load(_read_locked(db, connection_id) if read else raw_state)
    wait = wait_for(state, limit, max(n, need or 0), at, guard, holder)
    if wait > 0:
        return wait
    if n > 0:
        _append(state["log"], limit, at, n)
    if holder is not None:
        state["busy"][holder] = round(at + hold_seconds, 3)
    db.execute(_SAVE, {"b_cid": connection_id, "b_state": json.dumps(state)})
    return 0.0


def _read_locked(db: sa.Connection, connection_id: str) -> str | None:
    c = connections.c
    return db.execute(lock_rows(db, sa.select(c.rate_state).where(c.id == connection_id))).scalar_one_or_none()


def restamp(db: sa.Connection, connection_id: str, limit: RateLimit, granted: float, *, now: float | None = None,
            guard: float = 0.0) -> bool:
    """Move one request granted at ``granted`` (not sent yet) to now, in the caller's transaction: the window
    holds the same count, and the request counts from when it is really sent. False when that grant has
    left the log already (the caller spends anew)."""
    at = time.time() if now is None else now
    state = _load(_read_locked(db, connection_id))
    wait_for(state, limit, 0, at, guard, None)  # drops expired buckets
    log = state["log"]
    key = _bucket(limit, granted)
    for i, (t, count) in enumerate(log):
        if t == key and count > 0:
            if count == 1:
                del log[i]
            else:
                log[i][1] = count - 1
            break
    else:
        return False
    _append(log, limit, at, 1)
    db.execute(_SAVE, {"b_cid": connection_id, "b_state": json.dumps(state)})
    return True


def drop_holder(raw: str | None, holder: str) -> str | None:
    """``raw`` without ``holder``'s in-flight slot, or None when it holds none (nothing to write)."""
    state = _load(raw)
    if holder not in state["busy"]:
        return None
    del state["busy"][holder]
    return json.dumps(state)


def release(db: sa.Connection, connection_id: str, holder: str) -> None:
    """Give ``holder``'s in-flight slot back (in the caller's transaction)."""
    raw = drop_holder(_read_locked(db, connection_id), holder)
    if raw is not None:
        db.execute(_SAVE, {"b_cid": connection_id, "b_state": raw})


def granted_in(engine: sa.Engine, connection_id: str) -> int:
    """Requests in the connection's log (diagnostics and tests)."""
    with engine.connect() as db:
        raw = db.execute(sa.select(connections.c.rate_state).where(connections.c.id == connection_id)).scalar()
    return sum(c for _t, c in _load(raw)["log"])


def usage(raw_state: str | None, seconds: float = 60.0, now: dt.datetime | None = None) -> tuple[int, int]:
    """From a stored ``rate_state``: requests granted in the last ``seconds`` and live in-flight slots
    (what an operator view shows)."""
    state, at = _load(raw_state), _epoch(now)
    recent = sum(count for when, count in state["log"] if when > at - seconds)
    return recent, sum(1 for until in state["busy"].values() if until > at)


def in_flight(engine: sa.Engine, connection_id: str, now: dt.datetime | None = None) -> list[str]:
    """Holders of live in-flight slots (diagnostics and tests)."""
    with engine.connect() as db:
        raw = db.execute(sa.select(connections.c.rate_state).where(connections.c.id == connection_id)).scalar()
    at = _epoch(now)
    return sorted(h for h, until in _load(raw)["busy"].items() if until > at)


class WindowFull(Exception):
    """No room for the next call within ``max_wait``: the task waits until ``retry_at``."""

    def __init__(self, retry_at: dt.datetime) -> None:
        super().__init__(f"rate window full until {retry_at:%H:%M:%S}")
        self.retry_at = retry_at


class Budget:
    """One worker's use of one connection's shared budget during a batch.

    Before each hook call the worker checks that the call's declared cost fits (``RateLimit.costs``, else
    ``fallback_costs``) and spends it: all of it up front for a provider that does not report its requests,
    only the first request for one that does (``RateLimit.metered``), whose every further request is spent
    when the provider reports it (``ProviderContext.note_request`` calls :meth:`on_request`). A short wait
    (up to ``max_wait``) is slept; a longer one ends the batch until the window has room.
    """

    def __init__(
        self,
        engine: sa.Engine,
        connection_id: str,
        limit: RateLimit | None,
        *,
        holder: str,
        fallback_costs: Mapping[str, int] | None = None,
        guard: float = 0.0,
        max_wait: float = 2.0,
        hold_seconds: float = 300.0,
    ) -> None:
        self.engine = engine
        self.connection_id = connection_id
        self.limit = limit
        self.holder = holder
        self.fallback_costs = dict(fallback_costs or {})
        self.guard = guard
        self.max_wait = max_wait
        self.hold_seconds = hold_seconds
        self.credits = 0  # requests spent in the log but not made yet (metered providers)
        self._credit_at = 0.0
        self._granted = 0.0  # when the credit was granted (the log's clock)
        self.holding = False

    def cost(self, operation: str) -> int:
        if self.limit is not None and operation in self.limit.costs:
            return max(0, int(self.limit.costs[operation]))
        return max(0, int(self.fallback_costs.get(operation, 1)))

    def take_in(self, db: sa.Connection, operation: str, *, read: bool = True, raw_state: str | None = None) -> float:
        """Spend ``operation``'s cost in the caller's transaction; 0.0 when granted, else the wait.
        ``read=False``: ``raw_state`` is the row's ``rate_state``, read under its lock in this transaction."""
        if self.limit is None:
            return 0.0
        cost = self.cost(operation)
        n = min(cost, 1) if self.limit.metered else cost
        at = time.time()
        wait = spend(db, self.connection_id, self.limit, n, need=cost, guard=self.guard, holder=self.holder,
                     hold_seconds=self.hold_seconds, now=at, read=read, raw_state=raw_state)
        if wait == 0.0:
            self.credits, self._credit_at, self._granted, self.holding = n, time.monotonic(), at, True
        return wait

    def take(self, operation: str) -> None:
        """Spend ``operation``'s cost in a transaction of its own, sleeping up to ``max_wait``."""
        self._until_granted(lambda db: self.take_in(db, operation), WindowFull)

    def on_request(self, count: int = 1) -> None:
        """A metered provider is about to send ``count`` request(s): spend them unless already spent."""
        if self.limit is None or not self.limit.metered:
            return
        for _ in range(count):
            if self.credits > 0:
                self.credits -= 1
                if time.monotonic() - self._credit_at <= max(self.guard / 2, 0.05):
                    continue
                # Granted too long ago to pass for sent now (the guard covers only the way to the provider):
                # that grant moves to now, so the window keeps its count and no second request is spent.
                with self.engine.begin() as db:
                    if restamp(db, self.connection_id, self.limit, self._granted, guard=self.guard):
                        continue
            self.credits = 0
            self._until_granted(self._one, RateLimitedError)

    def end_call(self) -> None:
        """A hook call returned: credits it did not use stay counted (stricter, never over)."""
        self.credits = 0

    def release_in(self, db: sa.Connection) -> None:
        if self.limit is not None and self.holding:
            release(db, self.connection_id, self.holder)
            self.holding = False

    def _one(self, db: sa.Connection) -> float:
        assert self.limit is not None
        return spend(db, self.connection_id, self.limit, 1, guard=self.guard, holder=self.holder,
                     hold_seconds=self.hold_seconds)

    def _until_granted(self, attempt: Any, error: type[Exception]) -> None:
        while True:
            with self.engine.begin() as db:
                wait = attempt(db)
            if wait == 0.0:
                return
            if wait > self.max_wait:
                if error is RateLimitedError:
                    raise RateLimitedError("the account's request budget is spent", retry_after=wait)
                raise WindowFull(utcnow() + dt.timedelta(seconds=wait))
            time.sleep(wait)
