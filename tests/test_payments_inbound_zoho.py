"""Payments in, over real HTTP: the Zoho Books emulator sends its payment and invoice webhooks (as Zoho
does, after the change) to the real dispatcher, which applies them to the reference host."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from integration_core.hub import Hub
from integration_core.models import Connection, Invoice
from integration_core.outbox import find_task
from integration_core.scheduler import drain_until_idle
from integration_core.server import RunningServer, running
from integration_core.store.schema import audit_log, inbox_events
from integration_core.webhooks import webhook_path
from reference_host import ReferenceHost
from tests.workers.helpers import FAST
from tests.workers.zoho import WEBHOOK_SECRET, zoho_connection

pytest.importorskip("zoho_books")
from zoho_books.emulator import SIGNATURE_HEADER, sign


class World:
    def __init__(self, hub: Hub, emulator: Any, host: ReferenceHost, conn: Connection, org: str,
                 srv: RunningServer) -> None:
        self.hub, self.emulator, self.host, self.conn, self.org, self.srv = hub, emulator, host, conn, org, srv
        self.url = srv.url + webhook_path("zoho_books", "t1", "prod")

    def invoice(self, total: str = "100.00") -> tuple[Invoice, str]:
        """A host invoice pushed to Zoho: (invoice, remote invoice id)."""
        customer = self.host.add_customer("t1", "prod", "Ada Lovelace", "ada@example.com")
        inv = self.host.add_invoice("t1", "prod", customer.id, [("Plan", total)])
        self.hub.submit_invoice("t1", "prod", inv)
        drain_until_idle(self.hub, 30, settings=FAST)
        task = find_task(self.hub, self.conn.id, inv.id)
        assert task is not None and task.remote_id
        return inv, task.remote_id

    def events(self) -> list[Any]:
        with self.hub.engine.connect() as db:
            return list(db.execute(sa.select(inbox_events).order_by(inbox_events.c.id)))

    def post(self, module: str, record: dict[str, Any], query: str = "") -> requests.Response:
        body = json.dumps({module: record}).encode()
        params = dict(p.split("=", 1) for p in query.split("&")) if query else {}
        headers = {SIGNATURE_HEADER: sign(WEBHOOK_SECRET, body, params), "Content-Type": "application/json"}
        return requests.post(self.url + (f"?{query}" if query else ""), data=body, headers=headers, timeout=30)


@pytest.fixture
def world(hub: Hub, zoho_emulator_factory: Any, tmp_path: Path) -> Iterator[World]:
    emulator = zoho_emulator_factory(retry_after=0)
    host = ReferenceHost(tmp_path / "billing.sqlite3")
    hub.plugins.set_host(host)
    conn, org = zoho_connection(hub, emulator)
    with running(hub, console=False) as srv:
        w = World(hub, emulator, host, conn, org, srv)
        # Zoho's workflow webhooks: customer payments and invoices, both to our URL with the secret.
        emulator.subscribe_webhooks(org, w.url, WEBHOOK_SECRET, modules=("payment", "invoice"))
        yield w


def test_two_partial_payments_in_zoho_reach_the_host_as_two_payments(world: World) -> None:
    inv, remote = world.invoice("100.00")
    world.emulator.record_payment(world.org, remote, amount="30.00", date="2026-02-01")
    assert world.emulator.wait_webhooks()
    assert world.host.invoice(inv.id)["status"] == "partially_paid"  # as it happens, not when fully paid
    world.emulator.record_payment(world.org, remote, amount="70.00", date="2026-02-03")
    assert world.emulator.wait_webhooks()
    payments = world.host.payments(inv.id)
    assert sorted(Decimal(p["amount"]) for p in payments) == [Decimal("30.00"), Decimal("70.00")]
    assert sorted(p["paid_on"] for p in payments) == ["2026-02-01", "2026-02-03"]
    assert len({p["payment_key"] for p in payments}) == 2
    row = world.host.invoice(inv.id)
    assert row["status"] == "paid" and row["paid"] == Decimal("100.00")
    # Each payment came in twice (its payment webhook and the invoice's list): stored and applied once.
    applied = [e for e in world.events() if e.status == "applied"]
    assert len(applied) == 2 and all(e.deliveries >= 2 for e in applied)


@pytest.mark.parametrize("fault", [None, "lost", "error_after_commit"])
def test_the_webhook_after_our_own_payment_records_nothing(world: World, fault: str | None) -> None:
    inv, _ = world.invoice("100.00")
    payment = world.host.add_payment("t1", "prod", inv.id, "100.00", method="card")
    if fault:  # Zoho records it, the answer is lost: the webhook arrives while our outcome is unknown
        world.emulator.faults.add(fault, 1, "POST", "/books/v3/customerpayments")
    world.hub.submit_payment("t1", "prod", payment)
    drain_until_idle(world.hub, 60, settings=FAST)
    assert world.emulator.wait_webhooks()
    assert [p["reference_number"] for p in world.emulator.payments(world.org)] == [payment.id]
    assert [p["payment_key"] for p in world.host.payments(inv.id)] == [payment.id]  # only the host's own
    assert world.host.invoice(inv.id)["status"] == "paid"
    events = world.events()
    assert events and {e.status for e in events} == {"ignored"}
    assert all("pushed from this side" in (e.reason or "") for e in events)


def test_a_deleted_zoho_payment_reaches_reverse_payment_once(world: World) -> None:
    inv, remote = world.invoice("100.00")
    made, _ = world.emulator.record_payment(world.org, remote, amount="40.00")
    assert world.emulator.wait_webhooks()
    assert world.host.invoice(inv.id)["status"] == "partially_paid"
    world.emulator.delete_payment(world.org, made["payment_id"])
    assert world.emulator.wait_webhooks()
    [reversal] = world.host.reversals(inv.id)
    assert reversal["reason"] == "deleted" and Decimal(reversal["amount"]) == Decimal("40.00")
    assert reversal["payment_key"] == world.host.payments(inv.id)[0]["payment_key"]
    row = world.host.invoice(inv.id)
    assert row["status"] == "open" and row["paid"] == 0
    # Zoho redelivers the deletion: applied once.
    record = dict(made, organization_id=world.org)
    assert world.post("payment", record, "event=payment_deleted").json()["duplicates"] == 1
    assert len(world.host.reversals(inv.id)) == 1


def test_our_own_payment_deleted_in_zoho_is_taken_back_under_its_host_id(world: World) -> None:
    inv, _ = world.invoice("100.00")
    payment = world.host.add_payment("t1", "prod", inv.id, "25.00", method="cash")
    world.hub.submit_payment("t1", "prod", payment)
    drain_until_idle(world.hub, 30, settings=FAST)
    assert world.emulator.wait_webhooks()
    [zoho_payment] = world.emulator.payments(world.org)
    world.emulator.delete_payment(world.org, zoho_payment["payment_id"])
    assert world.emulator.wait_webhooks()
    [reversal] = world.host.reversals(inv.id)
    assert reversal["payment_key"] == payment.id
    assert world.host.invoice(inv.id)["status"] == "open"


def test_a_payload_of_another_organization_is_refused(world: World) -> None:
    inv, remote = world.invoice("100.00")
    record = world.emulator.invoice_webhook(world.org, remote)
    record.update(status="paid", organization_id="999999", payments=[
        {"payment_id": "1", "amount": 100, "date": "2026-02-01"}])
    answer = world.post("invoice", record)
    assert answer.status_code == 400
    assert world.events() == [] and world.host.payments(inv.id) == []


def test_a_paid_event_without_a_payment_date_says_which_date_it_took(world: World) -> None:
    inv, remote = world.invoice("100.00")
    record = world.emulator.invoice_webhook(world.org, remote)
    record.update(status="paid", payments=[{"payment_id": "77", "amount": 100}], last_payment_date="2026-03-04")
    assert world.post("invoice", record).json()["applied"] == 1
    [payment] = world.host.payments(inv.id)
    assert payment["paid_on"] == "2026-03-04"
    [event] = world.events()
    assert event.payload["paid_on_source"] == "invoice last payment date"
    with world.hub.engine.connect() as db:
        details = db.execute(sa.select(audit_log.c.detail).where(
            audit_log.c.subject == "event", audit_log.c.action == "applied")).scalars().all()
    assert any("taken from the invoice last payment date" in (d or "") for d in details)


def test_a_refund_in_zoho_reaches_reverse_payment_once(world: World) -> None:
    inv, remote = world.invoice("100.00")
    made, _ = world.emulator.record_payment(world.org, remote, amount="100.00")
    assert world.emulator.wait_webhooks()
    assert world.host.invoice(inv.id)["status"] == "paid"
    world.emulator.refund_payment(world.org, made["payment_id"], "40.00")
    assert world.emulator.wait_webhooks()
    [reversal] = world.host.reversals(inv.id)
    assert reversal["reason"] == "refunded" and Decimal(reversal["amount"]) == Decimal("40.00")
    row = world.host.invoice(inv.id)
    assert row["status"] == "partially_paid" and row["paid"] == Decimal("60.00")
    assert len(world.host.payments(inv.id)) == 1  # the payment itself is not recorded again
