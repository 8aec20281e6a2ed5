"""Payments in: each Zoho payment reaches the host once, as it happens, under its own key.

Two payloads name payments (ZOHO_BOOKS.md "Webhooks": the default payload carries every field of the
record, wrapped in the module's name):

* the customer payment webhook, ``{"payment": {payment_id, amount, amount_refunded, date,
  invoices [{invoice_id, amount_applied}], currency_code, ...}}`` (customer-payments.yml): one
  ``InvoicePaid`` per invoice the payment is applied to;
* the invoice webhook, whose record lists the invoice's ``payments`` (invoices.yml: ``payment_id``,
  ``amount``, ``date``, ...): one ``InvoicePaid`` per payment.

Both build the same key, ``payment:<payment_id>:<invoice_id>``, so a payment announced by both webhooks
(and by Zoho's redeliveries) is recorded once, and a partial payment is recorded when it is made, not when
the invoice is finally paid. A deleted payment (the payment webhook with the URL parameter
``event=payment_deleted``, see the emulator's ``subscriptions``) and a refunded one (``amount_refunded``
above zero) become ``PaymentReversed`` under the same payment key.

A payment without a date takes the invoice's ``last_payment_date``, then the delivery time, and the
event says which (``paid_on_source``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from integration_core.errors import WebhookRejected
from integration_core.models import Event, InvoicePaid, PaymentReversed

from .payloads import to_decimal

DELETED_PARAM = ("event", "payment_deleted")
PAYMENT_MODULES = ("payment", "customerpayment", "customer_payment")


def payment_key(payment_id: str, invoice_id: str) -> str:
    return f"payment:{payment_id}:{invoice_id}"


def _id(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool | dict | list):
        return None
    return str(value).strip() or None


def _date(value: Any) -> dt.date | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def _currency(value: Any) -> str | None:
    code = str(value or "").strip().upper()
    return code if len(code) == 3 and code.isascii() and code.isalpha() else None


def paid_on(own: Any, invoice_last_payment: Any = None) -> tuple[dt.date, str | None]:
    """The payment's date, else the invoice's last payment date, else the delivery time (today, UTC)."""
    date = _date(own)
    if date is not None:
        return date, None
    date = _date(invoice_last_payment)
    if date is not None:
        return date, "invoice last payment date"
    return dt.datetime.now(dt.UTC).date(), "delivery time"


def is_deleted(query: Mapping[str, list[str]], form: Mapping[str, Any]) -> bool:
    name, value = DELETED_PARAM
    return value in (query.get(name) or []) or value in (form.get(name) or [])


def parse_payment(data: Mapping[str, Any], *, deleted: bool = False) -> list[Event]:
    """A customer payment webhook: one event per invoice it is applied to."""
    payment_id = _id(data.get("payment_id"))
    if payment_id is None:
        raise WebhookRejected("payment webhook has no payment_id", status=400)
    rows = data.get("invoices")
    if not isinstance(rows, list):
        raise WebhookRejected(f"payment {payment_id} webhook has no invoices list", status=400)
    currency = _currency(data.get("currency_code"))
    refunded = to_decimal(data.get("amount_refunded")) or Decimal(0)
    events: list[Event] = []
    for row in rows:
        if not isinstance(row, dict):
            raise WebhookRejected(f"payment {payment_id} webhook has a malformed invoice row", status=400)
        invoice_id = _id(row.get("invoice_id"))
        applied = to_decimal(row.get("amount_applied"))
        if invoice_id is None or applied is None or applied < 0:
            raise WebhookRejected(f"payment {payment_id} webhook has an invoice row without id or amount",
                                  status=400)
        key = payment_key(payment_id, invoice_id)
        if deleted:
            events.append(PaymentReversed(
                dedupe_key=f"{key}:deleted", remote_invoice_id=invoice_id, remote_payment_id=payment_id,
                payment_key=key, amount=applied, reason="deleted"))
            continue
        if refunded > 0:
            events.append(PaymentReversed(
                dedupe_key=f"{key}:refunded:{refunded.normalize():f}", remote_invoice_id=invoice_id,
                remote_payment_id=payment_id, payment_key=key, amount=refunded, reason="refunded"))
        # The original application: what is applied now plus what a refund took off (a refund reaches
        # the host as its own reversal; the payment key stays the same either way).
        original = applied + refunded if len(rows) == 1 else applied
        if original <= 0:
            continue
        date, source = paid_on(data.get("date"))
        events.append(InvoicePaid(
            dedupe_key=key, remote_invoice_id=invoice_id, amount=original, currency=currency, paid_on=date,
            remote_payment_id=payment_id, paid_on_source=source))
    return events


def invoice_payments(data: Mapping[str, Any], invoice_id: str) -> list[Event] | None:
    """The events of an invoice record's ``payments`` list; ``None`` when the record has no such list."""
    rows = data.get("payments")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return None
    currency = _currency(data.get("currency_code"))
    events: list[Event] = []
    for row in rows:
        payment_id = _id(row.get("payment_id"))
        amount = to_decimal(row.get("amount"))
        if payment_id is None or amount is None or amount <= 0:
            raise WebhookRejected(f"invoice {invoice_id} webhook lists a payment without id or amount", status=400)
        date, source = paid_on(row.get("date"), data.get("last_payment_date"))
        events.append(InvoicePaid(
            dedupe_key=payment_key(payment_id, invoice_id), remote_invoice_id=invoice_id, amount=amount,
            currency=currency, paid_on=date, remote_payment_id=payment_id, paid_on_source=source))
    return events
