"""QuickBooks webhooks and CDC reconciliation end to end: the emulator signs and delivers (classic and
CloudEvents), the core's dispatcher verifies and applies through the plugin, over real HTTP.

These use the per-connection route ``/v1/webhooks/quickbooks/<tenant>/<env>`` (with the connection's own copy of
the verifier token); the provider-level route is in test_qbo_app_webhooks.py. Either way the thin notifications
are stored first and fetched later by the outbox (``drain_until_idle``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from qbo_helpers import CLIENT_ID, VERIFIER_TOKEN, qbo_connection
from quickbooks import inbound, webhooks

from integration_core import inbound as core_inbound
from integration_core.hub import Hub
from integration_core.models import InvoicePaid, WebhookRequest
from integration_core.outbox import OutboundSettings
from integration_core.scheduler import drain_until_idle
from integration_core.server import RunningServer, running
from integration_core.store.schema import inbox_events
from reference_host import ReferenceHost

FAST = OutboundSettings(backoff_base=0.001, backoff_cap=0.01, lease_seconds=5.0, park_seconds=0.2)


@pytest.fixture
def billing(tmp_path: Path) -> ReferenceHost:
    return ReferenceHost(tmp_path / "billing.sqlite3")


@pytest.fixture
def server(ic_hub: Hub, billing: ReferenceHost) -> Iterator[RunningServer]:
    ic_hub.plugins.set_host(billing)
    with running(ic_hub) as srv:
        yield srv


class Tenant:
    """A company in the emulator, a Hub connection to it and two host invoices pushed through the outbox."""

    def __init__(self, hub: Hub, emu: Any, billing: ReferenceHost, srv: RunningServer, tenant: str = "acme",
                 fmt: str = "classic") -> None:
        self.hub, self.emu, self.billing = hub, emu, billing
        self.conn, self.realm = qbo_connection(hub, emu, tenant=tenant, env="prod")
        self.url = f"{srv.url}/v1/webhooks/quickbooks/{tenant}/prod"
        emu.configure_webhooks(CLIENT_ID, self.url, VERIFIER_TOKEN, fmt)
        customer = billing.add_customer(tenant, "prod", "Ada", f"ada@{tenant}.example")
        self.invoices = [billing.add_invoice(tenant, "prod", customer.id, [("Plan", amount)])
                         for amount in ("100.00", "50.00")]
        for inv in self.invoices:
            hub.submit_invoice(tenant, "prod", inv)
        drain_until_idle(hub, 30, settings=FAST)
        emu.deliver_webhooks()  # the creations we caused ourselves: acknowledged and ignored
        by_note = {r["PrivateNote"]: r["Id"] for r in emu.invoices(self.realm)}
        self.remote = [by_note[f"integration-core invoice {inv.id}"] for inv in self.invoices]

    def pay_partially_across_both(self) -> dict[str, Any]:
        return self.emu.record_payment(self.realm, {self.remote[0]: "60.00", self.remote[1]: "50.00"})


def inbox(hub: Hub) -> list[Any]:
    with hub.engine.connect() as db:
        return list(db.execute(sa.select(inbox_events).order_by(inbox_events.c.id)))


@pytest.mark.parametrize("fmt", ["classic", "cloudevents"])
def test_partial_payment_across_two_invoices_reaches_the_host_once(ic_hub, qbo_emulator, billing, server,
                                                                    fmt) -> None:
    t = Tenant(ic_hub, qbo_emulator, billing, server, fmt=fmt)
    t.pay_partially_across_both()
    deliveries = qbo_emulator.deliver_webhooks()
    assert [d.status for d in deliveries] == [200]
    for _ in range(2):  # at-least-once delivery: the same notification again
        again = qbo_emulator.webhooks.post(t.url, deliveries[0].body, VERIFIER_TOKEN)
        assert again.status == 200
    drain_until_idle(ic_hub, 30, settings=FAST)
    payments = sorted((p["invoice_id"], Decimal(p["amount"])) for p in billing.payments())
    assert payments == sorted([(t.invoices[0].id, Decimal("60")), (t.invoices[1].id, Decimal("50"))])
    assert billing.invoice(t.invoices[0].id)["status"] == "partially_paid"
    assert billing.invoice(t.invoices[1].id)["status"] == "paid"


def test_tampered_body_and_wrong_token_are_refused(ic_hub, qbo_emulator, billing, server) -> None:
    t = Tenant(ic_hub, qbo_emulator, billing, server)
    before = len(inbox(ic_hub))
    payment = t.pay_partially_across_both()
    body = json.dumps({"eventNotifications": [{"realmId": t.realm, "dataChangeEvent": {"entities": [
        {"name": "Payment", "id": payment["Id"], "operation": "Create", "lastUpdated": "2026-01-01T00:00:00Z"}]}}]})
    signature = webhooks.signature(VERIFIER_TOKEN, body.encode())
    tampered = body.replace(payment["Id"], "999").encode()
    assert qbo_emulator.webhooks.post(t.url, tampered, VERIFIER_TOKEN, signature=signature).status == 401
    assert qbo_emulator.webhooks.post(t.url, body.encode(), "another-apps-token").status == 401
    unsigned = requests.post(t.url, data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert unsigned.status_code == 401
    assert billing.payments() == [] and len(inbox(ic_hub)) == before
    assert qbo_emulator.webhooks.post(t.url, body.encode(), VERIFIER_TOKEN).status == 200
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert len(billing.payments()) == 2


def test_event_for_an_unknown_company_is_acknowledged_and_ignored(ic_hub, qbo_emulator, billing, server) -> None:
    t = Tenant(ic_hub, qbo_emulator, billing, server)
    body = json.dumps([{"specversion": "1.0", "id": "evt-1", "source": "intuit.x", "type": "qbo.payment.created.v1",
                        "time": "2026-01-01T00:00:00Z", "intuitentityid": "7", "intuitaccountid": "123456789",
                        "data": {}}]).encode()
    before = len(inbox(ic_hub))
    delivery = qbo_emulator.webhooks.post(t.url, body, VERIFIER_TOKEN)
    assert delivery.status == 200
    rows = inbox(ic_hub)[before:]
    assert len(rows) == 1 and rows[0].status == "ignored" and "123456789" in (rows[0].reason or "")


def test_malformed_payload_is_rejected() -> None:
    request = WebhookRequest("POST", "/", {}, {}, b'{"something": 1}')
    with pytest.raises(Exception, match="neither"):
        webhooks.parse_notifications(request.body)
    with pytest.raises(Exception, match="realmId"):
        webhooks.parse_notifications(b'{"eventNotifications": [{"dataChangeEvent": {"entities": []}}]}')


def test_missed_webhook_is_caught_by_cdc_reconciliation_and_the_late_one_is_harmless(ic_hub, qbo_emulator, billing,
                                                                                   server) -> None:
    t = Tenant(ic_hub, qbo_emulator, billing, server)
    cursor = None
    t.pay_partially_across_both()
    missed = qbo_emulator.webhooks.pending(CLIENT_ID)
    assert missed >= 1
    held = list(qbo_emulator.webhooks.apps[CLIENT_ID].pending)
    qbo_emulator.webhooks.drop_pending(CLIENT_ID)  # Intuit never delivers these
    ctx = ic_hub.context(t.conn.id)
    events, cursor = inbound.changes_since(ctx, cursor)
    paid = [e for e in events if isinstance(e, InvoicePaid)]
    assert sorted((e.remote_invoice_id, e.amount) for e in paid) == sorted(
        [(t.remote[0], Decimal("60")), (t.remote[1], Decimal("50"))])
    core_inbound.apply(ic_hub, ic_hub.get_connection(t.conn.id), events)
    assert len(billing.payments()) == 2
    # a second run from the new (overlapping) cursor finds the same payment again: harmless
    again, _ = inbound.changes_since(ctx, cursor)
    core_inbound.apply(ic_hub, ic_hub.get_connection(t.conn.id), again)
    assert len(billing.payments()) == 2
    # the late webhook carries the same dedupe keys: nothing is counted twice
    qbo_emulator.webhooks.apps[CLIENT_ID].pending.extend(held)
    assert [d.status for d in qbo_emulator.deliver_webhooks()] == [200]
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert len(billing.payments()) == 2


def test_the_webhook_about_our_own_payment_records_nothing(ic_hub, qbo_emulator, billing, server) -> None:
    t = Tenant(ic_hub, qbo_emulator, billing, server)
    ours = billing.add_payment("acme", "prod", t.invoices[0].id, "30.00", method="card")
    ic_hub.submit_payment("acme", "prod", ours)
    drain_until_idle(ic_hub, 30, settings=FAST)
    deliveries = qbo_emulator.deliver_webhooks()  # QuickBooks announces the Payment we created
    assert deliveries and {d.status for d in deliveries} == {200}
    drain_until_idle(ic_hub, 30, settings=FAST)  # the thin notices fetched
    assert [p["payment_key"] for p in billing.payments()] == [ours.id]
    assert billing.invoice(t.invoices[0].id)["status"] == "partially_paid"
    echoes = [e for e in inbox(ic_hub) if e.kind == "invoice_paid"]
    assert echoes and all(e.status == "ignored" and "pushed from this side" in e.reason for e in echoes)
