"""The dispatcher with the Zoho Books plugin: webhooks sent and signed by the emulator, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from integration_core import mapping
from integration_core.hub import Hub
from integration_core.models import Customer, Invoice
from integration_core.server import RunningServer, running
from integration_core.store.schema import inbox_events
from reference_host import ReferenceHost

CLIENT_ID = "1000.WEBHOOKTEST"


@pytest.fixture
def billing(tmp_path: Path) -> ReferenceHost:
    return ReferenceHost(tmp_path / "billing.sqlite3")


@pytest.fixture
def server(hub: Hub, billing: ReferenceHost) -> Iterator[RunningServer]:
    hub.plugins.set_host(billing)
    with running(hub) as srv:
        yield srv


class Tenant:
    """A Zoho organization in the emulator, a connection to it, and one invoice pushed "from our side"."""

    def __init__(self, hub: Hub, emulator: Any, billing: ReferenceHost, srv: RunningServer, tenant: str,
                 secret: str) -> None:
        self.emulator, self.secret, self.tenant = emulator, secret, tenant
        self.org = emulator.add_organization(name=f"{tenant} org", currency_code="USD")
        self.conn = hub.add_connection(
            tenant_id=tenant, environment_id="prod", provider="zoho_books", name=f"{tenant} books",
            values={"client_id": CLIENT_ID, "client_secret": "s3cret-client", "organization_id": self.org,
                    "accounts_server": emulator.base_url, "webhook_secret": secret},
        )
        self.url = f"{srv.url}/v1/webhooks/zoho_books/{tenant}/prod"
        customer = billing.add_customer(tenant, "prod", "Ada", f"ada@{tenant}.example")
        self.invoice: Invoice = billing.add_invoice(tenant, "prod", customer.id, [("Consulting", "150.00")])
        contact, _ = emulator.create_contact(self.org, "Ada", email=customer.email)
        remote = emulator.create_invoice(self.org, contact["contact_id"], [{"name": "Consulting", "rate": "150.00"}],
                                         invoice_number=self.invoice.number)
        self.remote_invoice = remote["invoice_id"]
        with hub.engine.begin() as db:
            mapping.link(db, self.conn.id, mapping.INVOICE, self.invoice.id, self.remote_invoice)


def inbox_count(hub: Hub) -> int:
    with hub.engine.connect() as db:
        return db.execute(sa.select(sa.func.count()).select_from(inbox_events)).scalar_one()


def test_paid_delivered_five_times_records_one_payment(hub: Hub, zoho_emulator: Any, billing: ReferenceHost,
                                                       server: RunningServer) -> None:
    t = Tenant(hub, zoho_emulator, billing, server, "acme", "AcmeSecret12345")
    _, first = zoho_emulator.record_payment(t.org, t.remote_invoice, date="2026-02-01", webhook_url=t.url,
                                            secret=t.secret)
    assert first.status == 200, first.response
    record = zoho_emulator.invoice_webhook(t.org, t.remote_invoice)
    for _ in range(4):
        assert zoho_emulator.send_webhook(t.url, "invoice", record, t.secret).status == 200
    assert len(billing.payments()) == 1
    assert billing.invoice(t.invoice.id)["status"] == "paid"


def test_signed_for_tenant_a_posted_to_tenant_b_is_401_and_changes_nothing(
    hub: Hub, zoho_emulator: Any, billing: ReferenceHost, server: RunningServer
) -> None:
    a = Tenant(hub, zoho_emulator, billing, server, "tenant-a", "TenantASecret001")
    b = Tenant(hub, zoho_emulator, billing, server, "tenant-b", "TenantBSecret002")
    zoho_emulator.record_payment(a.org, a.remote_invoice, date="2026-02-01")
    record = zoho_emulator.invoice_webhook(a.org, a.remote_invoice)
    delivery = zoho_emulator.send_webhook(b.url, "invoice", record, a.secret)
    assert delivery.status == 401
    # even naming B's own invoice, A's secret does not open B's endpoint
    forged = dict(record, invoice_id=b.remote_invoice)
    assert zoho_emulator.send_webhook(b.url, "invoice", forged, a.secret).status == 401
    assert inbox_count(hub) == 0 and billing.payments() == []


def test_form_encoded_and_query_signed_deliveries(hub: Hub, zoho_emulator: Any, billing: ReferenceHost,
                                                  server: RunningServer) -> None:
    import json

    t = Tenant(hub, zoho_emulator, billing, server, "acme", "AcmeSecret12345")
    zoho_emulator.void_invoice(t.org, t.remote_invoice)
    record = zoho_emulator.invoice_webhook(t.org, t.remote_invoice)
    form = {"JSONString": json.dumps({"invoice": record})}
    delivery = zoho_emulator.send_webhook(t.url, "invoice", record, t.secret, query={"source": "workflow"}, form=form)
    assert delivery.status == 200, delivery.response
    assert billing.invoice(t.invoice.id)["status"] == "void"
    with_query = zoho_emulator.send_webhook(t.url + "?source=other", "invoice", record, t.secret)
    assert with_query.status == 200  # query parameters are part of what is signed; the emulator signs its own
    bad = zoho_emulator.send_webhook(t.url, "invoice", record, "WrongSecret00000")
    assert bad.status == 401


def test_customer_and_vendor_contacts(hub: Hub, zoho_emulator: Any, billing: ReferenceHost,
                                      server: RunningServer) -> None:
    t = Tenant(hub, zoho_emulator, billing, server, "acme", "AcmeSecret12345")
    existing = billing.add_customer("acme", "prod", "Grace", "grace@navy.example")
    contact, d = zoho_emulator.create_contact(t.org, "Grace H.", email="Grace@Navy.example", webhook_url=t.url,
                                              secret=t.secret)
    assert d.status == 200
    _, d = zoho_emulator.create_contact(t.org, "Paper Co", contact_type="vendor", email="p@paper.example",
                                        webhook_url=t.url, secret=t.secret)
    assert d.status == 200 and b'"ignored": 1' in d.response
    assert [c["email"] for c in billing.customers("acme")].count("grace@navy.example") == 1
    with hub.engine.connect() as db:
        assert mapping.local_id(db, t.conn.id, mapping.CUSTOMER, contact["contact_id"]) == existing.id
    assert isinstance(existing, Customer)


def test_contact_event_of_a_per_currency_contact_resolves_to_the_one_host_customer(
        hub: Hub, zoho_emulator: Any, billing: ReferenceHost, server: RunningServer) -> None:
    t = Tenant(hub, zoho_emulator, billing, server, "acme", "AcmeSecret12345")
    ada = billing.customers("acme")[0]
    zoho_emulator.add_currency(t.org, "EUR", "1.1")
    # the outbox created Ada's EUR contact ("Ada (EUR)") and linked it per currency
    contact, _ = zoho_emulator.create_contact(t.org, "Ada (EUR)", email=ada["email"])
    with hub.engine.begin() as db:
        mapping.link(db, t.conn.id, mapping.contact_type("EUR"), ada["id"], contact["contact_id"])
    delivery = zoho_emulator.send_webhook(t.url, "contact", zoho_emulator.contact_webhook(t.org, contact["contact_id"]),
                                          t.secret)
    assert delivery.status == 200
    assert len(billing.customers("acme")) == 1  # no second host customer for the EUR contact
    with hub.engine.connect() as db:
        assert mapping.customer_for_remote(db, t.conn.id, contact["contact_id"]) == ada["id"]
        reasons = [r.reason for r in db.execute(sa.select(inbox_events.c.reason)).all()]
    assert any(f"linked to host customer {ada['id']}" in (r or "") for r in reasons), reasons
