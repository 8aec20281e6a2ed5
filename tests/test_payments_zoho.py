"""Payments and voids out through the outbox, over real HTTP against the Zoho Books emulator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from integration_core import mapping
from integration_core.hub import Hub
from integration_core.models import Payment, TaskStatus
from integration_core.outbox import find_task, retry_task, task_history
from integration_core.scheduler import drain_until_idle
from tests.workers.helpers import FAST, invoice
from tests.workers.zoho import zoho_connection

pytest.importorskip("zoho_books")


def payment(n: int | str, inv: int | str, amount: str = "100.00", **kw: Any) -> Payment:
    return Payment(id=f"pay-{n}", invoice_id=f"inv-{inv}", amount=Decimal(amount), currency=kw.pop("currency", "USD"),
                   paid_on="2026-01-20", method=kw.pop("method", "card"), reference=kw.pop("reference", None))


def zoho_payments(emulator: Any, org: str, ref: str) -> list[dict[str, Any]]:
    return [p for p in emulator.payments(org) if p["reference_number"] == ref]


def remote_invoice(emulator: Any, org: str, task: Any) -> dict[str, Any]:
    return next(i for i in emulator.invoices(org) if i["invoice_id"] == task.remote_id)


def test_payment_after_its_invoice_pushed_once_and_invoice_paid(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator)
    hub.submit_invoice("t1", "prod", invoice(1, amount="100.00"))
    first = hub.submit_payment("t1", "prod", payment(1, 1, "40.00", method="bank transfer", reference="BNK-7"))
    again = hub.submit_payment("t1", "prod", payment(1, 1, "40.00", method="bank transfer", reference="BNK-7"))
    assert first.kind == "payment" and first.queued and not again.queued
    hub.submit_payment("t1", "prod", payment(2, 1, "60.00"))
    drain_until_idle(hub, 30, settings=FAST)
    [one] = zoho_payments(zoho_emulator, org, "pay-1")
    assert Decimal(str(one["amount"])) == Decimal("40.00") and one["payment_mode"] == "banktransfer"
    assert "BNK-7" in one["description"]
    [two] = zoho_payments(zoho_emulator, org, "pay-2")
    assert two["payment_mode"] == "creditcard"
    inv_task = find_task(hub, conn.id, "inv-1")
    zoho_invoice = remote_invoice(zoho_emulator, org, inv_task)
    assert zoho_invoice["status"] == "paid" and Decimal(str(zoho_invoice["balance"])) == 0
    task = find_task(hub, conn.id, "pay-1", entity_type="payment")
    assert task.status == TaskStatus.DONE and task.remote_id == one["payment_id"]
    with hub.engine.connect() as db:
        assert mapping.remote_id(db, conn.id, mapping.PAYMENT, "pay-1") == one["payment_id"]


def test_payment_submitted_first_waits_for_its_invoice(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator)
    hub.submit_payment("t1", "prod", payment(1, 1, "100.00"))  # the host submits the payment first
    hub.submit_invoice("t1", "prod", invoice(1, amount="100.00"))
    drain_until_idle(hub, 30, settings=FAST)
    assert len(zoho_payments(zoho_emulator, org, "pay-1")) == 1
    assert remote_invoice(zoho_emulator, org, find_task(hub, conn.id, "inv-1"))["status"] == "paid"
    history = [h.action for h in hub_history(hub, conn.id, "pay-1")]
    assert "waiting" in history or history.count("in_flight") == 1


def hub_history(hub: Hub, connection_id: str, local_id: str) -> list[Any]:
    task = find_task(hub, connection_id, local_id, entity_type="payment")
    assert task is not None
    return task_history(hub, task.id)


@pytest.mark.parametrize("fault", ["lost", "dropped", "error_after_commit", "error", "rate_limit"])
def test_payment_exactly_once_under_faults(hub: Hub, zoho_emulator_factory: Any, fault: str) -> None:
    zoho_emulator = zoho_emulator_factory(retry_after=0)  # a 429 says "retry now": the test stays fast
    conn, org = zoho_connection(hub, zoho_emulator)
    hub.submit_invoice("t1", "prod", invoice(1, amount="100.00"))
    drain_until_idle(hub, 30, settings=FAST)
    zoho_emulator.faults.add(fault, 1, "POST", "/books/v3/customerpayments")
    hub.submit_payment("t1", "prod", payment(1, 1, "25.00"))
    drain_until_idle(hub, 60, settings=FAST)
    [only] = zoho_payments(zoho_emulator, org, "pay-1")
    task = find_task(hub, conn.id, "pay-1", entity_type="payment")
    assert task.status == TaskStatus.DONE and task.remote_id == only["payment_id"]
    zoho_invoice = remote_invoice(zoho_emulator, org, find_task(hub, conn.id, "inv-1"))
    assert zoho_invoice["status"] == "partially_paid" and Decimal(str(zoho_invoice["balance"])) == Decimal("75.00")
    assert zoho_emulator.faults.snapshot()["fired"].get(fault) == 1


def test_overpayment_and_currency_mismatch_fail_with_a_clear_reason(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator)
    hub.submit_invoice("t1", "prod", invoice(1, amount="100.00"))
    hub.submit_payment("t1", "prod", payment(1, 1, "150.00"))
    hub.submit_payment("t1", "prod", payment(2, 1, "10.00", currency="EUR"))
    drain_until_idle(hub, 30, settings=FAST)
    over = find_task(hub, conn.id, "pay-1", entity_type="payment")
    assert over.status == TaskStatus.FAILED
    assert "more than the invoice's balance" in (over.last_error or "") and "150.00" in (over.last_error or "")
    other = find_task(hub, conn.id, "pay-2", entity_type="payment")
    assert other.status == TaskStatus.FAILED and "EUR" in (other.last_error or "") and "USD" in (other.last_error or "")
    assert zoho_emulator.payments(org) == []


def test_payment_of_a_failed_invoice_is_held_then_follows_it(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator)
    hub.submit_invoice("t1", "prod", invoice(1, amount="100.00", currency="JPY"))  # JPY is not enabled in Zoho
    hub.submit_payment("t1", "prod", payment(1, 1, "100.00", currency="JPY"))
    drain_until_idle(hub, 30, settings=FAST)
    held = find_task(hub, conn.id, "pay-1", entity_type="payment")
    assert held.status == TaskStatus.FAILED and (held.last_error or "").startswith("held: invoice inv-1 failed")
    zoho_emulator.add_currency(org, "JPY", "0.0067")
    retry_task(hub, find_task(hub, conn.id, "inv-1").id)
    drain_until_idle(hub, 30, settings=FAST)
    assert find_task(hub, conn.id, "pay-1", entity_type="payment").status == TaskStatus.DONE
    assert len(zoho_payments(zoho_emulator, org, "pay-1")) == 1


@pytest.mark.parametrize("fault", [None, "lost", "error", "rate_limit"])
def test_void_after_the_invoice_push_exactly_once(hub: Hub, zoho_emulator_factory: Any, fault: str | None) -> None:
    zoho_emulator = zoho_emulator_factory(retry_after=0)
    conn, org = zoho_connection(hub, zoho_emulator)
    hub.submit_invoice("t1", "prod", invoice(1))
    if fault:
        zoho_emulator.faults.add(fault, 1, "POST", "/books/v3/invoices/")
    result = hub.submit_void("t1", "prod", "inv-1")  # queued before the invoice was pushed
    assert result.kind == "void" and result.queued
    assert not hub.submit_void("t1", "prod", "inv-1").queued
    drain_until_idle(hub, 60, settings=FAST)
    task = find_task(hub, conn.id, "inv-1", entity_type="void")
    assert task.status == TaskStatus.DONE
    [zoho_invoice] = zoho_emulator.invoices(org)
    assert zoho_invoice["status"] == "void"
    assert zoho_emulator.request_count(org, "POST", "/invoices") == 1
    hub.submit_void("t1", "prod", "inv-1")
    drain_until_idle(hub, 10, settings=FAST)
    assert find_task(hub, conn.id, "inv-1", entity_type="void").attempts == task.attempts  # never pushed again
