"""QuickBooks limits (500 requests a minute and 10 in flight per company, 429/3001 beyond) with 0 over.

Waiting minutes per window would make the test long, so both sides use a shorter window: the emulator
enforces ``L`` requests per sliding ``W`` s and allows ``C`` in flight, and the provider's ``rate_limit``
hook (wrapped here; every other hook is the real ``quickbooks`` plugin) declares the same. Three worker
threads drain a backlog; the emulator must not have answered a single 429.
"""

from __future__ import annotations

import threading
import time
import types
from pathlib import Path

import attrs
from qbo_helpers import qbo_connection

from integration_core.config import Config
from integration_core.hookspecs import PROVIDER_HOOKS, hookimpl
from integration_core.hub import Hub
from integration_core.models import Customer, Invoice, RateLimit
from integration_core.outbox import Outbound, OutboundSettings
from integration_core.plugins import Plugins

LIMIT, WINDOW, IN_FLIGHT = 15, 1.5, 1


def scaled_quickbooks() -> Plugins:
    from quickbooks import plugin as real

    provider = types.ModuleType("scaled_quickbooks")
    for name in PROVIDER_HOOKS:
        if hasattr(real, name):  # optional hooks (update_contact) may be absent
            setattr(provider, name, getattr(real, name))

    @hookimpl
    def rate_limit(ctx: object) -> RateLimit:
        # The plugin's own declaration (costs per call, metered client), on the scaled window.
        return attrs.evolve(real.rate_limit(ctx), requests=LIMIT, per_seconds=WINDOW, concurrency=IN_FLIGHT)

    provider.rate_limit = rate_limit
    plugins = Plugins(load_entry_points=False)
    plugins.add_provider("quickbooks", provider)
    return plugins


def test_backlog_with_three_workers_never_exceeds_the_company_limits(tmp_path: Path, qbo_emulator_factory) -> None:
    emu = qbo_emulator_factory(rate_limit_per_minute=LIMIT, rate_window_seconds=WINDOW, max_concurrent=IN_FLIGHT)
    emu.set_latency(low=0.01, high=0.04)
    hub = Hub(Config(database_url=f"sqlite:///{tmp_path / 'rl.sqlite3'}", key_file=str(tmp_path / "rl.key")),
              plugins=scaled_quickbooks())
    try:
        _conn, realm = qbo_connection(hub, emu)
        who = Customer(id="c1", name="Repeat", email="repeat@example.com")
        for i in range(60):
            hub.submit_invoice("t1", "prod", Invoice(id=f"i{i}", number=f"N-{i}", customer=who, currency="USD",
                                                     issue_date="2026-01-10",
                                                     lines=[{"description": "Plan", "amount": "9.99"}]))
        # The authorization's own requests (token, company info) were made outside the outbox, so the core's
        # log does not hold them: let them leave the company's window before the backlog starts.
        time.sleep(WINDOW + 0.1)
        emu.limiter.rejected = 0
        # The guard covers the emulator's 10-40 ms latency and scheduling delays on a loaded machine.
        settings = OutboundSettings(backoff_base=0.001, backoff_cap=0.01, lease_seconds=10.0, park_seconds=0.1,
                                    rate_guard_seconds=0.3, rate_wait_seconds=0.5)
        stop = time.monotonic() + 3 * WINDOW
        done: list[int] = []

        def work(n: int) -> None:
            outbound = Outbound(hub, f"w{n}", settings)
            while time.monotonic() < stop:
                stats = outbound.tick()
                done.append(stats.done)
                if stats.attempted == 0:
                    time.sleep(0.01)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted = sum(emu.request_counts(realm).values())
        assert emu.limiter.rejected == 0  # not one 429: neither the rate nor the in-flight limit was exceeded
        assert max(emu.limiter.peak_in_flight.values()) <= IN_FLIGHT
        assert sum(done) >= LIMIT  # and the budget was used, not idled away
        assert accepted >= LIMIT
    finally:
        hub.engine.dispose()
