"""Zoho Books JSON for contacts and invoices, and exact (Decimal) JSON encoding and decoding.

Money never passes through ``float``: amounts are written as JSON numbers from their ``Decimal`` text and
Zoho's answers are parsed with ``parse_float=Decimal``.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from integration_core.models import Customer, Invoice, LineItem

LINE_NAME_MAX = 100
REFERENCE_MAX = 50
CONTACT_NAME_MAX = 200
_REFERENCE_SAFE = re.compile(r"^[A-Za-z0-9._:/#-]+$")


def reference_for(invoice_id: str) -> str:
    """The stable ``reference_number`` that ties a Zoho invoice to our invoice id.

    It is the invoice id itself when that fits Zoho's field (at most 50 plain characters), so an operator
    can read it; otherwise ``ic-`` plus the first 40 hex digits of the id's SHA-256, which is stable across
    retries and processes and practically collision-free.
    """
    if len(invoice_id) <= REFERENCE_MAX and _REFERENCE_SAFE.match(invoice_id):
        return invoice_id
    return "ic-" + hashlib.sha256(invoice_id.encode("utf-8")).hexdigest()[:40]


def money_text(value: Decimal) -> str:
    """Plain decimal notation (never an exponent), as Zoho expects."""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def dumps(data: Any) -> str:
    """JSON with every ``Decimal`` written as a number literal of exactly its decimal text."""
    nonce = uuid.uuid4().hex
    marker = f"\x00{nonce}:"

    def convert(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return marker + money_text(obj)
        if isinstance(obj, Mapping):
            return {k: convert(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [convert(v) for v in obj]
        return obj

    text = json.dumps(convert(data), ensure_ascii=False, separators=(",", ":"))
    escaped = json.dumps(marker)[1:-1]
    return re.sub(re.escape('"' + escaped) + r'(-?[0-9]+(?:\.[0-9]+)?)"', r"\1", text)


def loads(raw: bytes | str) -> Any:
    """Parse Zoho JSON keeping amounts exact."""
    return json.loads(raw, parse_float=Decimal)


def to_decimal(value: Any) -> Decimal | None:
    """An amount from Zoho JSON (number or string), or ``None`` when absent or unreadable."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except ArithmeticError:
        return None
    return result if result.is_finite() else None


def truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def contact_payload(customer: Customer, contact_name: str | None = None, *, currency_id: str | None = None,
                    edition_fields: Mapping[str, Any] | None = None,
                    custom_fields: list[dict[str, str]] | None = None,
                    address: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A customer contact; the email lives in the primary contact person (there is no top-level email)."""
    data: dict[str, Any] = {
        "contact_name": truncate(contact_name or customer.name, CONTACT_NAME_MAX),
        "contact_type": "customer",
        "customer_sub_type": "business" if customer.company_name else "individual",
    }
    if customer.company_name:
        data["company_name"] = customer.company_name
    if customer.email:
        first, _, last = customer.name.strip().partition(" ")
        person: dict[str, Any] = {"first_name": first or customer.name, "email": customer.email,
                                  "is_primary_contact": True}
        if last:
            person["last_name"] = last
        data["contact_persons"] = [person]
    if currency_id:
        data["currency_id"] = currency_id  # one currency per contact, set at creation (ZOHO_BOOKS.md)
    if address:
        data["billing_address"] = dict(address)
    if edition_fields:
        data.update(edition_fields)
    if custom_fields:
        data["custom_fields"] = custom_fields
    return data


def custom_fields(metadata: Mapping[str, str], mapping: Mapping[str, str]) -> list[dict[str, str]]:
    """``custom_fields [{api_name, value}]`` for the metadata keys the connection maps (others stay local)."""
    return [{"api_name": api, "value": metadata[key]} for key, api in mapping.items() if key in metadata]


def disambiguated_names(customer: Customer) -> list[str]:
    """Alternative display names when the plain name is taken by another contact (Zoho names are unique)."""
    names = []
    if customer.email:
        names.append(f"{customer.name} ({customer.email})")
    names.append(f"{customer.name} [{customer.id}]")
    return [truncate(n, CONTACT_NAME_MAX) for n in names]


@attrs.frozen
class CurrencyChoice:
    """A non-base currency as Zoho knows it (what an invoice must send)."""

    currency_id: str
    code: str
    exchange_rate: Decimal


def line_payload(line: LineItem, order: int, *, item_id: str | None = None, tax_id: str | None = None,
                 exemption_id: str | None = None, hsn_or_sac: bool = False) -> dict[str, Any]:
    """One Zoho line: rate and quantity as given (first-round lines: quantity 1, rate = amount)."""
    item: dict[str, Any] = {
        "name": truncate(line.description, LINE_NAME_MAX),
        "description": line.description,
        "rate": line.effective_unit_price,
        "quantity": line.quantity if line.quantity is not None else 1,
        "item_order": order,
    }
    if item_id:
        item["item_id"] = item_id
    if line.discount_percent is not None:
        item["discount"] = f"{money_text(line.discount_percent)}%"  # "10%" or an amount (invoices.yml:2888)
    elif line.discount_amount is not None:
        item["discount"] = line.discount_amount
    if line.unit:
        item["unit"] = line.unit
    if tax_id:
        item["tax_id"] = tax_id
    if exemption_id:
        item["tax_exemption_id"] = exemption_id
    if hsn_or_sac and line.classification_code:
        item["hsn_or_sac"] = line.classification_code  # invoices.yml:2127 (in, ke, za)
    return item


def invoice_payload(
    invoice: Invoice,
    contact_id: str,
    *,
    currency: CurrencyChoice | None = None,
    use_local_number: bool = True,
    lines: list[dict[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The invoice; ``lines`` as resolved by the caller (items, taxes), else one plain line per local line."""
    if lines is None:
        lines = [line_payload(line, order) for order, line in enumerate(invoice.lines, start=1)]
    data: dict[str, Any] = {
        "customer_id": contact_id,
        "reference_number": reference_for(invoice.id),
        "date": invoice.issue_date.isoformat(),
        "line_items": lines,
    }
    if use_local_number:
        data["invoice_number"] = invoice.number
    if invoice.due_date is not None:
        data["due_date"] = invoice.due_date.isoformat()
    if invoice.notes:
        data["notes"] = invoice.notes
    if currency is not None:
        data["currency_id"] = currency.currency_id
        data["exchange_rate"] = currency.exchange_rate
    if invoice.tax_inclusive:
        data["is_inclusive_tax"] = True  # invoices.yml:2821
    if invoice.discount_percent is not None or invoice.discount_amount is not None:
        # one discount on the whole invoice, before tax (invoices.yml:2808-2818)
        data["discount"] = (f"{money_text(invoice.discount_percent)}%" if invoice.discount_percent is not None
                            else invoice.discount_amount)
        data["is_discount_before_tax"] = True
        data["discount_type"] = "entity_level"
    if extra:
        data.update(extra)
    return data
