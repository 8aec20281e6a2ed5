"""Per company and app: 500 requests a minute and 10 in flight (QUICKBOOKS.md §3), both answered with
HTTP 429 and fault code 3001. Rejected requests do not consume the window."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import throttled


@dataclass
class LimitConfig:
    per_minute: int = 500  # §3: 500 per realmId per app
    window_seconds: float = 60.0
    concurrent: int = 10  # §3: 10 in flight per realmId per app
    json_429: bool = False  # §3: the observed body is XML; a JSON variant is [U]
    retry_after: int | None = None  # §3: Retry-After not guaranteed [U]; None sends none


class RateLimiter:
    def __init__(self, config: LimitConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.lock: threading.RLock = threading.RLock()
        self.recent: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self.in_flight: dict[tuple[str, str], int] = defaultdict(int)
        self.rejected = 0
        self.peak_in_flight: dict[tuple[str, str], int] = defaultdict(int)

    def reset(self) -> None:
        with self.lock:
            self.recent.clear()
            self.in_flight.clear()
            self.peak_in_flight.clear()
            self.rejected = 0

    @contextmanager
    def admit(self, realm_id: str, app: str) -> Iterator[None]:
        key = (realm_id, app)
        cfg = self.config
        with self.lock:
            now = self.clock()
            window = self.recent[key]
            while window and window[0] <= now - cfg.window_seconds:
                window.popleft()
            if self.in_flight[key] >= cfg.concurrent or len(window) >= cfg.per_minute:
                self.rejected += 1
                raise throttled(cfg.json_429)
            window.append(now)
            self.in_flight[key] += 1
            self.peak_in_flight[key] = max(self.peak_in_flight[key], self.in_flight[key])
        try:
            yield
        finally:
            with self.lock:
                self.in_flight[key] -= 1
