"""Thin QuickBooks notifications and ChangeDataCapture turned into the core's normalized events.

Prepared for the core's provider-level webhooks and scheduled reconciliation (QUICKBOOKS.md §7):

* :func:`events_for` fetches what a batch of notifications names (a Payment, an Invoice, a Customer)
  and returns events; run it from the outbox (rate limit, retries), not inside the webhook answer.
* :func:`changes_since` asks CDC for Payments, Invoices and Customers changed since a cursor and returns
  the same events with the same dedupe keys, plus the next cursor: a missed webhook is caught up and a
  duplicate is harmless.

Dedupe keys: a payment's share of one invoice is ``qbo:<realm>:payment:<payment id>:invoice:<invoice id>``
(each linked invoice's share reaches the host once, whichever path saw it first); its reversal when the payment
is voided or deleted ``<share key>:reversed`` (:mod:`quickbooks.reversals`); an invoice void
``qbo:<realm>:invoice:<id>:voided``; a customer ``qbo:<realm>:customer:<id>:created``.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

import attrs

from integration_core.context import ProviderContext
from integration_core.models import CustomerCreated, Event, Ignored, InvoicePaid, InvoiceVoided, Notice

from . import reversals
from .client import QBClient, QBOFault
from .webhooks import Notification

log = logging.getLogger(__name__)
CDC_ENTITIES = ("Payment", "Invoice", "Customer")
CDC_MAX_OBJECTS = 1000  # §7: a CDC answer holds at most 1,000 objects
CDC_LOOKBACK = dt.timedelta(days=30)  # §7: look-back at most 30 days
CURSOR_OVERLAP = dt.timedelta(seconds=60)


def payment_events(realm_id: str, payment: dict[str, Any]) -> list[Event]:
    """One InvoicePaid per linked invoice of a Payment (§4 Payment: ``Line[].LinkedTxn``)."""
    if reversals.is_voided(payment):
        return [Ignored(f"qbo:{realm_id}:payment:{payment.get('Id')}:voided", "payment voided in QuickBooks")]
    currency = str((payment.get("CurrencyRef") or {}).get("value") or "") or None
    paid_on = str(payment.get("TxnDate") or dt.date.today().isoformat())
    events: list[Event] = []
    for line in payment.get("Line") or []:
        amount = Decimal(str(line.get("Amount") or 0))
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") == "Invoice" and amount > 0:
                events.append(InvoicePaid(
                    dedupe_key=reversals.share_key(realm_id, str(payment["Id"]), str(link["TxnId"])),
                    remote_invoice_id=str(link["TxnId"]), amount=amount, currency=currency, paid_on=paid_on,
                    remote_payment_id=str(payment["Id"])))  # a payment pushed from our side is not recorded again
    if not events:
        events.append(Ignored(f"qbo:{realm_id}:payment:{payment.get('Id')}:unapplied",
                              "payment not applied to any invoice"))
    return events


def payment_state(ctx: ProviderContext, realm_id: str, payment: dict[str, Any]) -> list[Event]:
    """A fetched payment: voided → its remembered shares reversed; else its shares, remembered first so a
    later void or delete (whose record no longer tells them) can take them back."""
    payment_id = str(payment.get("Id"))
    if reversals.is_voided(payment):
        return reversals.reversal_events(ctx, realm_id, payment_id)
    events = payment_events(realm_id, payment)
    reversals.remember(ctx, payment_id, [(e.remote_invoice_id, e.amount) for e in events
                                         if isinstance(e, InvoicePaid)])
    return events


def _is_void(invoice: dict[str, Any]) -> bool:
    # §4 Void: amounts zeroed and PrivateNote "Voided".
    return str(invoice.get("PrivateNote") or "") == "Voided" and Decimal(str(invoice.get("TotalAmt") or 0)) == 0


def customer_event(realm_id: str, customer: dict[str, Any]) -> Event:
    email = (customer.get("PrimaryEmailAddr") or {}).get("Address")
    return CustomerCreated(f"qbo:{realm_id}:customer:{customer['Id']}:created", str(customer["Id"]),
                           str(customer.get("DisplayName") or customer["Id"]), str(email) if email else None)


def notices_for(ctx: ProviderContext, notifications: list[Notification]) -> list[Event]:
    """The notifications of this connection's company as thin notices (no request made); those of other
    companies are ignored with a reason (a per-connection route posted another company's events)."""
    realm = str(ctx.settings.get("realm_id") or "")
    return [Notice(n.dedupe_key, attrs.asdict(n)) if n.realm_id == realm
            else Ignored(n.dedupe_key, f"event for QuickBooks company {n.realm_id}, not this connection's")
            for n in notifications]


def events_for(ctx: ProviderContext, notifications: list[Notification]) -> list[Event]:
    """Fetch and normalize the notifications of this connection's company; others are ignored with a reason."""
    client = QBClient(ctx)
    events: list[Event] = []
    for n in notifications:
        if n.realm_id != client.realm_id:
            events.append(Ignored(n.dedupe_key, f"event for QuickBooks company {n.realm_id}, not this connection's"))
            continue
        try:
            events.extend(_fetch(client, n))
        except QBOFault as exc:
            if exc.code != "610":
                raise
            events.append(Ignored(n.dedupe_key, f"{n.entity} {n.entity_id} no longer exists in QuickBooks"))
    return events


def _reversed(client: QBClient, n: Notification, what: str) -> list[Event]:
    events = reversals.reversal_events(client.ctx, client.realm_id, n.entity_id)
    return events or [Ignored(n.dedupe_key, f"payment {n.entity_id} {what} in QuickBooks never reached the host "
                                            f"(no recorded share)")]


def _fetch(client: QBClient, n: Notification) -> list[Event]:
    realm = client.realm_id
    if n.entity == "Payment" and n.operation in ("Void", "Delete"):
        # §7 thin events; §4: a deleted payment cannot be read (610) and a voided one has lost its amounts, so
        # the shares come from what was remembered when they reached the host (no request).
        return _reversed(client, n, "voided" if n.operation == "Void" else "deleted")
    if n.entity == "Payment" and n.operation in ("Create", "Update"):
        try:
            payment = client.get(f"/payment/{n.entity_id}").get("Payment") or {}
        except QBOFault as exc:
            if exc.code != "610":
                raise
            return _reversed(client, n, "deleted")  # deleted since: whatever reached the host is taken back
        if reversals.is_voided(payment):
            return _reversed(client, n, "voided")  # voided since (or before it reached the host: then nothing)
        return payment_state(client.ctx, realm, payment)
    if n.entity == "Invoice" and n.operation == "Void":
        return [InvoiceVoided(f"qbo:{realm}:invoice:{n.entity_id}:voided", n.entity_id)]
    if n.entity == "Invoice" and n.operation == "Update":
        invoice = client.get(f"/invoice/{n.entity_id}").get("Invoice") or {}
        if _is_void(invoice):
            return [InvoiceVoided(f"qbo:{realm}:invoice:{n.entity_id}:voided", n.entity_id)]
        return [Ignored(n.dedupe_key, "invoice updated (payments arrive as Payment events)")]
    if n.entity == "Customer" and n.operation == "Create":
        customer = client.get(f"/customer/{n.entity_id}").get("Customer") or {}
        return [customer_event(realm, customer)]
    return [Ignored(n.dedupe_key, f"{n.entity} {n.operation} is not synced")]


def _created_since(row: dict[str, Any], since: dt.datetime) -> bool:
    created = (row.get("MetaData") or {}).get("CreateTime")
    return isinstance(created, str) and dt.datetime.fromisoformat(created) >= since


def changes_since(ctx: ProviderContext, cursor: str | None, *, now: dt.datetime | None = None) -> tuple[list[Event],
                                                                                                        str]:
    """Events from CDC since ``cursor`` (ISO 8601; ``None``: the last 30 days) and the next cursor.

    When the answer is full (1,000 objects), the cursor advances only to the newest change seen, so the
    next run continues from there instead of skipping the rest.
    """
    client = QBClient(ctx)
    now = now or dt.datetime.now(dt.UTC)
    earliest = now - CDC_LOOKBACK + dt.timedelta(minutes=5)  # a margin against clock differences
    since = dt.datetime.fromisoformat(cursor) if cursor else earliest
    if since < earliest:
        log.warning("quickbooks: reconciliation cursor %s is older than CDC's 30 days; starting at the limit", cursor)
        since = earliest
    answer = client.get("/cdc", {"entities": ",".join(CDC_ENTITIES), "changedSince": since.isoformat()})
    events: list[Event] = []
    seen = 0
    newest = since
    for block in answer.get("CDCResponse") or []:
        for group in block.get("QueryResponse") or []:
            for entity, rows in group.items():
                for row in rows if isinstance(rows, list) else []:
                    seen += 1
                    stamp = (row.get("MetaData") or {}).get("LastUpdatedTime")
                    if stamp:
                        newest = max(newest, dt.datetime.fromisoformat(stamp))
                    if entity == "Payment" and row.get("status") == "Deleted":  # §7: only its Id
                        events.extend(reversals.reversal_events(ctx, client.realm_id, str(row.get("Id"))))
                        continue
                    if row.get("status") == "Deleted":
                        continue
                    if entity == "Payment":
                        events.extend(e for e in payment_state(ctx, client.realm_id, row)
                                      if not isinstance(e, Ignored))
                    elif entity == "Invoice" and _is_void(row):
                        events.append(InvoiceVoided(f"qbo:{client.realm_id}:invoice:{row['Id']}:voided", row["Id"]))
                    elif entity == "Customer" and _created_since(row, since):
                        events.append(customer_event(client.realm_id, row))
    # A full answer may have left changes out: continue from the newest seen. Otherwise overlap the next
    # window a little (changes committed as we asked, clocks apart); the dedupe keys make repeats harmless.
    next_cursor = newest if seen >= CDC_MAX_OBJECTS else max(since, now - CURSOR_OVERLAP)
    return events, next_cursor.isoformat()
