"""7. Database work per pushed invoice, counted: SQL statements and transactions (``ledger`` stub, no network).

Timings on a shared machine are noisy; counts are not. SQLAlchemy events on the Hub's engine count every
statement sent to the database (``before_cursor_execute``; SQLite's ``BEGIN IMMEDIATE`` is not counted as a
statement) and every transaction begun (``begin``, read-only ones included). Two shapes: a batch of
invoices on one connection (one claim and one batch, divided by the invoices), and one invoice per tick
(claim, drain and release for a single invoice). The core time per invoice is the wall time of the same
drain (median of a few repetitions): it is all database work, as the ledger stub is in memory.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from integration_core.hub import Hub
from integration_core.outbox import Outbound
from integration_core.testing import create_database, postgres_server

from .common import Row, customer, invoice, make_hub, temp_dir

NAME = "db work per invoice"
BATCH = 20


class Counter:
    def __init__(self, engine: sa.Engine) -> None:
        self.statements = 0
        self.transactions = 0
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        sa.event.listen(engine, "begin", self._begin)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):
            self.statements += 1

    def _begin(self, _conn: Any) -> None:
        self.transactions += 1

    def measure(self, work: Callable[[], Any]) -> tuple[int, int, float]:
        s, t = self.statements, self.transactions
        started = time.perf_counter()
        work()
        return self.statements - s, self.transactions - t, time.perf_counter() - started


def _connection(hub: Hub, tenant: str) -> None:
    values = {"account": f"db-{uuid.uuid4().hex[:8]}", "api_key": "k", "webhook_secret": "db-secret-1"}
    hub.add_connection(tenant_id=tenant, environment_id="live", provider="ledger", name=tenant, values=values)


def _measure(hub: Hub, reps: int) -> dict[str, tuple[float, float, float]]:
    counter = Counter(hub.engine)
    outbound = Outbound(hub, "bench-db")
    _connection(hub, "dbw")
    who = customer(0, "dbw")  # a repeat customer: its contact is mapped by the warm-up invoice
    hub.submit_invoice("dbw", "live", invoice(0, who, prefix="warm"))
    assert outbound.tick().done == 1
    results: dict[str, list[tuple[int, int, float]]] = {"batch": [], "single": []}
    n = 0
    for _ in range(reps):
        for _i in range(BATCH):
            n += 1
            hub.submit_invoice("dbw", "live", invoice(n, who, prefix="dbw"))
        results["batch"].append(counter.measure(lambda: _tick(outbound, BATCH)))
        n += 1
        hub.submit_invoice("dbw", "live", invoice(n, who, prefix="dbw"))
        results["single"].append(counter.measure(lambda: _tick(outbound, 1)))
    out = {}
    for shape, runs in results.items():
        per = BATCH if shape == "batch" else 1
        out[shape] = (statistics.median(r[0] for r in runs) / per, statistics.median(r[1] for r in runs) / per,
                      statistics.median(r[2] for r in runs) / per)
    return out


def _tick(outbound: Outbound, expect: int) -> None:
    stats = outbound.tick()
    assert stats.done == expect, stats


def _rows(label: str, hub: Hub, reps: int) -> list[Row]:
    m = _measure(hub, reps)
    rows = []
    for shape, title in (("batch", f"a batch of {BATCH} invoices on one connection"),
                         ("single", "one invoice per tick (claim, drain, release)")):
        statements, transactions, seconds = m[shape]
        rows.append(Row(NAME, f"{label}: {title}; per invoice", statements, "SQL statements"))
        rows.append(Row(NAME, "  same run: transactions per invoice", transactions, "transactions"))
        rows.append(Row(NAME, "  same run: core time per invoice (median)", seconds * 1000, "ms"))
    return rows


def run(quick: bool = False) -> list[Row]:
    reps = 3 if quick else 7
    with temp_dir() as d:
        hub = make_hub(d)
        rows = _rows("SQLite", hub, reps)
        hub.engine.dispose()
    with temp_dir() as d, postgres_server() as admin:
        hub = make_hub(d, create_database(admin))
        rows += _rows("PostgreSQL", hub, reps)
        hub.engine.dispose()
    return rows
