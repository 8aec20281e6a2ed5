"""Payments out: a QuickBooks Payment linked to the mapped invoice (QUICKBOOKS.md §4 Payment, §5).

The body is ``CustomerRef`` (the invoice's customer), ``TotalAmt``, one ``Line`` with the amount and
``LinkedTxn [{TxnId: <invoice Id>, TxnType: "Invoice"}]``, ``TxnDate``, the currency and its rate (§5: a
payment is in its customer's and invoice's currency), ``PaymentRefNum`` (the host's reference, 21
characters) and our stable reference in ``PrivateNote``. Each logical write carries the same ``requestid``
(§2), so a retry after a lost answer is answered with the original payment; ``find_payment`` looks it up by
its customer and date, confirmed by ``PrivateNote`` (not queryable itself).
"""

from __future__ import annotations

from typing import Any

from integration_core.context import ProviderContext
from integration_core.errors import PermanentError
from integration_core.models import Invoice, Payment, RemotePayment

from . import reversals
from .client import QBClient, QBOFault, quote, request_id
from .operations import BUSINESS_VALIDATION, company_facts, exchange_rate

REFERENCE_PREFIX = "integration-core payment "
PAYMENT_REF_MAX = 21


def reference_for(payment_id: str) -> str:
    return REFERENCE_PREFIX + payment_id


def _invoice(client: QBClient, remote_invoice_id: str) -> dict[str, Any]:
    record = client.get(f"/invoice/{remote_invoice_id}").get("Invoice") or {}
    if not record.get("CustomerRef"):
        raise PermanentError(f"QuickBooks answered no invoice (or no customer) for invoice {remote_invoice_id}")
    return dict(record)


def payment_body(payment: Payment, invoice: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "CustomerRef": {"value": str(invoice["CustomerRef"]["value"])},
        "TotalAmt": payment.amount,
        "TxnDate": payment.paid_on.isoformat(),
        "Line": [{"Amount": payment.amount, "LinkedTxn": [{"TxnId": str(invoice["Id"]), "TxnType": "Invoice"}]}],
        "CurrencyRef": {"value": payment.currency},
        "PrivateNote": reference_for(payment.id),
    }
    ref = payment.reference or payment.method
    if ref:
        body["PaymentRefNum"] = ref[:PAYMENT_REF_MAX]
    return body


def push_payment(ctx: ProviderContext, payment: Payment, invoice: Invoice, remote_invoice_id: str) -> RemotePayment:
    client = QBClient(ctx)
    record = _invoice(client, remote_invoice_id)
    number = record.get("DocNumber") or remote_invoice_id
    currency = str((record.get("CurrencyRef") or {}).get("value") or "").upper()
    if currency and currency != payment.currency:
        raise PermanentError(
            f"payment {payment.id} is in {payment.currency} but QuickBooks invoice {number} is in {currency}; "
            f"a payment is in its invoice's currency (§5)", code="currency_mismatch")
    body = payment_body(payment, record)
    rid = request_id("payment", payment.id, body)
    if payment.currency != company_facts(client)["home_currency"]:
        body["ExchangeRate"] = exchange_rate(client, payment.currency, payment.paid_on.isoformat())
    try:
        created = client.post("/payment", body, request_id=rid).get("Payment") or {}
    except QBOFault as exc:
        if str(exc.code) != BUSINESS_VALIDATION:
            raise
        raise PermanentError(
            f"QuickBooks refused payment {payment.id} of {payment.amount} {payment.currency} on invoice {number}: "
            f"{exc.detail or exc.message} (an overpayment, a void invoice, or another customer or currency). "
            f"Correct the payment in billing (or the invoice in QuickBooks), then retry the task.",
            code=BUSINESS_VALIDATION) from None
    if not created.get("Id"):
        raise PermanentError("QuickBooks recorded a payment but sent no Id")
    # remembered for a void or delete in QuickBooks, which no longer tells the share (quickbooks.reversals)
    reversals.remember(ctx, str(created["Id"]), [(str(remote_invoice_id), payment.amount)])
    return RemotePayment(remote_id=str(created["Id"]))


def find_payment(ctx: ProviderContext, payment: Payment, remote_invoice_id: str) -> RemotePayment | None:
    client = QBClient(ctx)
    record = _invoice(client, remote_invoice_id)
    customer = str(record["CustomerRef"]["value"])
    found = client.query(
        f"SELECT * FROM Payment WHERE CustomerRef = {quote(customer)} AND TxnDate = '{payment.paid_on.isoformat()}'"
    ).get("Payment") or []
    for item in found:
        if str(item.get("PrivateNote") or "").strip() == reference_for(payment.id) and item.get("Id"):
            reversals.remember(ctx, str(item["Id"]), [(str(remote_invoice_id), payment.amount)])
            return RemotePayment(remote_id=str(item["Id"]), adopted=True)
    return None
