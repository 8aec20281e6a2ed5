"""Whose clock a lease is read by (docs/operations.md, "Clocks and leases").

A lease is written as an end time. Comparing it with each worker's own clock lets a worker whose clock
runs ahead by more than the lease take over work that is still running, and push an invoice twice. So:

* on PostgreSQL every lease is granted, renewed and judged expired by the **database's** clock, the one
  clock all workers share;
* on SQLite (one machine, no server clock: even SQLite's ``now`` is the calling process's clock) a worker
  takes an in-flight task over only after it has itself watched that same lease stay unchanged for the
  lease's whole length, measured by its own monotonic clock. A skewed wall clock proves nothing there.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ..store.db import is_postgres
from ..store.schema import utcnow


class LeaseClock:
    """``now(db)`` for writing and judging leases, and ``expired`` for taking one over."""

    def __init__(
        self,
        engine: sa.Engine,
        lease_seconds: float,
        clock: Callable[[], dt.datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = is_postgres(engine)
        self.lease_seconds = lease_seconds
        self.clock = clock or utcnow
        self.monotonic = monotonic
        self._seen: dict[Any, tuple[Any, Any, float]] = {}
        self._lock = threading.Lock()

    def now(self, db: sa.Connection) -> dt.datetime:
        """The time leases are written in: the database's clock on PostgreSQL, else this process's."""
        if self.shared:
            value = db.execute(sa.select(sa.func.timezone("UTC", sa.func.clock_timestamp()))).scalar_one()
            return value.replace(tzinfo=dt.UTC)
        return self.clock()

    def expired(self, db: sa.Connection, key: Any, owner: Any, until: dt.datetime | None, granted: Any) -> bool:
        """Whether the lease ``(owner, until)`` on ``key`` can be proven expired by the clock that granted it.

        ``granted`` is when it was written (by the same clock as ``until``): its length is ``until - granted``.
        """
        if until is None:
            return True
        if self.shared:
            return bool(until < self.now(db))
        length = self.lease_seconds
        if isinstance(granted, dt.datetime):
            length = max(length, (until - granted).total_seconds())
        now = self.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None or seen[:2] != (owner, until):
                if len(self._seen) > 10_000:
                    self._seen.clear()
                self._seen[key] = (owner, until, now)
                return False
            return now - seen[2] >= length
