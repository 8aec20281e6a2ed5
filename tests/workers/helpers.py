"""Shared helpers of the outbound, scheduler, backfill and worker tests."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from integration_core.hub import Hub
from integration_core.models import Connection, Invoice
from integration_core.outbox import Outbound, OutboundSettings, TickStats, pending_work
from integration_core.store.schema import outbox_tasks

FAST = OutboundSettings(
    backoff_base=0.001, backoff_cap=0.01, lease_seconds=5.0, park_seconds=0.2, max_attempts=8, batch_size=50
)


def account_name() -> str:
    return "acct-" + uuid.uuid4().hex[:10]


def ledger_values(account: str) -> dict[str, str]:
    return {"account": account, "api_key": "key-" + account, "webhook_secret": "whsec" + account + "xyz"}


def add_connection(
    hub: Hub, provider: str = "ledger", *, tenant: str = "t1", env: str = "prod", account: str | None = None, **kw: Any
) -> tuple[Connection, str]:
    account = account or account_name()
    conn = hub.add_connection(
        tenant_id=tenant, environment_id=env, provider=provider, name=account, values=ledger_values(account), **kw
    )
    return conn, account


def invoice(
    n: int | str, *, customer: int | str = 1, amount: str = "100.00", currency: str = "USD", **kw: Any
) -> Invoice:
    data = {
        "id": f"inv-{n}",
        "number": f"INV-{n}",
        "customer": {"id": f"cust-{customer}", "name": f"Customer {customer}", "email": f"c{customer}@example.com"},
        "currency": currency,
        "issue_date": "2026-01-10",
        "due_date": "2026-02-10",
        "lines": [{"description": "Subscription", "amount": amount}],
    }
    data.update(kw)
    return Invoice.from_dict(data)


def drain(hub: Hub, outbound: Outbound | None = None, *, max_ticks: int = 200, **tick: Any) -> TickStats:
    """Tick until no pending or in-flight work is left on active connections (deterministic, no sleeps
    beyond the tiny backoffs of ``FAST``)."""
    import time

    outbound = outbound or Outbound(hub, "test-worker", FAST)
    total = TickStats()
    for _ in range(max_ticks):
        total.add(outbound.tick(**tick))
        if pending_work(hub) == 0:
            return total
        time.sleep(0.005)
    raise AssertionError(f"outbox not drained after {max_ticks} ticks: {pending_work(hub)} left; {total}")


def tasks(hub: Hub, connection_id: str | None = None) -> list[Any]:
    query = sa.select(outbox_tasks).order_by(outbox_tasks.c.id)
    if connection_id:
        query = query.where(outbox_tasks.c.connection_id == connection_id)
    with hub.engine.connect() as db:
        return list(db.execute(query))
