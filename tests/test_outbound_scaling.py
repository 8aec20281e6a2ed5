"""Scaling by default: a tick claims one connection at a time, so other workers take the rest meanwhile."""

from __future__ import annotations

import types
from typing import Any

from integration_core.hookspecs import hookimpl
from integration_core.hub import Hub
from integration_core.models import TaskStatus
from integration_core.outbox import Outbound
from integration_core.providers import ledger as ledger_mod
from tests.workers.helpers import FAST, add_connection, invoice, tasks


def test_a_busy_worker_leaves_the_other_due_connections_to_other_workers(hub: Hub) -> None:
    other = Outbound(hub, "other", FAST)
    seen: list[list[str]] = []

    @hookimpl
    def push_invoice(ctx: Any, invoice: Any, remote_contact_id: str) -> Any:
        if not seen:  # while the first worker pushes its first invoice, a second worker claims
            seen.append(other.claim(10))
        return ledger_mod.push_invoice(ctx, invoice, remote_contact_id)

    module = types.ModuleType("slowish")
    for name in ("provider_info", "validate_settings", "upsert_contact", "find_invoice", "rate_limit"):
        setattr(module, name, getattr(ledger_mod, name))
    module.push_invoice = push_invoice  # type: ignore[attr-defined]
    hub.plugins.add_provider("slowish", module)
    conns = [add_connection(hub, "slowish", tenant=f"t{i}")[0] for i in range(3)]
    for i in range(3):
        hub.submit_invoice(f"t{i}", "prod", invoice(i))
    stats = Outbound(hub, "first", FAST).tick()  # max_connections=10 by default
    assert len(seen[0]) == 2  # the two connections still due: claimed by the other worker meanwhile
    assert stats.claimed == 1 and stats.done == 1  # (before, one tick leased all three up front)
    assert all(other.drain_connection(cid, 50).done == 1 for cid in seen[0])
    assert all(t.status == TaskStatus.DONE for t in tasks(hub)) and len(tasks(hub)) == len(conns)
