"""2a. Outbound throughput against the Zoho emulator with 50-150 ms per request (rate limit lifted)."""

from __future__ import annotations

import time

from integration_core.outbox import Outbound, OutboundSettings

from .common import Row, customer, drain, drain_threads, invoice, make_hub, start_emulator, temp_dir, zoho_connection

NAME = "outbound throughput"
CUSTOMERS = 5  # repeat customers per connection: contacts are mapped before the timed backlog


def _backlog(hub, emulator, case: str, connections: int, per_connection: int) -> list[str]:  # type: ignore[no-untyped-def]
    """Connections with their contacts already mapped (untimed, no latency), then a queued backlog."""
    tenants = [f"{case}{i}" for i in range(connections)]
    emulator.set_latency(None)
    for t in tenants:
        zoho_connection(hub, emulator, t, settings={"rate_limit_per_minute": "1000000"})
        for c in range(CUSTOMERS):
            hub.submit_invoice(t, "live", invoice(c, customer(c, t), prefix=f"{t}-w"))
    drain(hub, Outbound(hub, "bench-warmup"))
    for t in tenants:
        for i in range(per_connection):
            hub.submit_invoice(t, "live", invoice(i, customer(i % CUSTOMERS, t), prefix=t))
    emulator.set_latency(low=0.05, high=0.15)
    return tenants


def run(quick: bool = False) -> list[Row]:
    per = 5 if quick else 60
    emulator, statuses = start_emulator(rate_limit_per_minute=10**6)
    rows: list[Row] = []
    cases = [
        ("1 connection, 1 worker thread", 1, 1, OutboundSettings()),
        ("4 connections, 1 worker thread", 4, 1, OutboundSettings()),
        ("4 connections, 4 worker threads, default settings (claimed one at a time)", 4, 4, OutboundSettings()),
        ("4 connections, 4 worker threads (max_connections=1 per tick)", 4, 4, OutboundSettings(max_connections=1)),
    ]
    try:
        with temp_dir() as d:
            hub = make_hub(d)
            base = None
            for n, (label, conns, threads, settings) in enumerate(cases):
                _backlog(hub, emulator, f"tp{n}x", conns, per)
                start = time.perf_counter()
                stats = drain_threads(hub, threads, settings)
                elapsed = time.perf_counter() - start
                assert stats.done == conns * per, stats
                rate = stats.done / elapsed
                base = base or rate
                rows.append(Row(NAME, f"{label}; {conns * per} invoices, latency 50-150 ms", rate, "invoices/s",
                                f"{rate / base:.2f}x vs 1 conn"))
            hub.engine.dispose()
        rows.append(Row(NAME, "HTTP 429 answered during the runs above", sum(
            n for (_org, code), n in statuses.counts.items() if code == 429), "responses"))
    finally:
        emulator.stop()
    return rows
