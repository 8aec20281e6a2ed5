"""Per-connection request budget, shared by every worker through the connection row.

The connection lease already guarantees one worker per account at a time, but a lease can change hands
mid-window (a worker dies, another takes over). Keeping the window (``rate_window_start``,
``rate_window_count``) in the row makes the limit hold across hand-overs and processes. Reservations are
atomic conditional UPDATEs, so two writers can never both take the last calls of a window.
"""

from __future__ import annotations

import datetime as dt

import attrs
import sqlalchemy as sa

from .models import RateLimit
from .store.schema import connections, utcnow


@attrs.frozen
class Reservation:
    """``granted`` calls were reserved; when 0, ``retry_at`` is when the current window ends."""

    granted: int
    retry_at: dt.datetime | None = None


def reserve(
    engine: sa.Engine, connection_id: str, limit: RateLimit, n: int, *, now: dt.datetime | None = None
) -> Reservation:
    """Reserve ``n`` calls in the connection's current window, or none at all.

    Two conditional UPDATEs: start a new window when the old one has ended, else add to the current
    window only while ``count + n`` stays within the limit. Each is a single atomic statement.
    """
    if n <= 0:
        return Reservation(0)
    if n > limit.requests:
        n = limit.requests
    now = now or utcnow()
    window = dt.timedelta(seconds=limit.per_seconds)
    threshold = now - window
    c = connections.c
    with engine.begin() as db:
        fresh = db.execute(
            connections.update()
            .where(c.id == connection_id, sa.or_(c.rate_window_start.is_(None), c.rate_window_start <= threshold))
            .values(rate_window_start=now, rate_window_count=n)
        )
        if fresh.rowcount == 1:
            return Reservation(n)
        more = db.execute(
            connections.update()
            .where(
                c.id == connection_id,
                c.rate_window_start > threshold,
                c.rate_window_count + n <= limit.requests,
            )
            .values(rate_window_count=c.rate_window_count + n)
        )
        if more.rowcount == 1:
            return Reservation(n)
        start = db.execute(sa.select(c.rate_window_start).where(c.id == connection_id)).scalar_one_or_none()
    retry_at = (start + window) if start is not None else now
    return Reservation(0, max(retry_at, now))


class Budget:
    """Calls a worker may still make for one connection in this batch, reserved a few at a time.

    Unused reserved calls are simply not given back: the store's count can only over-estimate use,
    which keeps the account under its limit.
    """

    def __init__(self, engine: sa.Engine, connection_id: str, limit: RateLimit | None, chunk: int = 5) -> None:
        self.engine = engine
        self.connection_id = connection_id
        self.limit = limit
        self.chunk = max(1, chunk)
        self.available = 0
        self.retry_at: dt.datetime | None = None

    def take(self, n: int = 1) -> bool:
        """True when ``n`` calls may be made now; False sets :attr:`retry_at` (the window's end)."""
        if self.limit is None:
            return True
        n = min(n, self.limit.requests)  # a call costlier than a whole window still gets one window
        if self.available >= n:
            self.available -= n
            return True
        need = n - self.available
        for size in (max(need, min(self.chunk, self.limit.requests)), need):
            got = reserve(self.engine, self.connection_id, self.limit, size)
            if got.granted >= need:
                self.available += got.granted - n
                return True
            self.retry_at = got.retry_at
        return False
