"""Payments out: a customer payment applied to the mapped Zoho invoice, found again by its reference.

Facts (ZOHO_BOOKS.md "Customer payments", customer-payments.yml): ``POST /customerpayments`` needs
``customer_id``, ``payment_mode`` (check, cash, creditcard, banktransfer, bankremittance, autotransaction,
others), ``amount``, ``date`` and ``invoices [{invoice_id, amount_applied}]``; ``reference_number`` (at most
100 characters) is ours to choose, and ``GET /customerpayments?reference_number=`` finds it: the basis of
the lost-response check, as for invoices.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from integration_core.context import ProviderContext
from integration_core.errors import PermanentError
from integration_core.models import Invoice, Payment, RemotePayment

from .client import ZohoClient
from .payloads import reference_for, to_decimal

log = logging.getLogger(__name__)

PAYMENT_MODES = ("check", "cash", "creditcard", "banktransfer", "bankremittance", "autotransaction", "others")
# The host's free-text method, lower-cased with spaces, dashes and underscores removed → Zoho's mode.
_MODE_ALIASES = {
    "card": "creditcard", "creditcard": "creditcard", "debitcard": "creditcard", "visa": "creditcard",
    "mastercard": "creditcard", "amex": "creditcard",
    "bank": "banktransfer", "banktransfer": "banktransfer", "transfer": "banktransfer", "wire": "banktransfer",
    "ach": "banktransfer", "sepa": "banktransfer", "directdebit": "banktransfer",
    "bankremittance": "bankremittance", "remittance": "bankremittance",
    "cash": "cash", "check": "check", "cheque": "check",
    "auto": "autotransaction", "autotransaction": "autotransaction", "autocharge": "autotransaction",
}


def payment_mode(method: str | None) -> str:
    """Zoho's ``payment_mode`` for the host's ``method`` (``others`` when it names none of them)."""
    if not method:
        return "others"
    key = "".join(ch for ch in method.lower() if ch.isalnum())
    return _MODE_ALIASES.get(key, key if key in PAYMENT_MODES else "others")


def payment_payload(payment: Payment, customer_id: str, remote_invoice_id: str) -> dict[str, Any]:
    description = f"Payment {payment.id}"
    if payment.reference:
        description += f", reference {payment.reference}"
    if payment.method:
        description += f", paid by {payment.method}"
    return {
        "customer_id": customer_id,
        "payment_mode": payment_mode(payment.method),
        "amount": payment.amount,
        "date": payment.paid_on.isoformat(),
        "reference_number": reference_for(payment.id),
        "description": description[:500],
        "invoices": [{"invoice_id": remote_invoice_id, "amount_applied": payment.amount}],
    }


def _remote_invoice(client: ZohoClient, remote_invoice_id: str) -> dict[str, Any]:
    envelope = client.get(f"/invoices/{remote_invoice_id}")
    invoice = envelope.get("invoice")
    if not isinstance(invoice, dict) or not invoice.get("customer_id"):
        raise PermanentError(f"Zoho Books answered no invoice (or no customer) for invoice {remote_invoice_id}")
    return invoice


def push_payment(ctx: ProviderContext, payment: Payment, invoice: Invoice, remote_invoice_id: str) -> RemotePayment:
    """Record the payment on the Zoho invoice; Zoho's refusals become permanent errors that say why."""
    client = ZohoClient(ctx)
    remote = _remote_invoice(client, remote_invoice_id)
    number = remote.get("invoice_number") or remote_invoice_id
    currency = str(remote.get("currency_code") or "").upper()
    if currency and currency != payment.currency:
        raise PermanentError(
            f"payment {payment.id} is in {payment.currency} but Zoho Books invoice {number} is in {currency}; "
            f"a payment is recorded in its invoice's currency", code="currency_mismatch")
    status = str(remote.get("status") or "").lower()
    if status == "void":
        raise PermanentError(f"Zoho Books invoice {number} is void; payment {payment.id} cannot be recorded on it",
                             code="invoice_void")
    try:
        envelope = client.post("/customerpayments", payment_payload(payment, str(remote["customer_id"]),
                                                                     remote_invoice_id))
    except PermanentError as exc:
        balance = to_decimal(remote.get("balance"))
        hint = ""
        if balance is not None and payment.amount > balance:
            hint = f" The payment ({payment.amount}) is more than the invoice's balance ({balance}): an overpayment."
        raise PermanentError(
            f"Zoho Books refused payment {payment.id} of {payment.amount} {payment.currency} on invoice {number}: "
            f"{exc.message}.{hint} Correct the payment in billing (or the invoice in Zoho), then retry the task.",
            code="overpayment" if hint else exc.code) from None
    created = envelope.get("payment") or {}
    if not created.get("payment_id"):
        raise PermanentError("Zoho Books recorded a payment but sent no payment_id")
    return RemotePayment(remote_id=str(created["payment_id"]))


def find_payment(ctx: ProviderContext, payment: Payment, remote_invoice_id: str) -> RemotePayment | None:
    """The Zoho payment carrying our reference (exact match) and applied to this invoice when it says so."""
    client = ZohoClient(ctx)
    ref = reference_for(payment.id)
    envelope = client.get("/customerpayments", {"reference_number": ref, "per_page": 200})
    candidates = [p for p in envelope.get("customerpayments") or envelope.get("payments") or []
                  if isinstance(p, dict) and str(p.get("reference_number") or "") == ref and p.get("payment_id")]
    mine = [p for p in candidates if _applies_to(p, remote_invoice_id) is not False]
    if not mine:
        return None
    if len(mine) > 1:
        log.warning("zoho_books: %d payments carry reference %s; adopting %s", len(mine), ref, mine[0]["payment_id"])
    return RemotePayment(remote_id=str(mine[0]["payment_id"]), adopted=True)


def _applies_to(item: dict[str, Any], remote_invoice_id: str) -> bool | None:
    """True/False when the list row names its invoices, ``None`` when it does not say."""
    invoices = item.get("invoices")
    if isinstance(invoices, list) and invoices:
        return any(isinstance(i, dict) and str(i.get("invoice_id")) == remote_invoice_id for i in invoices)
    return None


def applied_amount(payment: dict[str, Any], invoice_id: str) -> Decimal | None:
    for row in payment.get("invoices") or []:
        if isinstance(row, dict) and str(row.get("invoice_id")) == invoice_id:
            return to_decimal(row.get("amount_applied"))
    return None
