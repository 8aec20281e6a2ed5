"""A payment webhook that beats the invoice's link is applied when the link is made, once."""

from __future__ import annotations

import json
import threading
from typing import Any

import sqlalchemy as sa

from integration_core import inbound, mapping
from integration_core.hookspecs import hookimpl
from integration_core.hub import Hub
from integration_core.models import WebhookRequest
from integration_core.outbox import Outbound
from integration_core.providers import ledger
from integration_core.store.schema import connections, inbox_events, utcnow
from tests.providers import faulty
from tests.test_inbound_support import LedgerSetup, ledger_connection, make_invoice
from tests.workers.helpers import FAST, add_connection, invoice


class CountingHost:
    def __init__(self) -> None:
        self.payments: list[tuple[str, str, str]] = []

    @hookimpl
    def record_payment(self, tenant_id, environment_id, invoice_id, amount, currency, paid_on, payment_key):  # type: ignore[no-untyped-def]
        self.payments.append((invoice_id, str(amount), payment_key))


def deliver(hub: Hub, conn, body: bytes, headers: dict[str, str]) -> list[inbound.EventOutcome]:  # type: ignore[no-untyped-def]
    request = WebhookRequest(method="POST", path="/", query={}, headers={k.lower(): v for k, v in headers.items()},
                             body=body)
    ctx = hub.context(conn)
    provider = hub.provider(conn.provider)
    assert provider.verify_webhook(ctx=ctx, request=request)
    return inbound.apply(hub, conn, provider.parse_event(ctx=ctx, request=request))


def test_payment_that_arrives_before_the_lost_push_is_adopted_is_applied_once(hub: Hub) -> None:
    host = CountingHost()
    hub.plugins.set_host(host)
    conn, account = add_connection(hub, provider="faulty")
    secret = hub.context(conn).secrets["webhook_secret"]
    hub.submit_invoice("t1", "prod", invoice(1, amount="250.00"))
    faulty.inject(account, "lost", op="push_invoice")
    outbound = Outbound(hub, "w1", FAST)
    outbound.tick()  # the invoice is created remotely, but the response is "lost": no link yet
    book = ledger.ledger(account)
    [remote] = book.invoices_by_reference("inv-1")

    body, headers = book.pay(secret, remote.id)  # the customer pays at once; the webhook comes first
    [first] = deliver(hub, conn, body, headers)
    assert first.status == "ignored" and "no mapping" in (first.reason or "")
    assert host.payments == []

    for _ in range(20):  # the retry looks the invoice up, adopts it and links it
        outbound.tick()
        with hub.engine.connect() as db:
            status = db.execute(sa.select(inbox_events.c.status).where(inbox_events.c.id == first.event_id)).scalar()
        if status == "applied":
            break
    assert status == "applied"
    assert host.payments == [("inv-1", "250.00", first.dedupe_key)]
    assert len(book.invoices_by_reference("inv-1")) == 1

    [again] = deliver(hub, conn, body, headers)  # the provider redelivers: nothing more happens
    assert again.duplicate and host.payments == [("inv-1", "250.00", first.dedupe_key)]


def test_events_for_invoices_that_are_never_linked_stay_ignored(hub: Hub) -> None:
    host = CountingHost()
    hub.plugins.set_host(host)
    conn, account = add_connection(hub)
    secret = hub.context(conn).secrets["webhook_secret"]
    book = ledger.ledger(account)
    contact = book.create_contact("Someone", "someone@example.com")
    foreign = book.create_invoice(invoice("foreign"), contact.id)  # made on the remote side only
    [outcome] = deliver(hub, conn, *book.pay(secret, foreign.id))
    assert outcome.status == "ignored"
    assert inbound.apply_waiting(hub, conn.id, "some-other-id") == []
    assert host.payments == []


def test_a_payment_read_as_unlinked_while_the_link_commits_is_applied(hub: Hub) -> None:
    """The outbox links an invoice in a transaction that marks the connection successful and then reads the
    events waiting for the link. A payment webhook for that invoice arriving inside that transaction must not
    be stored as "not ours" for good: the two transactions cannot see each other's uncommitted rows, so the
    webhook waits for the link's transaction and then finds the link (on SQLite the write lock orders them)."""
    host = CountingHost()
    hub.plugins.set_host(host)
    setup = ledger_connection(hub, "acme", "prod")
    contact = setup.book.create_contact("Bo", "bo@example.com")
    remote = setup.book.create_invoice(make_invoice("INV-9", amount="75.00"), contact.id)
    body = json.dumps({"type": "invoice.paid", "data": {"invoice_id": remote.id, "amount": "75.00", "currency": "USD",
                                                         "paid_on": "2026-01-15", "payment_id": "P-9"}}).encode()
    headers = {ledger.SIGNATURE_HEADER: ledger.sign(setup.secret, body), "Content-Type": "application/json"}
    assert deliver_http_free(hub, setup, "P-0") == 200  # the dispatcher's context is cached: no read to wait on

    answers: list[Any] = []
    with hub.engine.connect() as linking:
        linking.begin()  # what the outbox's completion does, held open: the link, then the connection's success
        mapping.link_new(linking, setup.conn.id, mapping.INVOICE, "INV-9", remote.id)
        linking.execute(connections.update().where(connections.c.id == setup.conn.id).values(last_success_at=utcnow()))
        webhook = threading.Thread(target=lambda: answers.append(
            hub.handle_webhook("ledger", "acme", "prod", headers=headers, body=body)))
        webhook.start()
        webhook.join(1.0)
        assert webhook.is_alive(), "the webhook did not wait for the link's transaction"
        linking.commit()
    webhook.join(30)
    [answer] = answers
    assert answer.status == 200 and answer.json()["applied"] == 1, answer.body
    assert host.payments[-1] == ("INV-9", "75.00", "payment:P-9")


def deliver_http_free(hub: Hub, setup: LedgerSetup, payment: str) -> int:
    data = {"invoice_id": setup.remote_invoice, "amount": "1.00", "currency": "USD", "paid_on": "2026-01-15",
            "payment_id": payment}
    body = json.dumps({"type": "invoice.paid", "data": data}).encode()
    headers = {ledger.SIGNATURE_HEADER: ledger.sign(setup.secret, body), "Content-Type": "application/json"}
    return hub.handle_webhook("ledger", "acme", "prod", headers=headers, body=body).status
