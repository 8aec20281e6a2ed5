"""Helpers (no tests) shared by the inbound tests: a recording host, a ledger connection with a linked invoice."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from typing import Any

import attrs

from integration_core import mapping
from integration_core.hookspecs import hookimpl
from integration_core.hub import Hub
from integration_core.models import Connection, Customer, Invoice, SyncSettings
from integration_core.providers import ledger as ledger_mod


class RecordingHost:
    """A host that records every hook call; idempotent on payment_key like a careful host would be."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.payments: dict[str, dict[str, Any]] = {}
        self.payment_calls = 0
        self.voided: list[str] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.fail_payments = 0

    @hookimpl
    def record_payment(self, tenant_id, environment_id, invoice_id, amount, currency, paid_on, payment_key):  # type: ignore[no-untyped-def]
        with self.lock:
            self.payment_calls += 1
            if self.fail_payments:
                self.fail_payments -= 1
                raise RuntimeError("host database is locked")
            self.payments.setdefault(
                payment_key,
                {"tenant": tenant_id, "invoice": invoice_id, "amount": amount, "currency": currency, "on": paid_on},
            )
        return payment_key

    @hookimpl
    def void_invoice(self, tenant_id, environment_id, invoice_id):  # type: ignore[no-untyped-def]
        with self.lock:
            self.voided.append(invoice_id)

    @hookimpl
    def find_customer_by_email(self, tenant_id, environment_id, email):  # type: ignore[no-untyped-def]
        for cid, c in self.customers.items():
            if c["tenant"] == tenant_id and c["email"] == email:
                return cid
        return None

    @hookimpl
    def create_customer(self, tenant_id, environment_id, name, email):  # type: ignore[no-untyped-def]
        with self.lock:
            cid = f"cust-{len(self.customers) + 1}"
            self.customers[cid] = {"tenant": tenant_id, "name": name, "email": email}
            return cid


@attrs.define
class LedgerSetup:
    conn: Connection
    account: str
    secret: str
    book: ledger_mod.Ledger
    remote_invoice: str
    local_invoice: str

    def path(self) -> str:
        return f"/v1/webhooks/ledger/{self.conn.tenant_id}/{self.conn.environment_id}"


def make_invoice(local_id: str = "INV-1", email: str = "ada@example.com", amount: str = "120.00") -> Invoice:
    return Invoice(
        id=local_id,
        number=local_id,
        customer=Customer(id="c-" + local_id, name="Ada", email=email),
        currency="USD",
        issue_date="2026-01-02",
        lines=[{"description": "Consulting", "amount": amount}],
    )


def ledger_connection(
    hub: Hub, tenant: str = "acme", env: str = "prod", *, customers_inbound: bool = True
) -> LedgerSetup:
    """A ledger connection and one invoice pushed "from our side" (remote invoice + invoice mapping)."""
    account = "acct-" + uuid.uuid4().hex[:10]
    secret = "whsec" + account + "xyz"
    conn = hub.add_connection(
        tenant_id=tenant,
        environment_id=env,
        provider="ledger",
        name=f"{tenant} books",
        values={"account": account, "api_key": "k-" + account, "webhook_secret": secret},
        sync=SyncSettings(customers_inbound=customers_inbound),
    )
    book = ledger_mod.ledger(account)
    invoice = make_invoice(f"INV-{tenant}")
    contact = book.create_contact("Ada", "ada@example.com")
    remote = book.create_invoice(invoice, contact.id)
    with hub.engine.begin() as db:
        mapping.link(db, conn.id, mapping.INVOICE, invoice.id, remote.id)
    return LedgerSetup(conn, account, secret, book, remote.id, invoice.id)


def amount(value: str) -> Decimal:
    return Decimal(value)
