"""2b. Rate-limit saturation: a backlog against a per-organization limit, time-scaled to seconds.

Zoho allows 100 requests per 60 s; waiting minutes per window would make the run long, so both sides
use the same shorter window: the emulator enforces ``L`` requests per sliding ``W`` s, and the provider's
``rate_limit`` hook (wrapped here, everything else is the real ``zoho_books`` plugin) declares ``L`` per ``W`` s.
The share is accepted requests / (``L`` x windows elapsed); 429s are counted from the emulator's answers.
"""

from __future__ import annotations

import time
import types

from integration_core import mapping
from integration_core.hookspecs import PROVIDER_HOOKS, hookimpl
from integration_core.models import RateLimit
from integration_core.outbox import Outbound, OutboundSettings
from integration_core.plugins import Plugins

from .common import Row, customer, invoice, make_hub, org_requests, run_for, start_emulator, temp_dir, zoho_connection

NAME = "rate-limit saturation"


def scaled_zoho(requests: int, window: float) -> Plugins:
    """Plugins with the real ``zoho_books`` hooks, except ``rate_limit`` = ``requests`` per ``window`` s."""
    from zoho_books import plugin as real

    provider = types.ModuleType("bench_scaled_zoho")
    for name in PROVIDER_HOOKS:
        setattr(provider, name, getattr(real, name))

    @hookimpl
    def rate_limit(ctx: object) -> RateLimit:
        return RateLimit(requests, window, 10)

    provider.rate_limit = rate_limit
    plugins = Plugins(load_entry_points=False)
    plugins.add_provider("zoho_books", provider)
    return plugins


def _case(emulator, statuses, hub, tenant: str, cold: bool, settings: OutboundSettings,  # type: ignore[no-untyped-def]
          limit: int, window: float, windows: int) -> tuple[int, int, float, int]:
    """Run a backlog for ``windows`` windows; (requests accepted, 429s, seconds, invoices synced)."""
    conn, org = zoho_connection(hub, emulator, tenant)
    # Repeat customers' contacts exist remotely and are mapped already (no API traffic).
    for c in range(3):
        who = customer(c, tenant)
        contact, _ = emulator.create_contact(org, who.name, email=who.email)
        with hub.engine.begin() as db:
            mapping.link(db, conn.id, mapping.contact_type("USD"), who.id, contact["contact_id"],
                         mapping.fingerprint(who.to_dict()))
    for i in range(int(limit * windows * 1.5)):
        who = customer(100 + i, tenant) if cold else customer(i % 3, tenant)
        hub.submit_invoice(tenant, "live", invoice(i, who, prefix=tenant))
    outbound = Outbound(hub, f"bench-{tenant}", settings)
    before, before_429 = org_requests(emulator, org), statuses.get(org, 429)
    start = time.monotonic()
    stats = run_for(window * windows, outbound.tick)
    elapsed = time.monotonic() - start
    rejected = statuses.get(org, 429) - before_429
    return org_requests(emulator, org) - before - rejected, rejected, elapsed, stats.done


def run(quick: bool = False) -> list[Row]:
    limit, window, windows = (10, 2.0, 2) if quick else (20, 5.0, 4)
    # Retry-After = the window, so a 429 costs one scaled window (the plugin's default is Zoho's 60 s).
    emulator, statuses = start_emulator(rate_limit_per_minute=limit, rate_window_seconds=window,
                                        retry_after=int(window))
    emulator.set_latency(low=0.05, high=0.15)
    exact = {"upsert_contact": 2, "find_invoice": 1, "push_invoice": 1}
    cases = [
        ("repeat customers (1 request/invoice), default call_costs (push_invoice=2)", False, OutboundSettings()),
        ("new customer each (3 requests/invoice), default call_costs", True, OutboundSettings()),
        ("repeat customers, call_costs push_invoice=1 (tuned)", False, OutboundSettings(call_costs=exact)),
    ]
    allowed = limit * windows
    rows: list[Row] = []
    try:
        for n, (label, cold, settings) in enumerate(cases):
            with temp_dir() as d:  # a database per case: only this case's backlog is due
                hub = make_hub(d, plugins=scaled_zoho(limit, window))
                accepted, rejected, elapsed, done = _case(emulator, statuses, hub, f"rl{n}", cold, settings,
                                                          limit, window, windows)
                hub.engine.dispose()
            config = f"{label}; {limit} req/{window:g} s window, {elapsed:.0f} s"
            rows.append(Row(NAME, config, accepted / allowed * 100, "% of allowed rate used",
                            f"{accepted}/{allowed} requests"))
            rows.append(Row(NAME, f"  same run: {done} invoices synced", done / elapsed, "invoices/s"))
            rows.append(Row(NAME, "  same run: requests over the limit (HTTP 429)", rejected, "responses", "must be 0"))
    finally:
        emulator.stop()
    return rows
