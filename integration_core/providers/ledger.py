"""An in-memory accounting ledger provider: the stub that hosts and the core are tested with.

The "remote system" is a process-local :class:`Ledger` per account name (``LEDGERS``), standing in for
a provider's servers; the plugin itself keeps no state. Webhooks are signed with HMAC-SHA256 of the raw
body in ``X-Ledger-Signature`` and carry JSON ``{"type": ..., "data": {...}}``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import threading
from decimal import Decimal
from typing import Any

import attrs

from ..context import ProviderContext
from ..errors import ConfigurationError, PermanentError, WebhookRejected
from ..hookspecs import hookimpl
from ..models import (
    ConnectResult,
    Customer,
    CustomerCreated,
    Event,
    Ignored,
    Invoice,
    InvoicePaid,
    InvoiceVoided,
    ProviderInfo,
    RateLimit,
    RemoteInvoice,
    SettingField,
    WebhookRequest,
)

SIGNATURE_HEADER = "X-Ledger-Signature"


@attrs.define
class LedgerContact:
    id: str
    name: str
    email: str | None
    kind: str = "customer"


@attrs.define
class LedgerInvoice:
    id: str
    number: str
    reference: str
    contact_id: str
    currency: str
    total: Decimal
    lines: list[tuple[str, Decimal]]
    status: str = "open"


class Ledger:
    """One remote account. Thread-safe; counts calls so tests can assert API cost."""

    def __init__(self, name: str, base_currency: str = "USD") -> None:
        self.name = name
        self.base_currency = base_currency
        self.currencies = {base_currency}
        self.contacts: dict[str, LedgerContact] = {}
        self.invoices: dict[str, LedgerInvoice] = {}
        self.calls: dict[str, int] = {}
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()

    def _count(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def find_contact(self, email: str | None) -> LedgerContact | None:
        with self._lock:
            self._count("find_contact")
            return next(
                (c for c in self.contacts.values() if email and c.email == email and c.kind == "customer"), None
            )

    def create_contact(self, name: str, email: str | None, kind: str = "customer") -> LedgerContact:
        with self._lock:
            self._count("create_contact")
            contact = LedgerContact(self.next_id("C"), name, email, kind)
            self.contacts[contact.id] = contact
            return contact

    def create_invoice(self, invoice: Invoice, contact_id: str) -> LedgerInvoice:
        with self._lock:
            self._count("create_invoice")
            if contact_id not in self.contacts:
                raise PermanentError(f"contact {contact_id} does not exist")
            if invoice.currency not in self.currencies:
                raise PermanentError(
                    f"currency {invoice.currency} is not enabled in ledger {self.name}; add it, then retry"
                )
            record = LedgerInvoice(
                id=self.next_id("I"),
                number=invoice.number,
                reference=invoice.id,
                contact_id=contact_id,
                currency=invoice.currency,
                total=invoice.total,
                lines=[(line.description, line.amount) for line in invoice.lines],
            )
            self.invoices[record.id] = record
            return record

    def find_invoice(self, reference: str) -> LedgerInvoice | None:
        with self._lock:
            self._count("find_invoice")
            return next((i for i in self.invoices.values() if i.reference == reference), None)

    def invoices_by_reference(self, reference: str) -> list[LedgerInvoice]:
        with self._lock:
            return [i for i in self.invoices.values() if i.reference == reference]

    # --- events the remote side emits -------------------------------------------------------------

    def webhook(self, secret: str, event_type: str, data: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """A signed webhook body and headers, as the ledger would deliver it."""
        body = json.dumps({"type": event_type, "data": data}, sort_keys=True).encode()
        return body, {SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"}

    def pay(self, secret: str, invoice_id: str, *, paid_on: str = "2026-01-15") -> tuple[bytes, dict[str, str]]:
        with self._lock:
            inv = self.invoices[invoice_id]
            inv.status = "paid"
            payment_id = self.next_id("P")
        data = {
            "invoice_id": inv.id,
            "amount": str(inv.total),
            "currency": inv.currency,
            "paid_on": paid_on,
            "payment_id": payment_id,
        }
        return self.webhook(secret, "invoice.paid", data)

    def void(self, secret: str, invoice_id: str) -> tuple[bytes, dict[str, str]]:
        with self._lock:
            self.invoices[invoice_id].status = "void"
        return self.webhook(secret, "invoice.voided", {"invoice_id": invoice_id})

    def new_contact(self, secret: str, name: str, email: str | None, kind: str = "customer") -> tuple[bytes, dict]:
        contact = self.create_contact(name, email, kind)
        return self.webhook(
            secret, "contact.created", {"contact_id": contact.id, "name": name, "email": email, "kind": kind}
        )


LEDGERS: dict[str, Ledger] = {}
_LEDGERS_LOCK = threading.Lock()


def ledger(name: str, base_currency: str = "USD") -> Ledger:
    """The remote account called ``name`` (created on first use)."""
    with _LEDGERS_LOCK:
        if name not in LEDGERS:
            LEDGERS[name] = Ledger(name, base_currency)
        return LEDGERS[name]


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _ledger_of(ctx: ProviderContext) -> Ledger:
    return ledger(str(ctx.settings["account"]))


# --- hooks -----------------------------------------------------------------------------------------


@hookimpl
def provider_info() -> ProviderInfo:
    return ProviderInfo(
        name="ledger",
        title="In-memory ledger (stub)",
        version="0.1.0",
        fields=(
            SettingField("account", "name of the in-memory ledger account"),
            SettingField("api_key", "API key (any value; stored encrypted)", secret=True),
            SettingField("webhook_secret", "shared secret that signs webhooks", secret=True),
        ),
    )


@hookimpl
def validate_settings(values: dict[str, str]) -> dict[str, str]:
    secret = values.get("webhook_secret") or ""
    if secret and len(secret) < 8:
        raise ConfigurationError("webhook_secret must have at least 8 characters")
    return values


@hookimpl
def rate_limit(ctx: ProviderContext) -> RateLimit:
    return RateLimit(requests=int(ctx.settings.get("rate_limit", 10_000)), per_seconds=60, concurrency=4)


@hookimpl
def authorization_url(ctx: ProviderContext, redirect_uri: str, state: str) -> str | None:
    return None


@hookimpl
def connect(ctx: ProviderContext) -> ConnectResult:
    book = _ledger_of(ctx)
    return ConnectResult(account_name=book.name, base_currency=book.base_currency)


@hookimpl
def upsert_contact(ctx: ProviderContext, customer: Customer) -> str:
    book = _ledger_of(ctx)
    found = book.find_contact(customer.email)
    if found is not None:
        return found.id
    return book.create_contact(customer.name, customer.email).id


@hookimpl
def push_invoice(ctx: ProviderContext, invoice: Invoice, remote_contact_id: str) -> RemoteInvoice:
    record = _ledger_of(ctx).create_invoice(invoice, remote_contact_id)
    return RemoteInvoice(remote_id=record.id, remote_number=record.number)


@hookimpl
def find_invoice(ctx: ProviderContext, invoice: Invoice) -> RemoteInvoice | None:
    record = _ledger_of(ctx).find_invoice(invoice.id)
    return None if record is None else RemoteInvoice(remote_id=record.id, remote_number=record.number, adopted=True)


@hookimpl
def void_remote_invoice(ctx: ProviderContext, remote_invoice_id: str) -> None:
    book = _ledger_of(ctx)
    with book._lock:
        book.invoices[remote_invoice_id].status = "void"


@hookimpl
def verify_webhook(ctx: ProviderContext, request: WebhookRequest) -> bool:
    secret = ctx.secrets.get("webhook_secret")
    given = request.header(SIGNATURE_HEADER)
    if not secret or not given:
        return False
    return hmac.compare_digest(sign(secret, request.body), given)


@hookimpl
def parse_event(ctx: ProviderContext, request: WebhookRequest) -> list[Event]:
    try:
        doc = json.loads(request.body)
        kind, data = doc["type"], doc["data"]
        if kind == "invoice.paid":
            return [
                InvoicePaid(
                    dedupe_key=f"payment:{data['payment_id']}",
                    remote_invoice_id=str(data["invoice_id"]),
                    amount=str(data["amount"]),
                    currency=data.get("currency"),
                    paid_on=dt.date.fromisoformat(data["paid_on"]),
                )
            ]
        if kind == "invoice.voided":
            return [InvoiceVoided(dedupe_key=f"void:{data['invoice_id']}", remote_invoice_id=str(data["invoice_id"]))]
        if kind == "contact.created":
            if data.get("kind", "customer") != "customer":
                return [Ignored(dedupe_key=f"contact:{data['contact_id']}", reason=f"contact is a {data['kind']}")]
            return [
                CustomerCreated(
                    dedupe_key=f"contact:{data['contact_id']}",
                    remote_customer_id=str(data["contact_id"]),
                    name=data["name"],
                    email=data.get("email"),
                )
            ]
        return [Ignored(dedupe_key=f"other:{hashlib.sha256(request.body).hexdigest()}", reason=f"event {kind}")]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WebhookRejected(f"malformed ledger webhook: {exc.__class__.__name__}", status=400) from None
