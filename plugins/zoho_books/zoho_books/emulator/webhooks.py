"""Outgoing webhooks shaped and signed like Zoho Books workflow webhooks."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .httpio import dumps, jsonable
from .payments import invoice_payments
from .signing import SIGNATURE_HEADER, sign
from .state import BooksState

INVOICE_FIELDS = (
    "invoice_id", "invoice_number", "date", "due_date", "status", "reference_number", "customer_id",
    "customer_name", "currency_id", "currency_code", "currency_symbol", "exchange_rate", "line_items",
    "sub_total", "tax_total", "total", "payment_made", "credits_applied", "balance", "write_off_amount",
    "last_payment_date", "notes", "terms", "created_time", "last_modified_time",
)


@dataclass
class WebhookDelivery:
    """What was sent and how the receiver answered (status 0 when it could not be reached)."""

    url: str
    body: bytes
    signature: str | None
    status: int
    response: bytes
    error: str | None = None


def invoice_record(state: BooksState, org_id: str, invoice_id: str) -> dict[str, Any]:
    """The whole invoice as the `invoice` object of a Books webhook (numbers as JSON numbers, ids as strings).

    The default Books payload carries every field of the record; INVOICE_FIELDS are the ones receivers use.
    """
    record = state.invoice(org_id, invoice_id)
    record["organization_id"] = org_id
    record["payments"] = invoice_payments(state, org_id, invoice_id)  # as the invoice record lists them
    return jsonable(record)


def payment_record(state: BooksState, org_id: str, payment: Mapping[str, Any]) -> dict[str, Any]:
    """A customer payment as the `payment` object of a Books webhook (the record of customer-payments.yml)."""
    record = dict(payment)
    record["organization_id"] = org_id
    # In Zoho a payment is in its customer's currency, which is its invoices' (one currency per contact,
    # ZOHO_BOOKS.md); the emulator lets a contact hold invoices in several, so name the invoices' currency.
    codes = set()
    for row in payment.get("invoices") or []:
        try:
            codes.add(state.invoice(org_id, row["invoice_id"])["currency_code"])
        except Exception:  # a deleted invoice: keep the payment's own currency
            codes.add(payment.get("currency_code"))
    if len(codes) == 1:
        record["currency_code"] = codes.pop()
    return jsonable(record)


def contact_record(state: BooksState, org_id: str, contact_id: str) -> dict[str, Any]:
    """The contact as the `contact` object of a Books webhook, with the primary person's email on top."""
    contact = state.contact_full(state.contact(org_id, contact_id))
    contact["organization_id"] = org_id
    return jsonable(contact)


def send_webhook(
    url: str,
    module: str,
    record: Mapping[str, Any],
    secret: str | None,
    query: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> WebhookDelivery:
    """POST `{module: record}` as JSON (or `form` as urlencoded), signed over params + raw body."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    params.update(query or {})
    target = urlunsplit(parts._replace(query=urlencode(params)))
    if form is not None:
        # Form payloads: the form fields are signing params; the urlencoded body itself is not appended.
        body = urlencode(dict(form)).encode()
        content_type = "application/x-www-form-urlencoded"
        signature = sign(secret, b"", {**params, **dict(form)}) if secret else None
    else:
        body = dumps({module: dict(record)})
        content_type = "application/json;charset=UTF-8"
        signature = sign(secret, body, params) if secret else None
    headers = {"Content-Type": content_type, "User-Agent": "ZohoBooks-Webhook-Emulator"}
    if signature:
        headers[SIGNATURE_HEADER] = signature
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"webhook URL must be http(s): {url!r}")
    request = urllib.request.Request(target, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - scheme checked above
            return WebhookDelivery(target, body, signature, answer.status, answer.read())
    except urllib.error.HTTPError as err:
        return WebhookDelivery(target, body, signature, err.code, err.read(), str(err))
    except (urllib.error.URLError, OSError) as err:
        return WebhookDelivery(target, body, signature, 0, b"", str(err))
