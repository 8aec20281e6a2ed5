"""Value types shared by the core, the providers and the host. Money is always ``Decimal``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any

import attrs

from .billing import TAX_TREATMENTS as TAX_TREATMENTS  # the billing documents are part of the models
from .billing import Address as Address
from .billing import Customer as Customer
from .billing import Invoice as Invoice
from .billing import InvoiceLine as InvoiceLine
from .billing import LineItem as LineItem
from .billing import _currency, _date, _decimal, _nonempty


def _positive_money(instance: Any, attribute: attrs.Attribute[Decimal], value: Decimal) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be greater than zero, got {value}")


def _optional_text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


@attrs.frozen
class Payment:
    """A payment the host recorded against one of its invoices, the unit of outbound payment sync.

    ``id`` is the host's stable payment id: the idempotency key and the remote reference. ``method`` is
    free text (``card``, ``bank_transfer``, ``cash``, ...) that a provider maps onto its payment modes;
    ``reference`` is the host's own reference (a bank or card transaction id), kept for the accountant.
    """

    id: str = attrs.field(validator=_nonempty)
    invoice_id: str = attrs.field(validator=_nonempty)
    amount: Decimal = attrs.field(converter=_decimal, validator=_positive_money)
    currency: str = attrs.field(converter=_currency)
    paid_on: dt.date = attrs.field(converter=_date)
    method: str | None = attrs.field(default=None, converter=_optional_text)
    reference: str | None = attrs.field(default=None, converter=_optional_text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "invoice_id": self.invoice_id,
            "amount": str(self.amount),
            "currency": self.currency,
            "paid_on": self.paid_on.isoformat(),
            "method": self.method,
            "reference": self.reference,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Payment:
        """Build from JSON-like data; raises ``ValueError``/``KeyError``/``TypeError`` on bad input."""
        if not isinstance(data, Mapping):
            raise TypeError("a payment must be a JSON object")
        missing = [k for k in ("id", "invoice_id", "amount", "currency", "paid_on") if data.get(k) in (None, "")]
        if missing:
            raise KeyError(f"a payment needs {', '.join(missing)}")
        if isinstance(data["amount"], float):
            raise TypeError("the payment amount must be a string or an integer, not a float (money is exact)")
        return cls(
            id=str(data["id"]),
            invoice_id=str(data["invoice_id"]),
            amount=data["amount"],
            currency=data["currency"],
            paid_on=data["paid_on"],
            method=data.get("method"),
            reference=data.get("reference"),
        )


@attrs.frozen
class SyncSettings:
    """Which directions sync for a connection; both on by default."""

    invoices_outbound: bool = True
    customers_inbound: bool = True


class ConnectionStatus(StrEnum):
    """Whether a connection pushes and receives: only ``active`` ones do."""

    PENDING_AUTH = "pending_auth"  # created, waiting for the account owner's grant
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"  # the provider refused the grant; tasks wait, nothing is lost
    DISABLED = "disabled"  # an operator stopped it; webhooks answer 404


class TaskStatus(StrEnum):
    """The states of an outbox task (docs/architecture.md shows the transitions)."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    FAILED = "failed"  # permanent error: an operator fixes the cause and retries
    DEAD = "dead"  # transient errors until the attempts ran out
    PAUSED = "paused"  # the connection needs re-authorization


class EventStatus(StrEnum):
    """The states of an inbox event."""

    RECEIVED = "received"
    APPLIED = "applied"
    IGNORED = "ignored"  # nothing to do, with the reason (unknown invoice, sync off, ...)
    FAILED = "failed"  # a host hook failed; a redelivery or an operator retry applies it


@attrs.frozen
class Connection:
    """A (tenant, environment, provider) account. Secrets are never part of this value."""

    id: str
    tenant_id: str
    environment_id: str
    provider: str
    name: str
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    status: ConnectionStatus = attrs.field(default=ConnectionStatus.PENDING_AUTH, converter=ConnectionStatus)
    sync: SyncSettings = attrs.field(factory=SyncSettings)


@attrs.frozen
class SettingField:
    """One field a provider asks for when a connection is created (secret fields go to the vault)."""

    name: str
    help: str
    secret: bool = False
    required: bool = True
    default: str | None = None
    choices: tuple[str, ...] = ()


@attrs.frozen
class ProviderInfo:
    name: str
    title: str
    version: str
    fields: tuple[SettingField, ...] = ()
    oauth: bool = False  # True when a connection is completed by an authorization flow
    # Provider-level (app) settings, set once per provider (``providers configure``); connections fall back to them.
    app_fields: tuple[SettingField, ...] = ()


def _int_map(value: Mapping[str, int]) -> dict[str, int]:
    """A private copy of a cost table, so a caller's later change cannot reach a frozen value."""
    return dict(value)


@attrs.frozen
class RateLimit:
    """A provider account's documented limits; the core keeps every account under them.

    ``requests`` per sliding ``per_seconds``, and at most ``concurrency`` requests in flight. ``costs``:
    the most requests one hook call makes (``{"upsert_contact": 2, "push_invoice": 1}``); a call missing
    here costs ``OutboundSettings.call_costs``. ``metered``: the provider calls ``ctx.note_request()``
    before every request, so the core spends the budget per request as it is made instead of reserving
    each call's cost up front."""

    requests: int
    per_seconds: float
    concurrency: int = 1
    costs: Mapping[str, int] = attrs.field(factory=dict, converter=_int_map, hash=False)
    metered: bool = False


@attrs.frozen
class ConnectResult:
    """What a provider learned when it checked a connection (e.g. the organization's base currency)."""

    account_name: str
    base_currency: str | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class RemoteInvoice:
    """The remote record for a pushed invoice; ``adopted`` when found by reference instead of created."""

    remote_id: str
    remote_number: str | None = None
    adopted: bool = False


@attrs.frozen
class RemotePayment:
    """The remote record for a pushed payment; ``adopted`` when found by reference instead of created."""

    remote_id: str
    adopted: bool = False


@attrs.frozen
class WebhookRequest:
    """An inbound HTTP request as the dispatcher received it (headers lower-cased)."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    form: Mapping[str, list[str]] = attrs.field(factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


# Normalized inbound events. ``dedupe_key`` is stable across re-deliveries of the same remote event.


@attrs.frozen
class InvoicePaid:
    """A payment (the whole invoice, or a part of it) was recorded remotely against an invoice.

    ``remote_payment_id``: the remote payment, when the provider names it; a payment pushed from this
    side (mapped) is then not recorded again (no echo). ``paid_on_source``: where ``paid_on`` came from
    when the payload had no payment date (``"invoice last payment date"``, ``"delivery time"``), so the
    event's record says so; ``None`` when the payload carried the payment's own date.
    """

    dedupe_key: str
    remote_invoice_id: str
    amount: Decimal = attrs.field(converter=_decimal)
    currency: str | None
    paid_on: dt.date = attrs.field(converter=_date)
    kind: str = "invoice_paid"
    remote_payment_id: str | None = None
    paid_on_source: str | None = None


@attrs.frozen
class InvoiceVoided:
    dedupe_key: str
    remote_invoice_id: str
    kind: str = "invoice_voided"


@attrs.frozen
class PaymentReversed:
    """A remote payment was deleted or refunded (wholly or partly); the host takes it back once.

    ``payment_key`` is the key the payment reached the host under (the provider builds it the same way
    as the ``InvoicePaid`` dedupe key; for a payment pushed from this side the core replaces it with the
    host's payment id). ``amount`` is what is taken back; ``reason`` is ``"deleted"`` or ``"refunded"``.
    """

    dedupe_key: str
    remote_invoice_id: str
    remote_payment_id: str
    payment_key: str
    amount: Decimal = attrs.field(converter=_decimal)
    reason: str = "deleted"
    kind: str = "payment_reversed"


@attrs.frozen
class CustomerCreated:
    dedupe_key: str
    remote_customer_id: str
    name: str
    email: str | None
    kind: str = "customer_created"


@attrs.frozen
class Ignored:
    dedupe_key: str
    reason: str
    kind: str = "ignored"


@attrs.frozen
class Notice:
    """A thin event: the provider was told *that* something changed (ids only). The inbox stores it and the outbox
    fetches it later (task kind ``fetch``, the provider's ``fetch_events`` hook), under the rate limit and retries.
    ``data`` is the provider's own JSON description of the notification, given back to ``fetch_events``."""

    dedupe_key: str
    data: dict[str, Any]
    kind: str = "notice"


Event = InvoicePaid | InvoiceVoided | PaymentReversed | CustomerCreated | Ignored | Notice
EVENT_TYPES: dict[str, type] = {
    "notice": Notice,
    "invoice_paid": InvoicePaid,
    "invoice_voided": InvoiceVoided,
    "payment_reversed": PaymentReversed,
    "customer_created": CustomerCreated,
    "ignored": Ignored,
}


def event_to_dict(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.asdict(event).items():
        if isinstance(value, dt.date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        out[key] = value
    return out


def event_from_dict(data: Mapping[str, Any]) -> Event:
    cls = EVENT_TYPES[data["kind"]]
    event: Event = cls(**{k: v for k, v in data.items() if k != "kind"})
    return event
