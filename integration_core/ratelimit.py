"""Per-connection request budget, shared by every worker through the connection row.

The connection lease already guarantees one worker per account at a time, but a lease can change hands
mid-window (a worker dies, another takes over). Keeping the window (``rate_window_start``,
``rate_window_count``) in the row makes the limit hold across hand-overs and processes. Reservations are
atomic conditional UPDATEs, so two writers can never both take the last calls of a window.

Providers count their limits over a *sliding* window (say, 100 requests in any minute), while a row can
only hold a fixed one. :func:`sliding_safe` turns the provider's limit into shorter fixed windows that
can never add up to more than the limit in any sliding window of the provider's length.
"""

from __future__ import annotations

import datetime as dt

import attrs
import sqlalchemy as sa

from .models import RateLimit
from .store.schema import connections, utcnow

MAX_SUBWINDOWS = 10


def sliding_safe(limit: RateLimit, min_requests: int = 1) -> RateLimit:
    """Fixed windows of ``W/k`` allowing ``L // (k+1)`` each keep every sliding window ``W`` at most ``L``.

    A sliding window of length ``W`` overlaps at most ``k + 1`` consecutive windows of length ``W/k``.
    ``k`` is chosen to use as much of the limit as possible (90 % for a limit of 100 per minute) while each
    window still holds ``min_requests`` (the cost of one whole task, so a task never straddles windows).
    """
    if limit.requests <= 1:
        return limit
    candidates = [
        k for k in range(1, min(MAX_SUBWINDOWS, limit.requests - 1) + 1) if limit.requests // (k + 1) >= min_requests
    ]
    if not candidates:  # a limit too small for one task per window: halve it, the best that stays safe
        return RateLimit(requests=limit.requests // 2, per_seconds=limit.per_seconds, concurrency=limit.concurrency)
    best_k = max(candidates, key=lambda k: k * (limit.requests // (k + 1)))
    return RateLimit(
        requests=limit.requests // (best_k + 1),
        per_seconds=limit.per_seconds / best_k,
        concurrency=limit.concurrency,
    )


@attrs.frozen
class Reservation:
    """``granted`` calls were reserved in the window that began at ``window_start``; when 0,
    ``retry_at`` is when the current window ends."""

    granted: int
    retry_at: dt.datetime | None = None
    window_start: dt.datetime | None = None


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
            return Reservation(n, window_start=now)
        more = db.execute(
            connections.update()
            .where(
                c.id == connection_id,
                c.rate_window_start > threshold,
                c.rate_window_count + n <= limit.requests,
            )
            .values(rate_window_count=c.rate_window_count + n)
        )
        start = db.execute(sa.select(c.rate_window_start).where(c.id == connection_id)).scalar_one_or_none()
        if more.rowcount == 1:
            return Reservation(n, window_start=start)
    retry_at = (start + window) if start is not None else now
    return Reservation(0, max(retry_at, now))


class Budget:
    """Calls a worker may still make for one connection in this batch, reserved a few at a time.

    The provider's limit is made :func:`sliding_safe` first. Calls reserved but not made are handed
    back with :meth:`refund` at the end of a batch, while their window is still the current one.
    """

    def __init__(
        self, engine: sa.Engine, connection_id: str, limit: RateLimit | None, chunk: int = 5, *, min_requests: int = 1
    ) -> None:
        self.engine = engine
        self.connection_id = connection_id
        self.provider_limit = limit
        self.limit = sliding_safe(limit, min_requests) if limit is not None else None
        self.chunk = max(1, chunk)
        self.available = 0
        self.window_start: dt.datetime | None = None
        self.retry_at: dt.datetime | None = None

    def take(self, n: int = 1) -> bool:
        """True when ``n`` calls may be made now; False sets :attr:`retry_at` (the window's end)."""
        if self.limit is None:
            return True
        n = min(n, self.limit.requests)  # a call costlier than a whole window still gets one window
        for _ in range(3):
            if self.window_start is not None and utcnow() >= self.window_start + dt.timedelta(
                seconds=self.limit.per_seconds
            ):
                self.available = 0  # calls reserved in a window that has ended lapse with it
            if self.available >= n:
                self.available -= n
                return True
            need = n - self.available
            got = reserve(self.engine, self.connection_id, self.limit, max(need, min(self.chunk, self.limit.requests)))
            if not got.granted:
                got = reserve(self.engine, self.connection_id, self.limit, need)
            if not got.granted:
                self.retry_at = got.retry_at
                return False
            if got.window_start != self.window_start:
                self.window_start, self.available = got.window_start, 0
            self.available += got.granted
        self.retry_at = utcnow()
        return False

    def give_back(self, n: int) -> None:
        """Calls taken but not made (a task that ended early) return to this batch's reserve."""
        if self.limit is not None and n > 0:
            self.available += n

    def settle(self, reserved: int, used: int) -> None:
        """Square a reservation with the requests a provider reports it made: unused ones return to this
        batch's reserve; extra ones are added to the shared window so later reservations wait for them."""
        if self.limit is None or used == reserved:
            return
        if used < reserved:
            self.give_back(reserved - used)
            return
        extra = used - reserved
        from_reserve = min(extra, self.available)
        self.available -= from_reserve
        extra -= from_reserve
        if extra and self.window_start is not None:
            c = connections.c
            with self.engine.begin() as db:
                db.execute(
                    connections.update()
                    .where(c.id == self.connection_id, c.rate_window_start == self.window_start)
                    .values(rate_window_count=c.rate_window_count + extra)
                )

    def refund(self) -> int:
        """Give unused reserved calls back to the shared window (only if it is still the same one)."""
        if self.limit is None or self.available <= 0 or self.window_start is None:
            return 0
        c = connections.c
        with self.engine.begin() as db:
            result = db.execute(
                connections.update()
                .where(
                    c.id == self.connection_id,
                    c.rate_window_start == self.window_start,
                    c.rate_window_count >= self.available,
                )
                .values(rate_window_count=c.rate_window_count - self.available)
            )
        given = self.available if result.rowcount == 1 else 0
        self.available = 0
        return given
