"""How a worker drains: its tuning, what one tick did, and who it is."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class OutboundSettings:
    """Tuning of the drain. Defaults suit production; tests shrink the times."""

    max_connections: int = 10  # connections claimed per tick
    batch_size: int = 50  # tasks per connection per tick (fairness bound)
    lease_seconds: float = 300.0  # must exceed the longest provider call (HTTP timeouts)
    backoff_base: float = 2.0
    backoff_cap: float = 3600.0
    max_attempts: int = 8
    park_seconds: float = 300.0  # re-check interval of a connection that cannot push (disabled, reauth)
    # The shared request budget (ratelimit.py): a request counts for its window plus this margin (the
    # time between our grant and its arrival at the provider), and a wait for room up to
    # rate_wait_seconds is slept in place; a longer one ends the batch until the window has room.
    rate_guard_seconds: float = 1.0
    rate_wait_seconds: float = 2.0
    # Worst-case API requests per hook call for a provider whose RateLimit.costs does not say.
    call_costs: Mapping[str, int] = attrs.field(
        factory=lambda: {"upsert_contact": 2, "find_invoice": 1, "push_invoice": 2}
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OutboundSettings:
        """Overrides from ``IC_OUTBOUND_<FIELD>`` variables, e.g. ``IC_OUTBOUND_BATCH_SIZE=100``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            raw = env.get(f"IC_OUTBOUND_{field.name.upper()}")
            if raw is None or field.name == "call_costs":
                continue
            values[field.name] = float(raw) if field.type in ("float", float) else int(raw)
        return cls(**values)


@attrs.define
class TickStats:
    """What one tick did; ``claimed`` is the number of connection rows the claim query locked."""

    claimed: int = 0
    attempted: int = 0
    done: int = 0
    adopted: int = 0
    retrying: int = 0
    failed: int = 0
    dead: int = 0
    paused: int = 0
    rate_limited: int = 0
    parked: int = 0
    resumed: int = 0

    def add(self, other: TickStats) -> None:
        for field in attrs.fields(TickStats):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
