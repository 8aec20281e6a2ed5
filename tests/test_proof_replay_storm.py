"""Proof: one remote payment event → at most one payment in the host (DESIGN §5, second invariant).

200 host invoices are pushed to the Zoho Books emulator (so they are linked from our side); then Zoho-side
events happen: 120 invoices paid (30 of them first partly, then in full: two payments), 60 voids, 20
payments of invoices that were never ours, 150 new customers (60 matching a host customer by email, 90
new) and 10 vendors. Their webhooks, signed with the connection's secret, are delivered 3,000 times over
HTTP to the real dispatcher server from 16 threads: every event at least once, duplicates, shuffled order
(a "paid" may come before its "partially paid": the paid invoice's record lists both payments), and
byte-different bodies of one event (key order varies, as retried senders do).

Each hook call the core makes into the host is counted (the reference host's own unique key is not relied
on): one ``record_payment`` per payment (150), one ``void_invoice`` per void, one ``create_customer`` per new
customer, and the inbox holds exactly one row per distinct event.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from zoho_books.emulator import SIGNATURE_HEADER, sign

from integration_core import mapping
from integration_core.hub import Hub
from integration_core.server import running
from integration_core.store.schema import inbox_events
from integration_core.webhooks import webhook_path

from .proof.host import CountingHost
from .proof.zoho import mappings, push_host_invoices, webhook_secret, zoho_connection

DELIVERIES = 3000
THREADS = 16


def _body(module: str, record: dict[str, Any], reverse: bool) -> bytes:
    items = sorted(record.items(), reverse=reverse)
    return json.dumps({module: dict(items)}).encode()


def test_replay_storm_applies_each_event_once(hub: Hub, tmp_path: Path, zoho_emulator_factory) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    rng = random.Random(7)
    host = CountingHost(tmp_path / "billing.sqlite3")
    hub.plugins.set_host(host)
    emu = zoho_emulator_factory(rate_limit_per_minute=1_000_000)
    conn = zoho_connection(hub, emu, settings={"rate_limit_per_minute": "1000000"})
    org = conn.settings["organization_id"]
    invoices = push_host_invoices(hub, host, "t1", "live", 200, customers=40)
    remote_of = mappings(hub, conn.id, mapping.INVOICE)
    assert len(remote_of) == 200

    events: list[tuple[str, dict[str, Any]]] = []
    paid, voided = invoices[:120], invoices[120:180]
    for i, inv in enumerate(paid):
        rid = remote_of[inv.id]
        if i < 30:  # first a partial payment (recorded as it happens, under its own key)...
            emu.record_payment(org, rid, amount=str(inv.total / 2))
            events.append(("invoice", emu.invoice_webhook(org, rid)))
        emu.record_payment(org, rid)  # ... then the (rest of the) payment: the invoice is paid
        events.append(("invoice", emu.invoice_webhook(org, rid)))
    for inv in voided:
        rid = remote_of[inv.id]
        emu.void_invoice(org, rid)
        events.append(("invoice", emu.invoice_webhook(org, rid)))
    foreign_contact, _ = emu.create_contact(org, "Walk-in Zoho only", email="zoho.only@example.test")
    for n in range(20):  # paid in Zoho, never created from our side: ignored, with the reason
        made = emu.create_invoice(org, foreign_contact["contact_id"], [{"name": "x", "rate": 10 + n, "quantity": 1}])
        emu.record_payment(org, made["invoice_id"])
        events.append(("invoice", emu.invoice_webhook(org, made["invoice_id"])))
    walk_ins = [host.store.add_customer("t1", "live", f"Walk-in {n}", f"walkin{n}@host.example") for n in range(60)]
    for n, person in enumerate(walk_ins):
        contact, _ = emu.create_contact(org, f"Zoho Walk-in {n}", email=person.email)
        events.append(("contact", emu.contact_webhook(org, contact["contact_id"])))
    for n in range(90):
        contact, _ = emu.create_contact(org, f"New in Zoho {n}", email=f"new{n}@zoho.example")
        events.append(("contact", emu.contact_webhook(org, contact["contact_id"])))
    for n in range(10):
        contact, _ = emu.create_contact(org, f"Vendor {n}", contact_type="vendor", email=f"vendor{n}@zoho.example")
        events.append(("contact", emu.contact_webhook(org, contact["contact_id"])))
    assert len(events) == 390

    picks = list(range(len(events))) + [rng.randrange(len(events)) for _ in range(DELIVERIES - len(events))]
    rng.shuffle(picks)
    secret = webhook_secret()
    deliveries = []
    for i in picks:
        module, record = events[i]
        body = _body(module, record, reverse=rng.random() < 0.5)
        deliveries.append((body, {SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"}))

    with running(hub) as srv:
        url = srv.url + webhook_path("zoho_books", "t1", "live")

        def deliver(item: tuple[bytes, dict[str, str]]) -> tuple[int, str]:
            r = requests.post(url, data=item[0], headers=item[1], timeout=60)
            return r.status_code, r.text

        with ThreadPoolExecutor(THREADS) as pool:
            answers = list(pool.map(deliver, deliveries))

    assert Counter(status for status, _ in answers) == {200: DELIVERIES}
    replies = [json.loads(text) for _, text in answers]
    # A paid invoice's record lists its payments: one event each (the partly paid ones carry two).
    per_body = [len(r.get("payments") or []) if r.get("status") in ("paid", "partially_paid") else 1
                for _, r in events]
    distinct = 90 + 30 * 2 + 60 + 20 + 150 + 10
    sent = sum(per_body[i] for i in picks)
    assert sum(r["events"] for r in replies) == sent
    assert sum(r["duplicates"] for r in replies) == sent - distinct
    assert sum(r["applied"] + r["ignored"] for r in replies) == distinct

    # The inbox: one row per distinct event, every delivery counted on it.
    with hub.engine.connect() as db:
        rows = db.execute(sa.select(inbox_events)).all()
    assert len(rows) == distinct
    assert sum(r.deliveries for r in rows) == sent
    statuses = Counter((r.kind, r.status) for r in rows)
    assert statuses == {("invoice_paid", "applied"): 150, ("invoice_voided", "applied"): 60,
                        ("customer_created", "applied"): 150, ("ignored", "ignored"): 10,
                        ("invoice_paid", "ignored"): 20}, statuses

    # The host: each hook called exactly once per event, never twice.
    payments = host.keys("record_payment")
    assert len(payments) == 150 and set(payments.values()) == {1}
    assert {key.split("/")[2] for key in payments} == {inv.id for inv in paid}
    voids = host.keys("void_invoice")
    assert len(voids) == 60 and set(voids.values()) == {1}
    created = host.keys("create_customer")
    assert len(created) == 90 and set(created.values()) == {1}
    assert host.count("find_customer_by_email") == 150  # once per customer event, at its single application
    stored = host.store.payments()
    expected = Counter({inv.id: 2 if i < 30 else 1 for i, inv in enumerate(paid)})
    assert Counter(p["invoice_id"] for p in stored) == expected
    for inv in paid:
        row = host.store.invoice(inv.id)
        assert row["status"] == "paid" and row["paid"] == inv.total == Decimal(row["total"])
    assert all(host.store.invoice(inv.id)["status"] == "void" for inv in voided)
    assert all(host.store.invoice(inv.id)["status"] == "open" for inv in invoices[180:])
    # outbound links are per currency (customer:USD), inbound ones plain (customer): one host customer each
    customers = {**mappings(hub, conn.id, mapping.CUSTOMER), **mappings(hub, conn.id, mapping.contact_type("USD"))}
    assert len(customers) == 40 + 60 + 90
    assert all(customers[p.id] for p in walk_ins)
    assert len([c for c in host.store.customers("t1") if c["origin"] == "accounting"]) == 90
    print(f"\nreplay storm: {len(events)} distinct events, {DELIVERIES} deliveries from {THREADS} threads, "
          f"{host.count('record_payment')} payments recorded, {time.monotonic() - started:.1f}s")
