"""3. Rate-limit saturation: two worker processes on PostgreSQL drain one account's backlog against its limit.

Zoho allows 100 requests per sliding 60 s per organization. Two cases use a shorter window on both sides
to keep the run short: the emulator enforces ``L`` requests per sliding ``W`` s, and the provider's
``rate_limit`` hook (wrapped here; everything else, its declared call costs and its metered client included,
is the real ``zoho_books`` plugin) declares ``L`` per ``W`` s. A third case runs the real size (100 per
60 s) once. Every run lasts at least three windows and is drained by two separate worker processes that
share nothing but the PostgreSQL database (one connection, so its lease and its request log change hands
between them). Reported: accepted requests as a share of what the limit allowed over the run
(``L`` x windows), invoices synced, and requests the emulator refused with HTTP 429 (must be 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import attrs

from integration_core import mapping
from integration_core.hookspecs import PROVIDER_HOOKS, hookimpl
from integration_core.models import RateLimit
from integration_core.plugins import Plugins
from integration_core.testing import create_database, postgres_server

from .common import Row, customer, invoice, make_hub, start_emulator, temp_dir, zoho_connection

NAME = "rate-limit saturation"
PROCESSES = 2

WORKER = """
import json, sys, time
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.outbox import Outbound, OutboundSettings
from bench.common import run_for
from bench.ratelimit import scaled_zoho
url, key, name, limit, window, seconds, guard = sys.argv[1:8]
hub = Hub(Config(database_url=url, key_file=key), plugins=scaled_zoho(int(limit), float(window)))
outbound = Outbound(hub, name, OutboundSettings(rate_guard_seconds=float(guard)))
print("ready", flush=True)
start = float(sys.stdin.readline())
time.sleep(max(0.0, start - time.time()))
stats = run_for(float(seconds), outbound.tick)
print(json.dumps({"done": stats.done, "rate_limited": stats.rate_limited}))
"""


def scaled_zoho(requests: int, window: float) -> Plugins:
    """Plugins with the real ``zoho_books`` hooks; ``rate_limit`` says ``requests`` per ``window`` s."""
    from zoho_books import plugin as real

    provider = types.ModuleType("bench_scaled_zoho")
    for name in PROVIDER_HOOKS:  # optional hooks the real plugin does not implement stay unimplemented
        if hasattr(real, name):
            setattr(provider, name, getattr(real, name))

    @hookimpl
    def rate_limit(ctx: Any) -> RateLimit:
        return attrs.evolve(real.rate_limit(ctx), requests=requests, per_seconds=window)

    provider.rate_limit = rate_limit
    plugins = Plugins(load_entry_points=False)
    plugins.add_provider("zoho_books", provider)
    return plugins


def _case(admin: Any, directory: Path, tenant: str, cold: bool, limit: int, window: float, windows: int,
          guard: float) -> tuple[int, int, float, int]:
    """Run a backlog for ``windows`` windows; (requests accepted, 429s, seconds, invoices synced)."""
    emulator, statuses = start_emulator(rate_limit_per_minute=limit, rate_window_seconds=window,
                                        retry_after=int(window))
    try:
        url = create_database(admin)
        hub = make_hub(directory, url, plugins=scaled_zoho(limit, window))
        conn, org = zoho_connection(hub, emulator, tenant)
        for c in range(3):  # repeat customers' contacts exist remotely and are mapped already (no traffic)
            who = customer(c, tenant)
            contact, _ = emulator.create_contact(org, who.name, email=who.email)
            with hub.engine.begin() as db:
                mapping.link(db, conn.id, mapping.contact_type("USD"), who.id, contact["contact_id"],
                             mapping.fingerprint(who.to_dict()))
        for i in range(int(limit * windows * 1.5)):
            who = customer(100 + i, tenant) if cold else customer(i % 3, tenant)
            hub.submit_invoice(tenant, "live", invoice(i, who, prefix=tenant))
        emulator.set_latency(low=0.05, high=0.15)
        before_429 = statuses.get(org, 429)
        seconds = window * windows
        workers = [
            subprocess.Popen([sys.executable, "-c", WORKER, url, str(directory / "bench.key"), f"{tenant}-w{n}",
                              str(limit), str(window), str(seconds), str(guard)],
                             env={**os.environ, "PYTHONPATH": os.getcwd()}, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
            for n in range(PROCESSES)
        ]
        for w in workers:  # both processes start ticking together, once both are ready
            assert w.stdout is not None and w.stdout.readline().strip() == "ready"
        start = time.time() + 0.5
        for w in workers:
            assert w.stdin is not None
            w.stdin.write(f"{start}\n")
            w.stdin.flush()
        done = 0
        for w in workers:
            out, _ = w.communicate(timeout=seconds + 120)
            if w.returncode != 0:
                raise RuntimeError(f"a worker process exited with status {w.returncode}")
            done += json.loads(out.strip().splitlines()[-1])["done"]
        # Counted over the measured interval only (a tick that runs past the end is not credited).
        accepted = statuses.between(org, start, start + seconds)
        rejected = statuses.get(org, 429) - before_429
        hub.engine.dispose()
        return accepted, rejected, seconds, done
    finally:
        emulator.stop()


def run(quick: bool = False) -> list[Row]:
    # The guard (OutboundSettings.rate_guard_seconds) covers the time from a request's grant to its arrival (the
    # emulator counts a request as it arrives, then adds its 50-150 ms latency); 0.15 s leaves room for a loaded
    # machine. The real-size case keeps the default (1 s).
    cases = [
        ("repeat customers (1 request/invoice)", False, 10, 2.0, 3, 0.15),
        ("new customer each (3 requests/invoice)", True, 10, 2.0, 3, 0.15),
    ] if quick else [
        ("repeat customers (1 request/invoice)", False, 20, 5.0, 4, 0.15),
        ("new customer each (3 requests/invoice)", True, 20, 5.0, 4, 0.15),
        ("repeat customers, real size", False, 100, 60.0, 3, 1.0),
    ]
    rows: list[Row] = []
    with postgres_server() as admin:
        for n, (label, cold, limit, window, windows, guard) in enumerate(cases):
            with temp_dir() as d:
                accepted, rejected, elapsed, done = _case(admin, d, f"rl{n}", cold, limit, window, windows, guard)
            allowed = limit * windows
            config = (f"{label}; {PROCESSES} worker processes, PostgreSQL; {limit} req/{window:g} s window, "
                      f"{elapsed:.0f} s")
            rows.append(Row(NAME, config, accepted / allowed * 100, "% of allowed rate used",
                            f"{accepted}/{allowed} requests"))
            rows.append(Row(NAME, f"  same run: {done} invoices synced by the two processes", done / elapsed,
                            "invoices/s"))
            rows.append(Row(NAME, "  same run: requests over the limit (HTTP 429)", rejected, "responses", "must be 0"))
    return rows
