"""Customer payments beyond create/get: list with filters, delete, refund, and an invoice's payments.

Sources: customer-payments.yml (``GET /customerpayments`` with ``reference_number`` and its
``_startswith`` / ``_contains`` variants, ``DELETE /customerpayments/{payment_id}``,
``POST /customerpayments/{customer_payment_id}/refunds``, the payment record with ``amount_refunded``),
invoices.yml (an invoice's ``payments``: ``payment_id``, ``payment_number``, ``invoice_payment_id``,
``payment_mode``, ``amount``, ``date``, ``reference_number``), also answered by
``GET /invoices/{invoice_id}/payments`` (invoices.yml list_invoice_payments: the same rows with ``invoice_id``).

Simplifications (uncertain against the real service, kept simple on purpose): a refund here takes the
refunded amount off the payment's application to its (first) invoice, so that invoice's balance grows
again; Zoho documents refunds for ``autotransaction`` payments only and we allow every mode.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from .errors import invalid, mandatory, not_found
from .httpio import Request, Response
from .state import CENT, BooksState, _filter_text, as_id, money, now_stamp

LIST_KEYS = (
    "payment_id", "payment_number", "payment_mode", "amount", "amount_refunded", "date", "status",
    "reference_number", "description", "customer_id", "customer_name", "email", "currency_code",
    "created_time", "last_modified_time",
)


def list_payments(state: BooksState, org_id: str, filters: dict[str, str]) -> list[dict[str, Any]]:
    with state.lock:
        rows = [{k: copy.deepcopy(p[k]) for k in LIST_KEYS} for p in state.org(org_id).payments.values()]
    rows = _filter_text(rows, filters, ("reference_number", "customer_name", "payment_mode"))
    if filters.get("customer_id"):
        rows = [r for r in rows if r["customer_id"] == filters["customer_id"]]
    return list(reversed(rows))


def _unapply(state: BooksState, org_id: str, payment: dict[str, Any], amount: Decimal | None) -> None:
    """Take ``amount`` (everything when ``None``) off the payment's invoice applications."""
    org = state.org(org_id)
    customer = org.contacts.get(payment["customer_id"])
    for row in payment["invoices"]:
        inv = org.invoices.get(row["invoice_id"])
        take = row["amount_applied"] if amount is None else min(amount, row["amount_applied"])
        if inv is None or take <= 0:
            continue
        inv["payment_made"] -= take
        inv["balance"] += take
        inv["status"] = "sent" if inv["payment_made"] == 0 else "partially_paid"
        remaining = [p for p in org.payments.values() if p is not payment
                     and any(r["invoice_id"] == inv["invoice_id"] for r in p["invoices"])]
        inv["last_payment_date"] = max((p["date"] for p in remaining), default="")
        inv["last_modified_time"] = now_stamp(org.time_offset)
        row["amount_applied"] -= take
        if customer is not None:
            customer["outstanding_receivable_amount"] += take
        if amount is not None:
            amount -= take
            if amount <= 0:
                break


def delete_payment(state: BooksState, org_id: str, payment_id: str) -> dict[str, Any]:
    """Delete a payment: its invoices get their balance back. Returns the payment as it was."""
    with state.lock:
        org = state.org(org_id)
        payment = org.payments.get(as_id(payment_id))
        if payment is None:
            raise not_found("Payment")
        before = copy.deepcopy(payment)
        _unapply(state, org_id, payment, None)
        del org.payments[payment["payment_id"]]
        return before


def refund_payment(state: BooksState, org_id: str, payment_id: str, data: dict[str, Any]) -> dict[str, Any]:
    with state.lock:
        org = state.org(org_id)
        payment = org.payments.get(as_id(payment_id))
        if payment is None:
            raise not_found("Payment")
        if data.get("amount") in (None, ""):
            raise mandatory("amount")
        amount = money(data["amount"], "amount").quantize(CENT)
        if amount <= 0 or amount > payment["amount"] - payment["amount_refunded"]:
            raise invalid("amount", "The refund amount exceeds the amount that can be refunded.")
        _unapply(state, org_id, payment, amount)
        payment["amount_refunded"] += amount
        payment["last_modified_time"] = now_stamp(org.time_offset)
        refund = {
            "payment_refund_id": state.new_id(), "payment_id": payment["payment_id"], "amount": amount,
            "date": str(data.get("date") or payment["date"]), "refund_mode": str(data.get("refund_mode") or ""),
            "reference_number": str(data.get("reference_number") or ""),
        }
        return refund


def invoice_payments(state: BooksState, org_id: str, invoice_id: str) -> list[dict[str, Any]]:
    """An invoice's ``payments`` as its record lists them: the amount is the part applied to it."""
    with state.lock:
        rows = []
        for payment in state.org(org_id).payments.values():
            for app in payment["invoices"]:
                if app["invoice_id"] == invoice_id and app["amount_applied"] > 0:
                    rows.append({
                        "payment_id": payment["payment_id"], "payment_number": payment["payment_number"],
                        "invoice_payment_id": app.setdefault("invoice_payment_id", state.new_id()),
                        "payment_mode": payment["payment_mode"], "description": payment["description"],
                        "date": payment["date"], "reference_number": payment["reference_number"],
                        "amount": app["amount_applied"], "bank_charges": payment["bank_charges"],
                    })
        return rows


def register_routes(api: Any) -> None:
    """The routes of this module on the emulator's ``BooksApi``."""
    state: BooksState = api.state

    def list_route(req: Request, org_id: str, params: dict[str, str]) -> Response:
        rows = list_payments(state, org_id, req.query)
        try:
            page, per_page = int(req.query.get("page", "1")), max(1, min(int(req.query.get("per_page", "200")), 200))
        except ValueError:
            raise invalid("page") from None
        start = (max(page, 1) - 1) * per_page
        ctx = {"page": page, "per_page": per_page, "has_more_page": len(rows) > start + per_page}
        return api._ok("customerpayments", rows[start:start + per_page], page_context=ctx)

    def delete_route(req: Request, org_id: str, params: dict[str, str]) -> Response:
        deleted = delete_payment(state, org_id, params["payment_id"])
        if api.on_payment is not None:
            api.on_payment(org_id, "deleted", deleted)
        return Response.json(200, {"code": 0, "message": "The payment has been deleted."})

    def refund_route(req: Request, org_id: str, params: dict[str, str]) -> Response:
        refund = refund_payment(state, org_id, params["payment_id"], req.payload())
        if api.on_payment is not None:
            api.on_payment(org_id, "refunded", state.payment(org_id, params["payment_id"]))
        return api._ok("payment_refund", refund, "The refund information for this payment has been saved.", 201)

    def invoice_payments_route(req: Request, org_id: str, params: dict[str, str]) -> Response:
        state.invoice(org_id, params["invoice_id"])  # 1002 "Invoice does not exist." for an unknown id
        rows = [dict(row, invoice_id=params["invoice_id"]) for row in invoice_payments(state, org_id,
                                                                                      params["invoice_id"])]
        return api._ok("payments", rows)

    api._route("GET", "/invoices/{invoice_id}/payments", invoice_payments_route, "invoices", "READ")
    api._route("GET", "/customerpayments", list_route, "customerpayments", "READ")
    api._route("DELETE", "/customerpayments/{payment_id}", delete_route, "customerpayments", "DELETE")
    api._route("POST", "/customerpayments/{payment_id}/refunds", refund_route, "customerpayments", "CREATE")
