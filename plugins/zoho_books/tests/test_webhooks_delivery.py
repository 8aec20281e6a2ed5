"""Webhooks sent by the emulator over HTTP to a local receiver that runs verify_webhook and parse_event."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from zoho_books import plugin

from conftest import WEBHOOK_SECRET, Zoho
from integration_core.errors import WebhookRejected
from integration_core.models import CustomerCreated, Ignored, InvoicePaid, InvoiceVoided, WebhookRequest


class Receiver:
    """A minimal dispatcher: builds a WebhookRequest, verifies, parses; 401/400/200 like the core's."""

    def __init__(self, zoho: Zoho) -> None:
        self.zoho = zoho
        self.events: list = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                form = {}
                if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                    form = parse_qs(body.decode(), keep_blank_values=True)
                request = WebhookRequest(method="POST", path=parts.path, query=parse_qs(parts.query),
                                         headers=headers, body=body, form=form)
                status = 200
                ctx = receiver.zoho.context()
                if not plugin.verify_webhook(ctx, request):
                    status = 401
                else:
                    try:
                        receiver.events.extend(plugin.parse_event(ctx, request))
                    except WebhookRejected as exc:
                        status = exc.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/webhooks/zoho_books/t1/live"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(zoho: Zoho) -> Iterator[Receiver]:
    r = Receiver(zoho)
    yield r
    r.close()


def pushed_invoice(zoho: Zoho) -> dict:
    contact, _ = zoho.emulator.create_contact(zoho.org_id, "Grace", email="grace@example.test")
    return zoho.emulator.create_invoice(zoho.org_id, contact["contact_id"],
                                        [{"name": "Work", "rate": "250.50", "quantity": 1}],
                                        reference_number="inv_9", date="2024-05-01")


def test_paid_invoice_webhook(zoho: Zoho, receiver: Receiver) -> None:
    inv = pushed_invoice(zoho)
    _, delivery = zoho.emulator.record_payment(zoho.org_id, inv["invoice_id"], date="2024-05-03",
                                               webhook_url=receiver.url, secret=WEBHOOK_SECRET)
    assert delivery.status == 200, delivery
    [event] = receiver.events
    assert isinstance(event, InvoicePaid)
    assert event.remote_invoice_id == inv["invoice_id"] and event.amount == Decimal("250.50")
    assert event.currency == "USD" and event.paid_on.isoformat() == "2024-05-03"
    # a re-delivery gives the same dedupe key
    zoho.emulator.send_webhook(receiver.url, "invoice", zoho.emulator.invoice_webhook(zoho.org_id, inv["invoice_id"]),
                               WEBHOOK_SECRET)
    assert receiver.events[1].dedupe_key == event.dedupe_key


def test_partial_payments_each_reach_the_host_under_their_own_key(zoho: Zoho, receiver: Receiver) -> None:
    inv = pushed_invoice(zoho)
    first, _ = zoho.emulator.record_payment(zoho.org_id, inv["invoice_id"], amount="50", webhook_url=receiver.url,
                                            secret=WEBHOOK_SECRET)
    [event] = receiver.events
    assert isinstance(event, InvoicePaid) and event.amount == Decimal("50")
    assert event.dedupe_key == f"payment:{first['payment_id']}:{inv['invoice_id']}"
    assert event.remote_payment_id == first["payment_id"] and event.paid_on_source is None
    second, _ = zoho.emulator.record_payment(zoho.org_id, inv["invoice_id"], webhook_url=receiver.url,
                                             secret=WEBHOOK_SECRET, module="payment")
    again = receiver.events[1:]
    assert [e.dedupe_key for e in again] == [f"payment:{second['payment_id']}:{inv['invoice_id']}"]


def test_void_webhook(zoho: Zoho, receiver: Receiver) -> None:
    inv = pushed_invoice(zoho)
    _, delivery = zoho.emulator.void_invoice(zoho.org_id, inv["invoice_id"], webhook_url=receiver.url,
                                             secret=WEBHOOK_SECRET)
    assert delivery.status == 200
    assert receiver.events == [InvoiceVoided(dedupe_key=f"invoice:{inv['invoice_id']}:void",
                                             remote_invoice_id=inv["invoice_id"])]


def test_contact_webhooks(zoho: Zoho, receiver: Receiver) -> None:
    customer, _ = zoho.emulator.create_contact(zoho.org_id, "Hopper Inc", email="grace@hopper.test",
                                               webhook_url=receiver.url, secret=WEBHOOK_SECRET)
    zoho.emulator.create_contact(zoho.org_id, "Parts Co", contact_type="vendor", webhook_url=receiver.url,
                                 secret=WEBHOOK_SECRET)
    created, vendor = receiver.events
    assert created == CustomerCreated(dedupe_key=f"contact:{customer['contact_id']}:created",
                                      remote_customer_id=customer["contact_id"], name="Hopper Inc",
                                      email="grace@hopper.test")
    assert isinstance(vendor, Ignored) and vendor.reason.endswith("is a vendor, not a customer")


def test_query_and_form_deliveries_verify(zoho: Zoho, receiver: Receiver) -> None:
    inv = pushed_invoice(zoho)
    zoho.emulator.void_invoice(zoho.org_id, inv["invoice_id"])
    record = zoho.emulator.invoice_webhook(zoho.org_id, inv["invoice_id"])
    delivery = zoho.emulator.send_webhook(receiver.url + "?source=books", "invoice", record, WEBHOOK_SECRET,
                                          query={"event": "invoice_updated"})
    assert delivery.status == 200
    delivery = zoho.emulator.send_webhook(receiver.url, "invoice", record, WEBHOOK_SECRET,
                                          form={"JSONString": json.dumps({"invoice": record})})
    assert delivery.status == 200, delivery
    assert [type(e) for e in receiver.events] == [InvoiceVoided, InvoiceVoided]


def test_bad_signatures_are_refused(zoho: Zoho, receiver: Receiver) -> None:
    inv = pushed_invoice(zoho)
    record = zoho.emulator.invoice_webhook(zoho.org_id, inv["invoice_id"])
    assert zoho.emulator.send_webhook(receiver.url, "invoice", record, "wrongsecret1234").status == 401
    assert zoho.emulator.send_webhook(receiver.url, "invoice", record, None).status == 401
    assert receiver.events == []
