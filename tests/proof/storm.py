"""Settings and helpers of the fault-storm proof, shared with its worker subprocess."""

from __future__ import annotations

import threading

from integration_core.outbox import OutboundSettings

# Tiny backoffs so a storm drains in seconds; short leases so a dead worker's work is taken over quickly.
# max_attempts is raised so that no task can exhaust its attempts on bad luck alone (the storm is random).
STORM_SETTINGS = OutboundSettings(
    backoff_base=0.001, backoff_cap=0.01, lease_seconds=3.0, park_seconds=0.2, max_attempts=25, batch_size=50,
)

# Per request probabilities (the emulator draws one per API or token request).
STORM_RATES = {"error": 0.025, "rate_limit": 0.02, "lost": 0.02, "dropped": 0.015, "error_after_commit": 0.02}
READ_TIMEOUT = 0.5  # the connection's read_timeout; latency windows above it make requests time out
SLOW = 0.7


class LatencyWindows(threading.Thread):
    """Every ``period`` seconds, make the emulator answer ``SLOW`` seconds late for ``width`` seconds:
    requests caught in a window time out on the client, and the server still commits them afterwards."""

    def __init__(self, emulator: object, period: float = 1.5, width: float = 0.25) -> None:
        super().__init__(daemon=True, name="latency-windows")
        self.emulator = emulator
        self.period = period
        self.width = width
        self.stopped = threading.Event()
        self.paused = threading.Event()
        self.windows = 0

    def run(self) -> None:
        while not self.stopped.wait(self.period):
            if self.paused.is_set():
                continue
            self.emulator.set_latency(seconds=SLOW)  # type: ignore[attr-defined]
            self.windows += 1
            self.stopped.wait(self.width)
            if not self.paused.is_set():
                self.emulator.set_latency(None)  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)
        self.emulator.set_latency(None)  # type: ignore[attr-defined]
