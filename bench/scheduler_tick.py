"""4. Scheduler tick cost with 10 vs 10,000 connections, 10 of them with due work, on SQLite and PostgreSQL.

Per repetition one invoice is queued on each of the 10 busy connections (untimed), then the tick is timed:
``Outbound.claim`` alone, and claim + ``drain_connection`` of each claimed connection (``ledger`` stub: no
network, so the time is the core's database work). The other connections are idle: half never had work,
half have a retry scheduled an hour ahead. Both stores exist at once and take their ticks in turns (10, then
10,000, then 10 ...), so a change in the machine's background load meets both sizes alike; measured one after
the other, the PostgreSQL ratio moved between 0.87x and 1.23x from run to run.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
import uuid

import sqlalchemy as sa

from integration_core.outbox import Outbound
from integration_core.store.db import is_postgres
from integration_core.store.schema import connections, utcnow
from integration_core.testing import create_database, postgres_server

from .common import Row, customer, invoice, make_hub, temp_dir

NAME = "scheduler tick"
BUSY = 10


def _populate(hub, total: int) -> list[str]:  # type: ignore[no-untyped-def]
    """``BUSY`` real ledger connections, then idle copies up to ``total`` (bulk insert)."""
    busy = []
    for i in range(BUSY):
        hub.add_connection(tenant_id=f"busy{i}", environment_id="live", provider="ledger", name=f"busy {i}",
                                  values={"account": f"tick-{uuid.uuid4().hex[:8]}", "api_key": "k",
                                          "webhook_secret": "tick-secret-1"})
        busy.append(f"busy{i}")
    with hub.engine.begin() as db:
        template = db.execute(sa.select(connections).limit(1)).mappings().one()
        now = utcnow()
        later = now + dt.timedelta(hours=1)
        rows = [
            {**template, "id": str(uuid.uuid4()), "tenant_id": f"idle{i}", "name": f"idle {i}",
             "next_due_at": later if i % 2 else None, "created_at": now, "updated_at": now}
            for i in range(total - BUSY)
        ]
        for start in range(0, len(rows), 2000):
            db.execute(connections.insert(), rows[start:start + 2000])
    with hub.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
        db.execute(sa.text("ANALYZE"))
    return busy


class _Store:
    """One store of ``total`` connections and its outbound worker, with the medians of its ticks."""

    def __init__(self, hub, total: int) -> None:  # type: ignore[no-untyped-def]
        self.hub, self.total = hub, total
        self.tenants = _populate(hub, total)
        self.outbound = Outbound(hub, "bench-tick")
        self.claims: list[float] = []
        self.ticks: list[float] = []
        self.idle: list[float] = []

    def tick(self, rep: int, keep: bool) -> None:
        for n, tenant in enumerate(self.tenants):
            self.hub.submit_invoice(tenant, "live", invoice(rep, customer(n, tenant), prefix=tenant))
        t0 = time.perf_counter()
        ids = self.outbound.claim(BUSY)
        t1 = time.perf_counter()
        done = sum(self.outbound.drain_connection(cid, 50).done for cid in ids)
        t2 = time.perf_counter()
        assert len(ids) == BUSY and done == BUSY, (len(ids), done)
        if keep:
            self.claims.append(t1 - t0)
            self.ticks.append(t2 - t0)

    def idle_tick(self) -> None:
        t0 = time.perf_counter()
        assert self.outbound.claim(BUSY) == []
        self.idle.append(time.perf_counter() - t0)

    def medians(self) -> tuple[float, float, float]:
        """Median seconds of (claim, claim + drain, idle claim)."""
        return statistics.median(self.claims), statistics.median(self.ticks), statistics.median(self.idle)


def _engine_rows(label: str, url_for, reps: int, big: int) -> list[Row]:  # type: ignore[no-untyped-def]
    with temp_dir() as small_dir, temp_dir() as big_dir:
        stores = [_Store(make_hub(d, url_for(d)), total) for d, total in ((small_dir, BUSY), (big_dir, big))]
        try:
            for store in stores:
                assert is_postgres(store.hub.engine) == (label == "PostgreSQL")
            for rep in range(reps + 2):  # two warm-up ticks each, then the sizes take turns
                for store in stores if rep % 2 == 0 else reversed(stores):
                    store.tick(rep, keep=rep >= 2)
            for rep in range(reps):
                for store in stores if rep % 2 == 0 else reversed(stores):
                    store.idle_tick()
            (c_small, t_small, i_small), (c_big, t_big, i_big) = (store.medians() for store in stores)
        finally:
            for store in stores:
                store.hub.engine.dispose()
    return [
        Row(NAME, f"{label}: idle claim (nothing due), {BUSY} connections", i_small * 1000, "ms (median)"),
        Row(NAME, f"{label}: idle claim (nothing due), {big:,} connections", i_big * 1000, "ms (median)",
            f"{i_big / i_small:.2f}x vs {BUSY}"),
        Row(NAME, f"{label}: claim, {BUSY} connections ({BUSY} due)", c_small * 1000, "ms (median)"),
        Row(NAME, f"{label}: claim, {big:,} connections ({BUSY} due)", c_big * 1000, "ms (median)",
            f"{c_big / c_small:.2f}x vs {BUSY}"),
        Row(NAME, f"{label}: claim + drain {BUSY} invoices, {BUSY} connections", t_small * 1000, "ms (median)"),
        Row(NAME, f"{label}: claim + drain {BUSY} invoices, {big:,} connections", t_big * 1000, "ms (median)",
            f"{t_big / t_small:.2f}x vs {BUSY}"),
    ]


def run(quick: bool = False) -> list[Row]:
    reps = 5 if quick else 20
    big = 10_000
    rows = _engine_rows("SQLite", lambda d: None, reps, big)
    with postgres_server() as admin:
        rows += _engine_rows("PostgreSQL", lambda d: create_database(admin), reps, big)
    return rows
