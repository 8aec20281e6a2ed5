"""Per-organization request limits: per minute (44), per day (45) and requests in flight (1070)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import RATE_LIMIT_CONCURRENCY, RATE_LIMIT_DAILY, RATE_LIMIT_MINUTE, ZohoError


@dataclass
class LimitConfig:
    per_minute: int = 100
    window_seconds: float = 60.0
    daily: int | None = None  # None: from the organization's plan
    concurrent: int | None = None  # None: from the organization's plan
    retry_after: int | None = None  # Zoho sends no Retry-After; set to add one


class RateLimiter:
    """Counts accepted requests; rejected ones do not consume the window so recovery is predictable."""

    def __init__(self, config: LimitConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.lock: threading.RLock | threading.Lock = threading.RLock()
        self.recent: dict[str, deque[float]] = defaultdict(deque)
        self.daily: dict[tuple[str, str], int] = defaultdict(int)
        self.in_flight: dict[str, int] = defaultdict(int)

    def reset(self) -> None:
        with self.lock:
            self.recent.clear()
            self.daily.clear()
            self.in_flight.clear()

    @contextmanager
    def admit(self, org_id: str, daily_limit: int, concurrent_limit: int) -> Iterator[None]:
        """Reserve a slot for one request, raising the Zoho 429 for whichever limit is hit."""
        cfg = self.config
        daily_cap = cfg.daily if cfg.daily is not None else daily_limit
        conc_cap = cfg.concurrent if cfg.concurrent is not None else concurrent_limit
        with self.lock:
            now = self.clock()
            if self.in_flight[org_id] >= conc_cap:
                raise ZohoError(
                    429, RATE_LIMIT_CONCURRENCY,
                    f"The maximum number of concurrent API calls ({conc_cap}) has been reached. Please try again.",
                )
            window = self.recent[org_id]
            while window and window[0] <= now - cfg.window_seconds:
                window.popleft()
            if len(window) >= cfg.per_minute:
                raise ZohoError(
                    429, RATE_LIMIT_MINUTE,
                    "You have made too many requests per minute. Please try again after some time.",
                )
            day = datetime.fromtimestamp(now, UTC).date().isoformat()
            if self.daily[(org_id, day)] >= daily_cap:
                raise ZohoError(
                    429, RATE_LIMIT_DAILY,
                    "You have reached the maximum number of API calls per day allowed for your plan.",
                )
            window.append(now)
            self.daily[(org_id, day)] += 1
            self.in_flight[org_id] += 1
        try:
            yield
        finally:
            with self.lock:
                self.in_flight[org_id] -= 1
