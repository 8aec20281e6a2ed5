"""2b. Scale-out: worker *processes* draining one PostgreSQL database against the emulator (latency-bound).

Each worker is a separate Python process running outbound ticks (one connection per tick, as
``integration-core worker --threads 1`` with ``IC_OUTBOUND_MAX_CONNECTIONS=1``); they coordinate only
through the database (leases, ``FOR UPDATE SKIP LOCKED``). The emulator answers after 50-150 ms, so the
work is bound by waiting, and processes should scale until connections run out. Afterwards every
organization must hold exactly one remote invoice per local invoice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from integration_core.outbox import Outbound, pending_work
from integration_core.testing import create_database, postgres_server

from .common import Row, customer, drain, invoice, make_hub, start_emulator, temp_dir, zoho_connection

NAME = "scale-out (PostgreSQL)"
CONNECTIONS = 8
CUSTOMERS = 4

WORKER = """
import sys, time
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.outbox import Outbound, OutboundSettings
from integration_core.outbox import pending_work
hub = Hub(Config(database_url=sys.argv[1], key_file=sys.argv[2]))
outbound = Outbound(hub, "scale-" + sys.argv[3], OutboundSettings(max_connections=1))
while True:
    if outbound.tick().attempted == 0:
        if pending_work(hub) == 0:
            break
        time.sleep(0.01)
"""


def _round(hub, emulator, tenants: list[str], orgs: dict[str, str], per: int, processes: int, url: str,
           key_file: Path, tag: str) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    for t in tenants:
        for i in range(per):
            hub.submit_invoice(t, "live", invoice(i, customer(i % CUSTOMERS, t), prefix=f"{t}-{tag}"))
    emulator.set_latency(low=0.05, high=0.15)
    start = time.perf_counter()
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, url, str(key_file), f"{tag}-{n}"],
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
        for n in range(processes)
    ]
    for w in workers:
        if w.wait(timeout=600) != 0:
            raise RuntimeError(f"a worker process exited with status {w.returncode}")
    elapsed = time.perf_counter() - start
    emulator.set_latency(None)
    if pending_work(hub):
        raise RuntimeError("work left after the workers stopped")
    doubled = 0
    for t in tenants:
        refs = [inv.get("reference_number") for inv in emulator.invoices(orgs[t])]
        mine = [r for r in refs if r and r.startswith(f"{t}-{tag}-")]
        if len(mine) != per or len(set(mine)) != per:
            doubled += abs(len(mine) - len(set(mine))) + abs(per - len(set(mine)))
    return len(tenants) * per / elapsed, doubled


def run(quick: bool = False) -> list[Row]:
    per = 8 if quick else 40
    emulator, _statuses = start_emulator(rate_limit_per_minute=10**6)
    rows: list[Row] = []
    try:
        with temp_dir() as d, postgres_server() as admin:
            url = create_database(admin)
            hub = make_hub(d, url)
            tenants = [f"so{i}" for i in range(CONNECTIONS)]
            orgs: dict[str, str] = {}
            for t in tenants:  # connections and their contacts mapped before the timed rounds
                _conn, orgs[t] = zoho_connection(hub, emulator, t, settings={"rate_limit_per_minute": "1000000"})
                for c in range(CUSTOMERS):
                    hub.submit_invoice(t, "live", invoice(c, customer(c, t), prefix=f"{t}-warm"))
            drain(hub, Outbound(hub, "bench-warmup"))
            base = None
            for processes in (1, 2, 4):
                rate, bad = _round(hub, emulator, tenants, orgs, per, processes, url, d / "bench.key", f"p{processes}")
                base = base or rate
                rows.append(Row(NAME, f"{processes} worker process(es), {CONNECTIONS} connections, "
                                      f"{CONNECTIONS * per} invoices, latency 50-150 ms", rate, "invoices/s",
                                f"{rate / base:.2f}x vs 1 process"))
                rows.append(Row(NAME, "  same run: remote invoices missing or doubled", bad, "invoices", "must be 0"))
            hub.engine.dispose()
    finally:
        emulator.stop()
    return rows
