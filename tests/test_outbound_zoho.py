"""The outbox against the Zoho Books plugin and its HTTP emulator (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from integration_core import mapping
from integration_core.hub import Hub
from integration_core.models import TaskStatus
from integration_core.outbox import Outbound, find_task
from integration_core.scheduler import drain_until_idle
from tests.workers.helpers import FAST, invoice, tasks
from tests.workers.zoho import by_reference, zoho_connection

pytest.importorskip("zoho_books")


def test_invoices_pushed_exactly_once_and_one_call_per_invoice(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator)
    n = 12
    hub.submit_invoice("t1", "prod", invoice(0, customer=1))
    drain_until_idle(hub, 30, settings=FAST)
    before = sum(zoho_emulator.request_counts(org).values())
    for i in range(1, n):
        hub.submit_invoice("t1", "prod", invoice(i, customer=1))  # the same (repeat) customer
        hub.submit_invoice("t1", "prod", invoice(i, customer=1))  # and every one submitted twice
    drain_until_idle(hub, 30, settings=FAST)
    calls = sum(zoho_emulator.request_counts(org).values()) - before
    assert calls == n - 1, zoho_emulator.request_counts(org)  # contact from the mapping, currency cached
    refs = by_reference(zoho_emulator, org)
    assert len(refs) == n and set(refs.values()) == {1}
    with hub.engine.connect() as db:
        for row in tasks(hub):
            assert row.status == TaskStatus.DONE
            assert mapping.remote_id(db, conn.id, "invoice", row.local_id) == row.remote_id
    assert len(zoho_emulator.contacts(org)) == 1


def test_lost_response_adopted_over_http(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator)
    zoho_emulator.lose_next_response(1, method="POST", path_prefix="/books/v3/invoices")
    hub.submit_invoice("t1", "prod", invoice(1))
    first = Outbound(hub, "w", FAST).tick()
    assert first.retrying == 1
    task = find_task(hub, conn.id, "inv-1")
    assert task.uncertain
    drain_until_idle(hub, 30, settings=FAST)
    assert list(by_reference(zoho_emulator, org).values()) == [1]
    task = find_task(hub, conn.id, "inv-1")
    assert task.status == TaskStatus.DONE and task.remote_id == zoho_emulator.invoices(org)[0]["invoice_id"]


def test_zoho_errors_map_to_task_states(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator)
    hub.submit_invoice("t1", "prod", invoice(1, currency="JPY"))  # currency not enabled in the organization
    zoho_emulator.fail_next(1, status=500, method="POST", path_prefix="/books/v3/invoices")
    hub.submit_invoice("t1", "prod", invoice(2))
    drain_until_idle(hub, 30, settings=FAST)
    failed = find_task(hub, conn.id, "inv-1")
    assert failed.status == TaskStatus.FAILED and "JPY" in (failed.last_error or "")
    ok = find_task(hub, conn.id, "inv-2")
    assert ok.status == TaskStatus.DONE
    assert by_reference(zoho_emulator, org) and all(v == 1 for v in by_reference(zoho_emulator, org).values())
