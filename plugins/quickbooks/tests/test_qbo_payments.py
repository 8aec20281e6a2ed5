"""Payments and voids out to QuickBooks Online through the outbox, over real HTTP against the emulator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from qbo_helpers import qbo_connection
from test_qbo_hub import FAST, invoice

from integration_core.models import Payment, TaskStatus
from integration_core.outbox import find_task
from integration_core.scheduler import drain_until_idle


def payment(n: int, inv: int, amount: str, **kw: Any) -> Payment:
    return Payment(id=f"pay-{n}", invoice_id=f"inv-{inv}", amount=Decimal(amount), currency=kw.get("currency", "USD"),
                   paid_on="2026-01-20", method="card", reference=kw.get("reference"))


def ours(emu: Any, realm: str, payment_id: str) -> list[dict[str, Any]]:
    note = f"integration-core payment {payment_id}"
    return [p for p in emu.records(realm, "Payment") if p.get("PrivateNote") == note]


@pytest.mark.parametrize("fault", [None, "lost", "lost_as_error", "error", "rate_limit"])
def test_payment_linked_to_its_invoice_exactly_once(ic_hub, qbo_emulator, fault) -> None:  # type: ignore[no-untyped-def]
    conn, realm = qbo_connection(ic_hub, qbo_emulator)
    ic_hub.submit_payment("t1", "prod", payment(1, 1, "40.00", reference="CH-991"))  # before its invoice
    ic_hub.submit_invoice("t1", "prod", invoice(1, amount="100.00"))
    where = {"method": "POST", "path_prefix": f"/v3/company/{realm}/payment"}
    if fault == "lost":
        qbo_emulator.lose_next_response(1, **where)
    elif fault == "lost_as_error":
        qbo_emulator.lose_next_response(1, as_error=True, **where)
    elif fault == "error":
        qbo_emulator.fail_next(1, status=503, **where)
    elif fault == "rate_limit":
        qbo_emulator.rate_limit_next(1, **where)
    drain_until_idle(ic_hub, 60, settings=FAST)
    [made] = ours(qbo_emulator, realm, "pay-1")
    task = find_task(ic_hub, conn.id, "pay-1", entity_type="payment")
    assert task.status == TaskStatus.DONE and task.remote_id == made["Id"]
    assert made["Line"][0]["LinkedTxn"] == [{"TxnId": find_task(ic_hub, conn.id, "inv-1").remote_id,
                                             "TxnType": "Invoice"}]
    assert made["PaymentRefNum"] == "CH-991"
    [remote] = qbo_emulator.invoices(realm)
    assert Decimal(str(remote["Balance"])) == Decimal("60.00")


def test_overpayment_fails_with_a_clear_reason_and_void_goes_once(ic_hub, qbo_emulator) -> None:  # type: ignore[no-untyped-def]
    conn, realm = qbo_connection(ic_hub, qbo_emulator)
    ic_hub.submit_invoice("t1", "prod", invoice(1, amount="100.00"))
    ic_hub.submit_payment("t1", "prod", payment(1, 1, "150.00"))
    drain_until_idle(ic_hub, 30, settings=FAST)
    task = find_task(ic_hub, conn.id, "pay-1", entity_type="payment")
    assert task.status == TaskStatus.FAILED and "refused payment pay-1 of 150.00" in (task.last_error or "")
    ic_hub.submit_void("t1", "prod", "inv-1")
    ic_hub.submit_void("t1", "prod", "inv-1")
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert find_task(ic_hub, conn.id, "inv-1", entity_type="void").status == TaskStatus.DONE
    [remote] = qbo_emulator.invoices(realm)
    assert Decimal(str(remote["Balance"])) == 0 and "Voided" in remote.get("PrivateNote", "")
    assert qbo_emulator.request_counts(realm).get("POST /invoice") == 2  # the create and one void
