"""Zoho webhook signatures and payloads.

Signature (``X-Zoho-Webhook-Signature``): lowercase hex HMAC-SHA256 keyed with the connection's webhook
secret over the query-string and form parameters (URL-decoded, sorted by key, each written as key then
value with no separators) followed by the raw body exactly as received.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from integration_core.errors import WebhookRejected
from integration_core.models import CustomerCreated, Event, Ignored, InvoicePaid, InvoiceVoided, WebhookRequest

from . import payment_events
from .payloads import to_decimal
from .payment_events import PAYMENT_MODULES

SIGNATURE_HEADER = "X-Zoho-Webhook-Signature"
_SECRET_RE = re.compile(r"^[A-Za-z0-9]{12,50}$")


def webhook_secret_problem(secret: str | None) -> str | None:
    """Why ``secret`` is not a valid Zoho webhook secret (12-50 letters/digits), or ``None`` when it is."""
    if not secret:
        return "webhook_secret is required: type the same 12-50 character secret into the Zoho webhook"
    if not _SECRET_RE.match(secret):
        return (f"webhook_secret must be 12-50 characters, letters and digits only (Zoho's rule); "
                f"the one given has {len(secret)} characters"
                + ("" if secret.isalnum() else " and contains other characters"))
    return None


def _params(query: Mapping[str, Iterable[str]], form: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    pairs = [(k, v) for source in (query, form) for k, values in source.items() for v in values]
    return sorted(pairs, key=lambda kv: kv[0])  # stable: repeated keys keep their order


def signature_message(query: Mapping[str, Iterable[str]], form: Mapping[str, Iterable[str]], body: bytes) -> bytes:
    """The exact bytes Zoho signs."""
    prefix = "".join(k + v for k, v in _params(query, form))
    return prefix.encode("utf-8") + body


def compute_signature(secret: str, query: Mapping[str, Iterable[str]], form: Mapping[str, Iterable[str]],
                      body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), signature_message(query, form, body), hashlib.sha256).hexdigest()


def _form_of(request: WebhookRequest) -> tuple[Mapping[str, Iterable[str]], bool]:
    """The form parameters (parsed here when the dispatcher left them out) and whether the body is a form."""
    is_form = (request.header("content-type") or "").lower().startswith("application/x-www-form-urlencoded")
    if request.form or not is_form:
        return request.form, is_form
    try:
        return parse_qs(request.body.decode("utf-8"), keep_blank_values=True), True
    except UnicodeDecodeError:
        return {}, True


def verify(secret: str | None, request: WebhookRequest) -> bool:
    """Constant-time check; a missing secret or header is simply not authentic.

    For a form-encoded delivery the form fields already are signed parameters; Zoho's description appends
    the raw body too while some senders do not, so both forms are accepted (each needs the secret).
    """
    given = request.header(SIGNATURE_HEADER)
    if not secret or not given:
        return False
    try:
        given_bytes = given.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    form, is_form = _form_of(request)
    bodies = [request.body, b""] if is_form and request.body else [request.body]
    ok = False
    for body in bodies:
        expected = compute_signature(secret, request.query, form, body).encode("ascii")
        ok = hmac.compare_digest(expected, given_bytes) or ok
    return ok


# --- parsing ------------------------------------------------------------------------------------------


def _load_json(text: str | bytes) -> Any:
    try:
        return json.loads(text, parse_float=str, parse_int=str)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejected("webhook body is not valid JSON", status=400) from exc


def _document(request: WebhookRequest) -> Any:
    """The JSON document of a delivery: a JSON body, a ``JSONString`` form field, or a module form field."""
    form = request.form
    for key in ("JSONString", "jsonstring", "payload"):
        if form.get(key):
            return _load_json(next(iter(form[key])))
    for key in ("invoice", "contact", *PAYMENT_MODULES):
        if form.get(key):
            return {key: _load_json(next(iter(form[key])))}
    body = request.body.strip()
    if not body:
        raise WebhookRejected("webhook body is empty", status=400)
    content_type = (request.header("content-type") or "").lower()
    if content_type.startswith("application/x-www-form-urlencoded") and not body.startswith((b"{", b"[")):
        parsed = parse_qs(body.decode("utf-8", "replace"))
        if parsed.get("JSONString"):
            return _load_json(parsed["JSONString"][0])
        raise WebhookRejected("form-encoded webhook has no JSONString field", status=400)
    return _load_json(body)


def _id(value: Any) -> str | None:
    """Zoho ids are strings in the API but may be numbers in webhooks."""
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


def _body_key(request: WebhookRequest) -> str:
    return hashlib.sha256(request.body).hexdigest()[:32]


def parse(request: WebhookRequest, organization_id: str | None = None) -> list[Event]:
    """Normalized events of one delivery (Zoho sends one record per delivery).

    ``organization_id``: the connection's organization; a record naming another one is refused (400)."""
    doc = _document(request)
    if not isinstance(doc, dict):
        raise WebhookRejected("webhook JSON must be an object", status=400)
    payment = next((doc[k] for k in PAYMENT_MODULES if isinstance(doc.get(k), dict)), None)
    record = doc.get("invoice") if isinstance(doc.get("invoice"), dict) else None
    record = record or (doc.get("contact") if isinstance(doc.get("contact"), dict) else None) or payment or doc
    _check_organization(record, doc, organization_id)
    if payment is not None:
        form, _ = _form_of(request)
        return payment_events.parse_payment(payment, deleted=payment_events.is_deleted(request.query, form))
    if isinstance(doc.get("invoice"), dict):
        return parse_invoice_events(doc["invoice"])
    if isinstance(doc.get("contact"), dict):
        return [parse_contact(doc["contact"])]
    if "invoice_id" in doc:
        return parse_invoice_events(doc)
    if "contact_id" in doc:
        return [parse_contact(doc)]
    modules = ", ".join(sorted(str(k) for k in doc)[:5]) or "nothing"
    return [Ignored(dedupe_key=f"unknown:{_body_key(request)}",
                    reason=f"not an invoice, payment or contact webhook (keys: {modules})")]


def _check_organization(record: Mapping[str, Any], doc: Mapping[str, Any], organization_id: str | None) -> None:
    """Where a payload names its organization (ZOHO_BOOKS.md: some modules do), it must be the connection's."""
    named = _id(record.get("organization_id")) or _id(doc.get("organization_id"))
    if organization_id and named and named != str(organization_id):
        raise WebhookRejected(
            f"webhook names organization {named}, but this connection is for organization {organization_id}",
            status=400)


def parse_invoice_events(data: Mapping[str, Any]) -> list[Event]:
    """An invoice record: its listed ``payments`` one by one when it is (partly) paid, else as below."""
    invoice_id = _id(data.get("invoice_id"))
    status = str(data.get("status") or "").strip().lower()
    if invoice_id is not None and status in ("paid", "partially_paid"):
        events = payment_events.invoice_payments(data, invoice_id)
        if events is not None:
            return events
    return [parse_invoice(data)]


def parse_invoice(data: Mapping[str, Any]) -> Event:
    """Paid → InvoicePaid (whole total), void → InvoiceVoided, anything else → Ignored.

    ``partially_paid`` is Ignored: a webhook carries the invoice's state, not the payment, so the newly
    paid part cannot be told apart from earlier parts without remembering them. When the invoice
    becomes ``paid`` its total is recorded once.
    """
    invoice_id = _id(data.get("invoice_id"))
    if invoice_id is None:
        raise WebhookRejected("invoice webhook has no invoice_id", status=400)
    status = str(data.get("status") or "").strip().lower()
    if status == "paid":
        amount = to_decimal(data.get("total"))
        if amount is None:
            amount = to_decimal(data.get("payment_made"))
        if amount is None or amount < 0:
            raise WebhookRejected(f"paid invoice {invoice_id} webhook has no valid total", status=400)
        # The invoice's last payment date, else the delivery time; the event says which (paid_on_source).
        paid_on, source = payment_events.paid_on(None, data.get("last_payment_date"))
        currency = str(data.get("currency_code") or "").strip().upper() or None
        payment_made = to_decimal(data.get("payment_made"))
        key_amount = payment_made if payment_made is not None else amount
        return InvoicePaid(
            dedupe_key=f"invoice:{invoice_id}:paid:{data.get('last_payment_date') or 'undated'}:"
                       f"{key_amount.normalize():f}",
            remote_invoice_id=invoice_id,
            amount=amount,
            currency=currency if len(currency or "") == 3 and (currency or "").isascii()
            and (currency or "").isalpha() else None,
            paid_on=paid_on,
            paid_on_source=None if source == "invoice last payment date" else source,
        )
    if status == "void":
        return InvoiceVoided(dedupe_key=f"invoice:{invoice_id}:void", remote_invoice_id=invoice_id)
    version = str(data.get("last_modified_time") or "")
    if status == "partially_paid":
        reason = "partially paid; full payment not yet received"
        version = f"{data.get('last_payment_date') or ''}:{data.get('payment_made') or version}"
    else:
        reason = f"invoice status {status or 'unknown'!r} needs no action"
    return Ignored(dedupe_key=f"invoice:{invoice_id}:{status or 'unknown'}:{version}", reason=reason)


def _contact_email(data: Mapping[str, Any]) -> str | None:
    email = str(data.get("email") or "").strip()
    if email:
        return email
    persons = data.get("contact_persons")
    if isinstance(persons, list):
        dicts = [p for p in persons if isinstance(p, dict)]
        for person in sorted(dicts, key=lambda p: not _truthy(p.get("is_primary_contact"))):
            candidate = str(person.get("email") or "").strip()
            if candidate and (_truthy(person.get("is_primary_contact")) or len(dicts) == 1):
                return candidate
    return None


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


def parse_contact(data: Mapping[str, Any]) -> Event:
    """A customer → CustomerCreated; vendors and nameless contacts are Ignored."""
    contact_id = _id(data.get("contact_id"))
    if contact_id is None:
        raise WebhookRejected("contact webhook has no contact_id", status=400)
    contact_type = str(data.get("contact_type") or "customer").strip().lower()
    if contact_type != "customer":
        reason = f"contact {contact_id} is a {contact_type}, not a customer"
        return Ignored(dedupe_key=f"contact:{contact_id}:{contact_type}", reason=reason)
    name = str(data.get("contact_name") or data.get("company_name") or "").strip()
    if not name:
        return Ignored(dedupe_key=f"contact:{contact_id}:nameless", reason="customer contact has no name")
    return CustomerCreated(
        dedupe_key=f"contact:{contact_id}:created",
        remote_customer_id=contact_id,
        name=name,
        email=_contact_email(data),
    )
