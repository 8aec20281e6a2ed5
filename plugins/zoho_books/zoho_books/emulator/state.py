"""In-memory Books data per organization plus the business rules Zoho enforces on it.

Everything lives behind one re-entrant lock: the emulator is a test double, simplicity beats throughput.
Money is kept as Decimal and only turned into JSON numbers at the HTTP edge.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from . import changes, editions
from .catalog import CatalogMixin
from .errors import (
    ALREADY_EXISTS,
    CONTACT_NAME_EXISTS,
    TOO_LONG,
    ZohoError,
    invalid,
    mandatory,
    not_found,
)
from .totals import LineTax, compute, discount_of, precision_of, rounded

CENT = Decimal("0.01")
PAYMENT_MODES = ("check", "cash", "creditcard", "banktransfer", "bankremittance", "autotransaction", "others")

# Plan -> (daily request limit, concurrent requests in flight), from Zoho's published limits.
PLANS: dict[str, tuple[int, int]] = {
    "free": (1000, 5),
    "standard": (2000, 10),
    "professional": (5000, 10),
    "premium": (10000, 10),
    "elite": (10000, 10),
    "ultimate": (10000, 10),
}

CURRENCY_INFO: dict[str, tuple[str, str]] = {
    "USD": ("US Dollar", "$"),
    "EUR": ("Euro", "€"),
    "GBP": ("Pound Sterling", "£"),
    "INR": ("Indian Rupee", "₹"),
    "AUD": ("Australian Dollar", "$"),
    "CAD": ("Canadian Dollar", "$"),
    "JPY": ("Japanese Yen", "¥"),
    "CHF": ("Swiss Franc", "CHF"),
    "SAR": ("Saudi Riyal", "SAR"),
    "CNY": ("Yuan Renminbi", "¥"),
}


def money(value: Any, fieldname: str) -> Decimal:
    """Parse a JSON number or numeric string into Decimal, rejecting bools, NaN and garbage."""
    if isinstance(value, bool) or value is None:
        raise invalid(fieldname)
    try:
        dec = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise invalid(fieldname) from None
    if not dec.is_finite():
        raise invalid(fieldname)
    return dec


def as_id(value: Any) -> str:
    """Zoho ids are numeric strings; clients may send them as JSON numbers."""
    if isinstance(value, bool):
        return ""
    return str(value).strip() if value is not None else ""


def _parse_date(value: Any, fieldname: str) -> str:
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise invalid(fieldname, "Use the format yyyy-mm-dd.") from None


def now_stamp(offset: str = "+0000") -> str:
    """Timestamp in Zoho's `2013-11-18T02:17:40-0800` style, in the organization's offset (emulator/changes.py)."""
    return changes.now_stamp(offset)


@dataclass
class Organization:
    org_id: str
    name: str
    currency_code: str
    plan: str
    daily_limit: int | None = None
    max_concurrent: int | None = None
    created: str = field(default_factory=lambda: date.today().isoformat())
    currencies: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoice_seq: int = 0
    # Country edition and its settings: Zoho's API exposes no edition code (organizations.yml), so the
    # emulator holds it per organization (ZOHO_EDITIONS.md §0). ``state_code``: the organization's state
    # (India) or emirate (GCC), the last fallback of the place of supply (ZOHO_EDITIONS.md §5).
    edition: str = "us"
    state_code: str = ""
    country: str = ""
    # Undocumented behaviours, as settings (ZOHO_EDITIONS.md §6): a field of another edition is ignored or
    # refused; an invoice currency unlike its contact's is refused or booked in the contact's currency.
    off_edition_fields: str = editions.IGNORE
    invoice_currency_mismatch: str = "refuse"
    require_gstin_for_business_gst: bool = True
    india_supply_tax_check: bool = True
    taxes_list_groups: bool = True
    # The code of "invoice number already in use" is undocumented (ZOHO_BOOKS.md): 1001 unless set.
    duplicate_number_code: int = ALREADY_EXISTS
    # Times and list behaviours reconciliation relies on (emulator/changes.py gives the sources): the
    # organization's time zone offset, how GET /invoices applies last_modified_time, whether GET /contacts
    # honours sort_order.
    time_offset: str = "+0000"
    modified_filter: str = "after"
    modified_filter_zone: str = "given"
    list_sort_order: str = "honour"
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    taxes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tax_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    exemptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom_fields: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def base_currency(self) -> dict[str, Any]:
        return next(c for c in self.currencies.values() if c["is_base_currency"])

    def currency_by_code(self, code: str) -> dict[str, Any] | None:
        return next((c for c in self.currencies.values() if c["currency_code"] == code.upper()), None)


ORG_SETTINGS = ("edition", "state_code", "country", "off_edition_fields", "invoice_currency_mismatch",
                "require_gstin_for_business_gst", "india_supply_tax_check", "taxes_list_groups",
                "duplicate_number_code", "time_offset", "modified_filter", "modified_filter_zone",
                "list_sort_order")


class BooksState(CatalogMixin):
    """The Books side of the emulator: organizations and their contacts, invoices, payments, currencies."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.orgs: dict[str, Organization] = {}
        self._ids = itertools.count(460000000026049, 7)

    # ----------------------------------------------------------------- ids and lookups
    def new_id(self) -> str:
        with self.lock:
            return str(next(self._ids))

    def org(self, org_id: str) -> Organization:
        with self.lock:
            org = self.orgs.get(org_id)
            if org is None:
                raise not_found("Organization")
            return org

    def reset(self) -> None:
        with self.lock:
            self.orgs.clear()

    # ----------------------------------------------------------------- organizations and currencies
    def add_organization(
        self,
        name: str,
        currency_code: str = "USD",
        plan: str = "premium",
        org_id: str | None = None,
        daily_limit: int | None = None,
        max_concurrent: int | None = None,
        **settings: Any,
    ) -> str:
        """Add an organization; ``settings`` are its edition settings (see ``configure_organization``)."""
        if plan not in PLANS:
            raise ValueError(f"unknown plan {plan!r}; one of {sorted(PLANS)}")
        with self.lock:
            oid = str(org_id) if org_id else str(700000000 + len(self.orgs) * 1000 + 1)
            while oid in self.orgs and not org_id:
                oid = str(int(oid) + 1)
            if oid in self.orgs:
                raise ValueError(f"organization {oid} exists")
            org = Organization(oid, name, currency_code.upper(), plan, daily_limit, max_concurrent)
            self.orgs[oid] = org
            self._add_currency(org, currency_code, Decimal(1), base=True)
            if settings:
                self.configure_organization(oid, **settings)
            return oid

    def configure_organization(self, org_id: str, **settings: Any) -> dict[str, Any]:
        """Set an organization's edition and the settings for Zoho's undocumented behaviours."""
        unknown = set(settings) - set(ORG_SETTINGS)
        if unknown:
            raise ValueError(f"unknown organization settings {sorted(unknown)}; known: {list(ORG_SETTINGS)}")
        if "edition" in settings and settings["edition"] not in editions.EDITIONS:
            raise ValueError(f"unknown edition {settings['edition']!r}; one of {editions.EDITIONS}")
        if settings.get("off_edition_fields", editions.IGNORE) not in (editions.IGNORE, editions.REFUSE):
            raise ValueError("off_edition_fields is 'ignore' or 'refuse'")
        if settings.get("invoice_currency_mismatch", "refuse") not in ("refuse", "contact"):
            raise ValueError("invoice_currency_mismatch is 'refuse' or 'contact'")
        changes.check_settings(settings)
        with self.lock:
            org = self.org(org_id)
            for key, value in settings.items():
                setattr(org, key, str(value).upper() if key == "state_code" else value)
            return {key: getattr(org, key) for key in ORG_SETTINGS}

    def _add_currency(
        self, org: Organization, code: str, rate: Decimal, base: bool = False, fmt: str | None = None,
        symbol: str | None = None,
    ) -> dict[str, Any]:
        code = code.upper()
        name, default_symbol = CURRENCY_INFO.get(code, (code, code))
        cur: dict[str, Any] = {
            "currency_id": self.new_id(),
            "currency_code": code,
            "currency_name": name,
            "currency_symbol": symbol or default_symbol,
            "price_precision": precision_of(code),  # JPY 0, KWD 3, most 2 (ZOHO_BOOKS.md)
            "currency_format": fmt or "1,234,567.89",
            "is_base_currency": base,
            "exchange_rate": Decimal(1) if base else rate,
            "effective_date": date.today().isoformat(),
        }
        org.currencies[cur["currency_id"]] = cur
        return cur

    def add_currency(
        self, org_id: str, code: str, exchange_rate: Any = 0, currency_format: str | None = None,
        currency_symbol: str | None = None,
    ) -> dict[str, Any]:
        """Add a currency; an exchange rate of 0 models 'present but unusable' as in a fresh Zoho org."""
        with self.lock:
            org = self.org(org_id)
            if not isinstance(code, str) or len(code.strip()) != 3 or not code.strip().isalpha():
                raise invalid("currency_code")
            if org.currency_by_code(code.strip()):
                raise ZohoError(400, ALREADY_EXISTS, f"Currency {code.strip().upper()} already exists.")
            rate = money(exchange_rate, "exchange_rate")
            if rate < 0:
                raise invalid("exchange_rate")
            return self._add_currency(org, code.strip(), rate, fmt=currency_format, symbol=currency_symbol)

    # ----------------------------------------------------------------- contacts
    def create_contact(self, org_id: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            org = self.org(org_id)
            name = self._contact_name(org, data.get("contact_name"), None)
            ctype = data.get("contact_type", "customer") or "customer"
            if ctype not in ("customer", "vendor"):
                raise invalid("contact_type")
            currency = org.base_currency()
            if data.get("currency_id") not in (None, ""):
                # a contact has one currency, chosen when it is created (ZOHO_BOOKS.md "One currency per contact")
                currency = org.currencies.get(as_id(data["currency_id"])) or _raise(not_found("Currency"))
            stamp = now_stamp(org.time_offset)
            contact: dict[str, Any] = {
                "contact_id": self.new_id(),
                "contact_name": name,
                "company_name": "",
                "has_transaction": False,
                "contact_type": ctype,
                "customer_sub_type": "business",
                "website": "",
                "status": "active",
                "payment_terms": 0,
                "payment_terms_label": "Due on Receipt",
                "currency_id": currency["currency_id"],
                "currency_code": currency["currency_code"],
                "currency_symbol": currency["currency_symbol"],
                "outstanding_receivable_amount": Decimal(0),
                "outstanding_receivable_amount_bcy": Decimal(0),
                "unused_credits_receivable_amount": Decimal(0),
                "unused_credits_receivable_amount_bcy": Decimal(0),
                "billing_address": {},
                "shipping_address": {},
                "contact_persons": [],
                "primary_contact_id": "",
                "notes": "",
                "custom_fields": [],
                "created_time": stamp,
                "last_modified_time": stamp,
            }
            self._apply_contact(org, contact, data)
            org.contacts[contact["contact_id"]] = contact
            return copy.deepcopy(contact)

    def update_contact(self, org_id: str, contact_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """``PUT /contacts/{id}`` (contacts.yml:2258): the fields given replace the stored ones."""
        with self.lock:
            org = self.org(org_id)
            contact = org.contacts.get(as_id(contact_id))
            if contact is None:
                raise not_found("Contact")
            if "contact_name" in data:
                contact_name = self._contact_name(org, data.get("contact_name"), contact["contact_id"])
            if data.get("currency_id") not in (None, "") and as_id(data["currency_id"]) != contact["currency_id"]:
                # the currency is locked once the contact has transactions (ZOHO_BOOKS.md)
                if contact["has_transaction"]:
                    raise invalid("currency_id", "The currency of a contact with transactions cannot be changed.")
                currency = org.currencies.get(as_id(data["currency_id"])) or _raise(not_found("Currency"))
                contact.update(currency_id=currency["currency_id"], currency_code=currency["currency_code"],
                               currency_symbol=currency["currency_symbol"])
            updated = copy.deepcopy(contact)
            self._apply_contact(org, updated, data)  # validates everything before anything is stored
            if "contact_name" in data:
                updated["contact_name"] = contact_name
            updated["last_modified_time"] = now_stamp(org.time_offset)
            contact.clear()
            contact.update(updated)
            return copy.deepcopy(contact)

    def _contact_name(self, org: Organization, name: Any, own_id: str | None) -> str:
        if not isinstance(name, str) or not name.strip():
            raise mandatory("contact_name")
        name = name.strip()
        if len(name) > 200:
            raise ZohoError(400, TOO_LONG, "Please ensure that the contact_name has less than 200 characters.")
        if any(c["contact_name"].lower() == name.lower() and c["contact_id"] != own_id for c in org.contacts.values()):
            raise ZohoError(
                400, CONTACT_NAME_EXISTS,
                f'The contact name "{name}" already exists. Please specify a different name.',
            )
        return name

    def _apply_contact(self, org: Organization, contact: dict[str, Any], data: dict[str, Any]) -> None:
        """Validate and copy the given contact fields onto ``contact`` (create and update share this)."""
        if "customer_sub_type" in data:
            sub_type = data.get("customer_sub_type") or "business"
            if sub_type not in ("individual", "business"):
                raise invalid("customer_sub_type")
            contact["customer_sub_type"] = sub_type
        for key in ("company_name", "website", "notes", "payment_terms_label"):
            if key in data:
                contact[key] = str(data.get(key) or "")
        if "payment_terms" in data:
            contact["payment_terms"] = int(data.get("payment_terms") or 0)
        if "contact_persons" in data:
            contact["contact_persons"] = self._persons(data.get("contact_persons") or [])
            contact["primary_contact_id"] = next(
                (p["contact_person_id"] for p in contact["contact_persons"] if p["is_primary_contact"]), "")
        for key in ("billing_address", "shipping_address"):
            if isinstance(data.get(key), dict):
                contact[key] = {k: str(v) for k, v in data[key].items() if isinstance(v, str | int)}
        if "custom_fields" in data:
            contact["custom_fields"] = self._custom_values(org, "contact", data["custom_fields"])
        given = editions.gate(org.edition, editions.CONTACT_FIELDS, data, org.off_edition_fields)
        merged = {k: contact[k] for k in editions.CONTACT_FIELDS if contact.get(k) not in (None, "")}
        merged.update(given)
        checked = editions.check_contact_fields(org.edition, merged, org.require_gstin_for_business_gst)
        if checked.get("tax_id"):
            tax = self._tax_or_group(org, checked["tax_id"])
            contact.update(tax_name=tax["tax_name"], tax_percentage=tax["tax_percentage"])
        if checked.get("tax_exemption_id"):
            self._exemption(org, checked["tax_exemption_id"])
        contact.update(checked)

    def _persons(self, persons_in: Any) -> list[dict[str, Any]]:
        if not isinstance(persons_in, list) or not all(isinstance(p, dict) for p in persons_in):
            raise invalid("contact_persons")
        persons: list[dict[str, Any]] = []
        for p in persons_in:
            persons.append({
                "contact_person_id": self.new_id(),
                "salutation": str(p.get("salutation") or ""),
                "first_name": str(p.get("first_name") or ""),
                "last_name": str(p.get("last_name") or ""),
                "email": str(p.get("email") or ""),
                "phone": str(p.get("phone") or ""),
                "mobile": str(p.get("mobile") or ""),
                "is_primary_contact": bool(p.get("is_primary_contact")),
            })
        if persons and not any(p["is_primary_contact"] for p in persons):
            persons[0]["is_primary_contact"] = True
        elif sum(p["is_primary_contact"] for p in persons) > 1:
            first = next(i for i, p in enumerate(persons) if p["is_primary_contact"])
            for i, p in enumerate(persons):
                p["is_primary_contact"] = i == first
        return persons

    def contact(self, org_id: str, contact_id: str) -> dict[str, Any]:
        with self.lock:
            found = self.org(org_id).contacts.get(as_id(contact_id))
            if found is None:
                raise not_found("Contact")
            return copy.deepcopy(found)

    @staticmethod
    def primary_person(contact: dict[str, Any]) -> dict[str, Any]:
        return next((p for p in contact["contact_persons"] if p["is_primary_contact"]), {})

    def contact_summary(self, contact: dict[str, Any]) -> dict[str, Any]:
        """List rows and webhooks carry the primary person's email at top level."""
        person = self.primary_person(contact)
        keys = (
            "contact_id", "contact_name", "company_name", "contact_type", "status", "payment_terms",
            "payment_terms_label", "currency_id", "currency_code", "outstanding_receivable_amount",
            "unused_credits_receivable_amount", "created_time", "last_modified_time",
        )
        row = {k: contact[k] for k in keys}
        row.update(
            first_name=person.get("first_name", ""), last_name=person.get("last_name", ""),
            email=person.get("email", ""), phone=person.get("phone", ""), mobile=person.get("mobile", ""),
        )
        return row

    def contact_full(self, contact: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(contact)
        out["email"] = self.primary_person(contact).get("email", "")
        return out

    def list_contacts(self, org_id: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            rows = [self.contact_summary(c) for c in self.org(org_id).contacts.values()]
        rows = _filter_text(rows, filters, ("contact_name", "company_name", "email", "first_name", "last_name"))
        if filters.get("contact_type"):
            rows = [r for r in rows if r["contact_type"] == filters["contact_type"]]
        if filters.get("status"):
            rows = [r for r in rows if r["status"] == filters["status"]]
        if filters.get("search_text"):
            needle = filters["search_text"].lower()
            rows = [
                r for r in rows
                if any(needle in str(r[k]).lower() for k in ("contact_name", "company_name", "email"))
            ]
        return sorted(rows, key=lambda r: r["contact_name"].lower())

    # ----------------------------------------------------------------- invoices
    def create_invoice(
        self, org_id: str, data: dict[str, Any], ignore_auto_number: bool = False
    ) -> dict[str, Any]:
        with self.lock:
            org = self.org(org_id)
            if data.get("customer_id") in (None, ""):
                raise mandatory("customer_id")
            customer = org.contacts.get(as_id(data["customer_id"]))
            if customer is None:
                raise not_found("Customer")
            if customer["contact_type"] != "customer":
                raise invalid("customer_id", "The contact is not a customer.")
            items = data.get("line_items")
            if items in (None, []):
                raise mandatory("line_items")
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise invalid("line_items")
            # An invoice is booked in its customer's currency (ZOHO_BOOKS.md "One currency per contact").
            currency = org.currencies.get(customer["currency_id"]) or org.base_currency()
            if data.get("currency_id") not in (None, ""):
                asked = org.currencies.get(as_id(data["currency_id"])) or _raise(not_found("Currency"))
                if asked["currency_id"] != currency["currency_id"] and org.invoice_currency_mismatch == "refuse":
                    raise invalid("currency_id", f"The customer's currency is {currency['currency_code']}; an "
                                  f"invoice cannot be raised in {asked['currency_code']}.")
            if currency["is_base_currency"]:
                rate = Decimal(1)
            else:
                given = data.get("exchange_rate")
                rate = currency["exchange_rate"] if given in (None, "") else money(given, "exchange_rate")
                if rate <= 0:
                    raise invalid(
                        "exchange_rate",
                        f"Exchange rate for {currency['currency_code']} must be greater than zero. Add it under "
                        "Settings -> Currencies or pass exchange_rate.",
                    )
            number = data.get("invoice_number")
            if ignore_auto_number and not number:
                raise mandatory("invoice_number")
            if number not in (None, ""):
                number = str(number).strip()
                if any(i["invoice_number"] == number for i in org.invoices.values()):
                    raise ZohoError(400, org.duplicate_number_code, f'Invoice "{number}" already exists.')
            else:
                number = self._next_invoice_number(org)
            inv_date = _parse_date(data["date"], "date") if data.get("date") else date.today().isoformat()
            due = _parse_date(data["due_date"], "due_date") if data.get("due_date") else inv_date
            fields = editions.gate(org.edition, editions.INVOICE_FIELDS, data, org.off_edition_fields)
            fields = editions.check_invoice_fields(org.edition, fields, customer, org.state_code)
            places = int(currency["price_precision"])
            inclusive = data.get("is_inclusive_tax") is True
            if data.get("is_inclusive_tax") not in (None, True, False):
                raise invalid("is_inclusive_tax")
            supply = self._supply(org, fields)
            lines, line_taxes = [], []
            for n, i in enumerate(items, start=1):
                line, tax = self._line_item(org, i, n, places, supply)
                lines.append(line)
                line_taxes.append(tax)
            before_tax = data.get("is_discount_before_tax", True) is not False
            sums = compute([li["item_total"] for li in lines], line_taxes, places, inclusive=inclusive,
                           invoice_discount=data.get("discount"), discount_before_tax=before_tax)
            custom = self._custom_values(org, "invoice", data.get("custom_fields"))
            adjustment = rounded(money(data.get("adjustment") or 0, "adjustment"), places)
            shipping = rounded(money(data.get("shipping_charge") or 0, "shipping_charge"), places)
            total = sums.total + adjustment + shipping
            stamp = now_stamp(org.time_offset)
            invoice = {
                "invoice_id": self.new_id(),
                "invoice_number": number,
                "date": inv_date,
                "due_date": due,
                "status": "draft",
                "payment_terms": int(data.get("payment_terms") or 0),
                "payment_terms_label": str(data.get("payment_terms_label") or "Due on Receipt"),
                "last_payment_date": "",
                "reference_number": str(data.get("reference_number") or ""),
                "customer_id": customer["contact_id"],
                "customer_name": customer["contact_name"],
                "currency_id": currency["currency_id"],
                "currency_code": currency["currency_code"],
                "currency_symbol": currency["currency_symbol"],
                "exchange_rate": rate,
                "is_inclusive_tax": inclusive,
                "discount": money(str(data.get("discount") or 0).strip().rstrip("%"), "discount"),
                "discount_total": sums.discount_total,
                "is_discount_before_tax": before_tax,
                "discount_type": "entity_level",
                "line_items": lines,
                "shipping_charge": shipping,
                "adjustment": adjustment,
                "adjustment_description": str(data.get("adjustment_description") or ""),
                "sub_total": sums.sub_total,
                "tax_total": sums.tax_total,
                "total": total,
                "taxes": [{"tax_name": t["tax_name"], "tax_amount": t["tax_amount"]} for t in sums.taxes],
                "payment_made": Decimal(0),
                "credits_applied": Decimal(0),
                "balance": total,
                "write_off_amount": Decimal(0),
                "price_precision": places,
                "is_emailed": False,
                "notes": str(data.get("notes") or ""),
                "terms": str(data.get("terms") or ""),
                "custom_fields": custom,
                "created_time": stamp,
                "last_modified_time": stamp,
                **fields,
            }
            org.invoices[invoice["invoice_id"]] = invoice
            customer["has_transaction"] = True
            customer["outstanding_receivable_amount"] += total
            return copy.deepcopy(invoice)

    @staticmethod
    def _supply(org: Organization, fields: dict[str, Any]) -> str | None:
        """India: ``intra`` when the place of supply is the organization's state, else ``inter``."""
        if org.edition != "in" or not fields.get("place_of_supply"):
            return None
        return "intra" if fields["place_of_supply"] == org.state_code else "inter"

    def _next_invoice_number(self, org: Organization) -> str:
        taken = {i["invoice_number"] for i in org.invoices.values()}
        while True:
            org.invoice_seq += 1
            candidate = f"INV-{org.invoice_seq:06d}"
            if candidate not in taken:
                return candidate

    def _line_item(self, org: Organization, item: dict[str, Any], order: int, places: int,
                   supply: str | None) -> tuple[dict[str, Any], LineTax]:
        known: dict[str, Any] = {}
        if item.get("item_id") not in (None, ""):
            # a line may reference an item and still override name, description, rate, quantity (ZOHO_BOOKS.md)
            known = org.items.get(as_id(item["item_id"])) or _raise(not_found("Item"))
        name = item.get("name") or known.get("name")
        if not known and (not isinstance(name, str) or not name.strip()):
            raise mandatory("line_items.name")
        name = str(name or "")
        if len(name) > 100:
            raise ZohoError(400, TOO_LONG, "Please ensure that the line item name has less than 100 characters.")
        rate = money(item.get("rate", known.get("rate", 0)), "rate")
        quantity = money(item.get("quantity", 1), "quantity")
        if quantity <= 0:
            raise invalid("quantity")
        gross = rounded(rate * quantity, places)
        discount = discount_of(item.get("discount"), gross, places, "discount")
        if item.get("discount_amount") not in (None, "", 0):
            discount += discount_of(item.get("discount_amount"), gross - discount, places, "discount_amount")
        fields = editions.gate(org.edition, editions.LINE_FIELDS, item, org.off_edition_fields)
        tax = self._line_tax(org, item, known, supply)
        if fields.get("tax_exemption_id") or fields.get("tax_exemption_code"):
            if tax.components:
                raise invalid("tax_exemption_id", "A line cannot carry both a tax and a tax exemption.")
            exemption = self._exemption(org, fields.get("tax_exemption_id") or fields.get("tax_exemption_code"))
            fields.update(tax_exemption_id=exemption["tax_exemption_id"],
                          tax_exemption_code=exemption["tax_exemption_code"])
        single = tax.components[0] if len(tax.components) == 1 else None
        line = {
            "line_item_id": self.new_id(),
            "item_id": known.get("item_id", ""),
            "name": name,
            "description": str(item.get("description") or known.get("description") or ""),
            "item_order": int(item.get("item_order") or order),
            "bcy_rate": rate,
            "rate": rate,
            "quantity": quantity,
            "unit": str(item.get("unit") or known.get("unit") or ""),
            "discount": discount,
            "product_type": str(item.get("product_type") or known.get("product_type") or ""),
            "tax_id": tax.tax_id,
            "tax_name": single["tax_name"] if single else ("" if not tax.components else
                                                             " + ".join(c["tax_name"] for c in tax.components)),
            "tax_type": "tax_group" if len(tax.components) > 1 else "tax",
            "tax_percentage": tax.percentage,
            "item_total": gross - discount,
            "hsn_or_sac": str(fields.get("hsn_or_sac") or (known.get("hsn_or_sac") if org.edition == "in" else "")
                              or ""),
        }
        line.update({k: v for k, v in fields.items() if k not in line})
        return line, tax

    def _line_tax(self, org: Organization, item: dict[str, Any], known: dict[str, Any], supply: str | None) -> LineTax:
        """The line's own ``tax_id``, else its item's tax (India: the item's intra/inter preference)."""
        tax_id = item.get("tax_id")
        if tax_id in (None, "") and known:
            if org.edition == "in" and supply:
                pref = next((p for p in known.get("item_tax_preferences", []) if p["tax_specification"] == supply),
                            None)
                tax_id = pref["tax_id"] if pref else None
            else:
                tax_id = known.get("tax_id") or None
        if tax_id in (None, ""):
            return LineTax()
        tax = self._tax_or_group(org, tax_id)
        if org.edition == "in" and supply and org.india_supply_tax_check:
            kinds = {c.get("tax_specific_type") for c in tax["components"]}
            # GST law: IGST across states, CGST+SGST within one (ZOHO_EDITIONS.md §2 India, [inference])
            if (supply == "intra" and "igst" in kinds) or (supply == "inter" and kinds & {"cgst", "sgst"}):
                raise invalid("tax_id", f"The tax {tax['tax_name']} does not apply to an {supply}-state supply.")
        return LineTax(components=tax["components"], tax_id=tax["tax_id"])

    def _invoice_ref(self, org_id: str, invoice_id: str) -> dict[str, Any]:
        found = self.org(org_id).invoices.get(as_id(invoice_id))
        if found is None:
            raise not_found("Invoice")
        return found

    def invoice(self, org_id: str, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self._invoice_ref(org_id, invoice_id))

    def list_invoices(self, org_id: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        keys = (
            "invoice_id", "customer_name", "customer_id", "status", "invoice_number", "reference_number",
            "date", "due_date", "currency_id", "currency_code", "total", "balance", "created_time",
            "last_modified_time", "is_emailed", "last_payment_date", "shipping_charge", "adjustment",
            "write_off_amount", "exchange_rate",
        )
        with self.lock:
            rows = [{k: copy.deepcopy(i[k]) for k in keys} for i in self.org(org_id).invoices.values()]
        rows = _filter_text(rows, filters, ("invoice_number", "reference_number", "customer_name"))
        if filters.get("customer_id"):
            rows = [r for r in rows if r["customer_id"] == filters["customer_id"]]
        status = filters.get("status") or filters.get("filter_by", "").removeprefix("Status.").lower()
        if status and status != "all":
            rows = [r for r in rows if r["status"] == status]
        return changes.modified_since(self.org(org_id), rows, filters.get("last_modified_time"))

    def mark_sent(self, org_id: str, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            inv = self._invoice_ref(org_id, invoice_id)
            if inv["status"] == "void":
                raise invalid("status", "A voided invoice cannot be marked as sent.")
            if inv["status"] == "draft":
                inv["status"] = "sent"
                inv["last_modified_time"] = now_stamp(self.org(org_id).time_offset)
            return copy.deepcopy(inv)

    def mark_void(self, org_id: str, invoice_id: str) -> dict[str, Any]:
        with self.lock:
            org = self.org(org_id)
            inv = self._invoice_ref(org_id, invoice_id)
            if inv["payment_made"] > 0:
                raise invalid("status", "Invoices with payments recorded cannot be voided.")
            if inv["status"] != "void":
                org.contacts[inv["customer_id"]]["outstanding_receivable_amount"] -= inv["balance"]
                inv["status"] = "void"
                inv["balance"] = Decimal(0)
                inv["last_modified_time"] = now_stamp(org.time_offset)
            return copy.deepcopy(inv)

    # ----------------------------------------------------------------- payments
    def create_payment(self, org_id: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            org = self.org(org_id)
            for name in ("customer_id", "payment_mode", "amount", "date", "invoices"):
                if data.get(name) in (None, "", []):
                    raise mandatory(name)
            customer = org.contacts.get(as_id(data["customer_id"]))
            if customer is None:
                raise not_found("Customer")
            mode = str(data["payment_mode"]).lower()
            if mode not in PAYMENT_MODES:
                raise invalid("payment_mode")
            amount = money(data["amount"], "amount").quantize(CENT)
            if amount <= 0:
                raise invalid("amount")
            pay_date = _parse_date(data["date"], "date")
            applications = data["invoices"]
            if not isinstance(applications, list) or not all(isinstance(a, dict) for a in applications):
                raise invalid("invoices")
            plan: list[tuple[dict[str, Any], Decimal]] = []
            for app in applications:
                inv = org.invoices.get(as_id(app.get("invoice_id")))
                if inv is None:
                    raise not_found("Invoice")
                if inv["customer_id"] != customer["contact_id"]:
                    raise invalid("invoice_id", "The invoice does not belong to this customer.")
                if inv["status"] == "void":
                    raise invalid("invoice_id", "Payments cannot be recorded for a voided invoice.")
                applied = money(app.get("amount_applied"), "amount_applied").quantize(CENT)
                if applied <= 0:
                    raise invalid("amount_applied")
                if applied > inv["balance"]:
                    raise invalid("amount_applied", "The amount applied exceeds the invoice balance.")
                plan.append((inv, applied))
            if sum((a for _, a in plan), Decimal(0)) > amount:
                raise invalid("amount", "The total amount applied exceeds the payment amount.")
            rows = []
            stamp = now_stamp(org.time_offset)
            for inv, applied in plan:
                inv["payment_made"] += applied
                inv["balance"] -= applied
                inv["status"] = "paid" if inv["balance"] == 0 else "partially_paid"
                inv["last_payment_date"] = pay_date
                inv["last_modified_time"] = stamp
                customer["outstanding_receivable_amount"] -= applied
                rows.append({
                    "invoice_id": inv["invoice_id"], "invoice_number": inv["invoice_number"],
                    "date": inv["date"], "invoice_amount": inv["total"], "amount_applied": applied,
                    "balance_amount": inv["balance"],
                })
            currency = org.currencies.get(customer["currency_id"]) or org.base_currency()
            payment = {
                "payment_id": self.new_id(),
                "payment_number": str(len(org.payments) + 1),
                "payment_mode": mode,
                "amount": amount,
                "amount_refunded": Decimal(0),
                "bank_charges": money(data.get("bank_charges") or 0, "bank_charges"),
                "date": pay_date,
                "status": "success",
                "reference_number": str(data.get("reference_number") or ""),
                "description": str(data.get("description") or ""),
                "customer_id": customer["contact_id"],
                "customer_name": customer["contact_name"],
                "email": self.primary_person(customer).get("email", ""),
                "invoices": rows,
                "currency_code": currency["currency_code"],
                "currency_symbol": currency["currency_symbol"],
                "created_time": stamp,
                "last_modified_time": stamp,
            }
            org.payments[payment["payment_id"]] = payment
            return copy.deepcopy(payment)

    def payment(self, org_id: str, payment_id: str) -> dict[str, Any]:
        with self.lock:
            found = self.org(org_id).payments.get(as_id(payment_id))
            if found is None:
                raise not_found("Payment")
            return copy.deepcopy(found)


def _raise(err: Exception) -> Any:
    raise err


def _filter_text(rows: list[dict[str, Any]], filters: dict[str, str], fields: tuple[str, ...]) -> list[dict]:
    """Zoho's `<field>`, `<field>_startswith` and `<field>_contains` list filters."""
    for name in fields:
        exact = filters.get(name)
        if exact:
            rows = [r for r in rows if str(r[name]).lower() == exact.lower()]
        start = filters.get(f"{name}_startswith")
        if start:
            rows = [r for r in rows if str(r[name]).lower().startswith(start.lower())]
        part = filters.get(f"{name}_contains")
        if part:
            rows = [r for r in rows if part.lower() in str(r[name]).lower()]
    return rows
