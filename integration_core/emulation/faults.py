"""Building blocks for provider emulators: on-demand failures, so clients (and the core's exactly-once
machinery) can be tested against the ways real services misbehave. Each emulator decides how an ``error``
or ``rate_limit`` answer looks (its service's status codes and error envelope).

Kinds:
- ``error``: answer 5xx before doing anything.
- ``rate_limit``: answer 429 before doing anything.
- ``lost``: do the work (the record is committed), then close the socket mid-response (headers and half
  the body sent), so the client sees a truncated answer.
- ``dropped``: do the work, then close the socket without sending a byte (client: connection reset/EOF).
- ``error_after_commit``: do the work, then answer 500 as if it failed.
Plus latency (fixed or uniform random range) and a seeded random mode mixing the kinds for storm tests.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = ("error", "rate_limit", "lost", "dropped", "error_after_commit")
PRE_COMMIT = ("error", "rate_limit")


@dataclass
class Fault:
    kind: str
    remaining: int = 1
    method: str | None = None
    path_prefix: str | None = None
    status: int = 500

    def matches(self, method: str, path: str, api_path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path_prefix:
            return path.startswith(self.path_prefix) or api_path.startswith(self.path_prefix)
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "remaining": self.remaining, "method": self.method,
            "path_prefix": self.path_prefix, "status": self.status,
        }


@dataclass
class RandomMode:
    rates: dict[str, float]
    rng: random.Random
    latency: tuple[float, float] | None = None


@dataclass
class FaultInjector:
    """Thread-safe queue of scheduled faults, latency settings and the random storm mode."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    queue: list[Fault] = field(default_factory=list)
    latency: tuple[float, float] | None = None
    random_mode: RandomMode | None = None
    fired: dict[str, int] = field(default_factory=dict)

    def add(
        self, kind: str, count: int = 1, method: str | None = None, path_prefix: str | None = None,
        status: int = 500,
    ) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
        if count < 1:
            raise ValueError("count must be >= 1")
        if kind in ("error", "error_after_commit") and not 500 <= status <= 599:
            raise ValueError("status must be 5xx")
        fault = Fault(kind, count, method, path_prefix, status)
        with self.lock:
            self.queue.append(fault)
        return fault

    def set_latency(self, seconds: float | None = None, low: float | None = None, high: float | None = None) -> None:
        """Fixed latency with `seconds`, random in [low, high] otherwise; all None clears it."""
        with self.lock:
            if seconds is not None:
                self.latency = (float(seconds), float(seconds))
            elif low is not None and high is not None:
                if high < low:
                    raise ValueError("high < low")
                self.latency = (float(low), float(high))
            else:
                self.latency = None

    def set_random(
        self, rates: dict[str, float] | None, seed: int | None = None,
        latency: tuple[float, float] | None = None,
    ) -> None:
        """Enable the storm mode: per request, each kind fires with its probability; None disables it."""
        if rates is None:
            with self.lock:
                self.random_mode = None
            return
        unknown = set(rates) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}")
        if any(p < 0 for p in rates.values()) or sum(rates.values()) > 1:
            raise ValueError("probabilities must be >= 0 and sum to at most 1")
        with self.lock:
            self.random_mode = RandomMode(dict(rates), random.Random(seed), latency)

    def clear(self) -> None:
        with self.lock:
            self.queue.clear()
            self.latency = None
            self.random_mode = None
            self.fired.clear()

    def pick_delay(self) -> float:
        with self.lock:
            span = self.latency
            if span is None and self.random_mode is not None:
                span = self.random_mode.latency
            if span is None:
                return 0.0
            rng = self.random_mode.rng if self.random_mode else random
            return span[0] if span[0] == span[1] else rng.uniform(*span)

    def take(self, method: str, path: str, api_path: str) -> Fault | None:
        """Consume the first matching scheduled fault, else maybe draw one in random mode."""
        with self.lock:
            for fault in self.queue:
                if fault.matches(method, path, api_path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.queue.remove(fault)
                    self.fired[fault.kind] = self.fired.get(fault.kind, 0) + 1
                    return fault
            mode = self.random_mode
            if mode is None:
                return None
            draw = mode.rng.random()
            edge = 0.0
            for kind in FAULT_KINDS:
                edge += mode.rates.get(kind, 0.0)
                if draw < edge:
                    self.fired[kind] = self.fired.get(kind, 0) + 1
                    return Fault(kind, 0, status=500)
            return None

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "queue": [f.describe() for f in self.queue],
                "latency": list(self.latency) if self.latency else None,
                "random": dict(self.random_mode.rates) if self.random_mode else None,
                "fired": dict(self.fired),
            }
