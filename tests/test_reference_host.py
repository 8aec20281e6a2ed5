"""The reference host: its own store behaves, and it is driven end to end by webhooks through the core."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from integration_core import mapping
from integration_core.hub import Hub
from integration_core.providers import ledger as ledger_mod
from integration_core.server import running
from reference_host import ReferenceHost, UnknownInvoice

from .test_inbound_support import ledger_connection


@pytest.fixture
def billing(tmp_path: Path) -> ReferenceHost:
    return ReferenceHost(tmp_path / "billing.sqlite3")


def test_record_payment_is_idempotent_and_marks_paid_when_fully_paid(billing: ReferenceHost) -> None:
    c = billing.add_customer("t", "e", "Ada", "Ada@Example.com")
    inv = billing.add_invoice("t", "e", c.id, [("A", "60.00"), ("B", "40.00")])
    assert inv.total == Decimal("100.00") and inv.customer.email == "ada@example.com"
    day = dt.date(2026, 1, 5)
    billing.record_payment("t", "e", inv.id, Decimal("40"), "USD", day, "pay-1")
    assert billing.invoice(inv.id)["status"] == "partially_paid"
    billing.record_payment("t", "e", inv.id, Decimal("40"), "USD", day, "pay-1")
    assert len(billing.payments(inv.id)) == 1
    billing.record_payment("t", "e", inv.id, Decimal("60"), "USD", day, "pay-2")
    assert billing.invoice(inv.id)["status"] == "paid" and billing.invoice(inv.id)["paid"] == Decimal("100")


def test_concurrent_identical_payments_record_once(billing: ReferenceHost) -> None:
    c = billing.add_customer("t", "e", "Ada", "ada@example.com")
    inv = billing.add_invoice("t", "e", c.id, [("A", "10")])
    threads = [threading.Thread(target=billing.record_payment,
                                args=("t", "e", inv.id, Decimal("10"), "USD", dt.date(2026, 1, 1), "k"))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(billing.payments()) == 1


def test_tenant_scoping_and_unknown_invoice(billing: ReferenceHost) -> None:
    c = billing.add_customer("t", "e", "Ada", "ada@example.com")
    inv = billing.add_invoice("t", "e", c.id, [("A", "10")])
    with pytest.raises(UnknownInvoice):
        billing.record_payment("other", "e", inv.id, Decimal("10"), "USD", dt.date(2026, 1, 1), "k")
    with pytest.raises(UnknownInvoice):
        billing.void_invoice("t", "e", "inv_9999")
    assert billing.find_customer_by_email("t", "e", "ADA@example.com") == c.id
    assert billing.find_customer_by_email("other", "e", "ada@example.com") is None
    created = billing.create_customer("t", "e", "Bob", "bob@example.com")
    assert billing.customers("t")[-1]["id"] == created and billing.customers("t")[-1]["origin"] == "accounting"


def test_webhooks_reach_the_reference_host(hub: Hub, billing: ReferenceHost) -> None:
    hub.plugins.set_host(billing)
    setup = ledger_connection(hub, "acme", "prod")
    customer = billing.add_customer("acme", "prod", "Ada", "ada@example.com")
    inv = billing.add_invoice("acme", "prod", customer.id, [("Consulting", "250.00")])
    contact = setup.book.create_contact("Ada", "ada@example.com")
    remote = setup.book.create_invoice(inv, contact.id)
    with hub.engine.begin() as db:
        mapping.link(db, setup.conn.id, mapping.INVOICE, inv.id, remote.id)
    inv2 = billing.add_invoice("acme", "prod", customer.id, [("Support", "10.00")])
    remote2 = setup.book.create_invoice(inv2, contact.id)
    with hub.engine.begin() as db:
        mapping.link(db, setup.conn.id, mapping.INVOICE, inv2.id, remote2.id)
    with running(hub) as srv:
        url = srv.url + setup.path()
        body, headers = setup.book.pay(setup.secret, remote.id)
        for _ in range(3):
            assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200
        body, headers = setup.book.void(setup.secret, remote2.id)
        assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200
        body, headers = setup.book.new_contact(setup.secret, "Ada Lovelace", "ADA@example.com")
        assert requests.post(url, data=body, headers=headers, timeout=10).json()["applied"] == 1
        body, headers = setup.book.new_contact(setup.secret, "Grace", "grace@example.com")
        assert requests.post(url, data=body, headers=headers, timeout=10).json()["applied"] == 1
    assert billing.invoice(inv.id)["status"] == "paid"
    assert len(billing.payments(inv.id)) == 1
    assert billing.invoice(inv2.id)["status"] == "void"
    assert [c["email"] for c in billing.customers("acme")] == ["ada@example.com", "grace@example.com"]
    assert ledger_mod.LEDGERS[setup.account] is setup.book
