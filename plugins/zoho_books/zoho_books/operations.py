"""What the provider hooks do with the API: organization, contacts, currencies and invoices."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

from integration_core.context import ProviderContext
from integration_core.errors import PermanentError
from integration_core.models import ConnectResult, Customer, Invoice, RemoteInvoice

from . import catalog, editions
from .client import ZohoClient
from .payloads import (
    CurrencyChoice,
    contact_payload,
    custom_fields,
    disambiguated_names,
    invoice_payload,
    line_payload,
    money_text,
    reference_for,
    to_decimal,
)

log = logging.getLogger(__name__)

CONTACT_NAME_EXISTS = 3062
ALREADY_EXISTS = 1001
CACHE_PREFIX = "zoho_books"


# --- organization and currencies (cached per connection, with a TTL) -------------------------------


def _cache_get(client: ZohoClient, name: str) -> Any:
    entry = client.connection.cache.get(f"{CACHE_PREFIX}:{client.settings.organization_id}:{name}")
    if entry is None:
        return None
    stored_at, value = entry
    if time.monotonic() - stored_at > client.settings.currency_cache_ttl:
        return None
    return value


def _cache_put(client: ZohoClient, name: str, value: Any) -> None:
    client.connection.cache[f"{CACHE_PREFIX}:{client.settings.organization_id}:{name}"] = (time.monotonic(), value)


def fetch_organization(client: ZohoClient) -> dict[str, Any]:
    org_id = client.settings.organization_id
    envelope = client.get(f"/organizations/{org_id}")
    org = envelope.get("organization")
    if not isinstance(org, dict):
        raise PermanentError(f"Zoho Books answered no organization for id {org_id}")
    code = str(org.get("currency_code") or "").upper()
    if code:
        _cache_put(client, "base_currency", code)
    given = org.get("address")
    address: dict[str, Any] = given if isinstance(given, dict) else {}
    _cache_put(client, "profile", {"country": str(org.get("country") or address.get("country") or ""),
                                   "state": str(address.get("state_code") or address.get("state") or "").upper()})
    return org


def profile(client: ZohoClient) -> dict[str, str]:
    """The organization's country and state (cached with the base currency)."""
    cached = _cache_get(client, "profile")
    if cached is None:
        fetch_organization(client)
        cached = _cache_get(client, "profile") or {}
    return dict(cached)


def edition(client: ZohoClient) -> str:
    """The connection's ``edition`` setting, else the one the organization's country names."""
    if client.settings.edition:
        return client.settings.edition
    return editions.edition_of("", profile(client).get("country"))


def connect(connection: ProviderContext) -> ConnectResult:
    client = ZohoClient(connection)
    org = fetch_organization(client)
    base = str(org.get("currency_code") or "").upper() or None
    return ConnectResult(
        account_name=str(org.get("name") or f"organization {client.settings.organization_id}"),
        base_currency=base,
        details={"organization_id": client.settings.organization_id, "api_domain": client.base_url[:-len("/books/v3")]},
    )


def base_currency(client: ZohoClient) -> str:
    cached = _cache_get(client, "base_currency")
    if cached:
        return str(cached)
    org = fetch_organization(client)
    code = str(org.get("currency_code") or "").upper()
    if not code:
        raise PermanentError(f"Zoho Books organization {client.settings.organization_id} has no base currency")
    return code


def currencies(client: ZohoClient, *, refresh: bool = False) -> dict[str, dict[str, Any]]:
    """The organization's currencies by code (one request per TTL, not per invoice)."""
    if not refresh:
        cached = _cache_get(client, "currencies")
        if cached is not None:
            return dict(cached)
    envelope = client.get("/settings/currencies")
    items = envelope.get("currencies") or []
    by_code = {str(c.get("currency_code") or "").upper(): c for c in items if isinstance(c, dict)}
    _cache_put(client, "currencies", by_code)
    return by_code


def currency_for(client: ZohoClient, invoice: Invoice) -> CurrencyChoice | None:
    """``None`` for the base currency; the Zoho currency and its rate otherwise, or an operator message."""
    base = base_currency(client)
    if invoice.currency == base:
        return None
    known = currencies(client)
    if invoice.currency not in known:  # maybe just added by the operator: look once more before failing
        known = currencies(client, refresh=True)
    org = client.settings.organization_id
    entry = known.get(invoice.currency)
    if entry is None:
        raise PermanentError(
            f"Invoice {invoice.number} is in {invoice.currency} but Zoho Books organization {org} has no "
            f"{invoice.currency} currency. Add it under Settings → Currencies with a positive exchange rate "
            f"against {base}, then retry the task.", code="currency_missing")
    rate = to_decimal(entry.get("exchange_rate"))
    if rate is None or rate <= 0:
        raise PermanentError(
            f"Invoice {invoice.number} is in {invoice.currency} but Zoho Books organization {org} has no positive "
            f"exchange rate for {invoice.currency} (it is {entry.get('exchange_rate')!r}). Set a rate against "
            f"{base} under Settings → Currencies, then retry the task.", code="exchange_rate_missing")
    return CurrencyChoice(currency_id=str(entry.get("currency_id")), code=invoice.currency, exchange_rate=rate)


# --- contacts (one per customer and currency) ----------------------------------------------------------


def _email_of(contact: dict[str, Any]) -> str | None:
    email = str(contact.get("email") or "").strip().lower()
    if email:
        return email
    for person in contact.get("contact_persons") or []:
        if isinstance(person, dict) and person.get("is_primary_contact") and person.get("email"):
            return str(person["email"]).strip().lower()
    return None


def _is_customer(contact: dict[str, Any]) -> bool:
    return str(contact.get("contact_type") or "customer").lower() == "customer"


def _in_currency(contact: dict[str, Any], currency: str) -> bool:
    """Rows without a currency code are taken as matching (older answers); Zoho list rows carry one."""
    code = str(contact.get("currency_code") or "").upper()
    return not code or code == currency


def _list_contacts(client: ZohoClient, **params: str) -> list[dict[str, Any]]:
    envelope = client.get("/contacts", {**params, "contact_type": "customer", "per_page": 200})
    return [c for c in envelope.get("contacts") or [] if isinstance(c, dict)]


def find_contact_by_email(client: ZohoClient, email: str, currency: str | None = None) -> str | None:
    for contact in _list_contacts(client, email=email):
        if _is_customer(contact) and _email_of(contact) == email.lower() and contact.get("contact_id") and (
                currency is None or _in_currency(contact, currency)):
            return str(contact["contact_id"])
    return None


def find_contact_by_name(client: ZohoClient, name: str) -> dict[str, Any] | None:
    """Any contact (customer or vendor) holding this exact display name."""
    envelope = client.get("/contacts", {"contact_name": name, "per_page": 200})
    for contact in envelope.get("contacts") or []:
        if isinstance(contact, dict) and str(contact.get("contact_name") or "").strip().lower() == name.lower():
            return contact
    return None


def _adoptable(contact: dict[str, Any], customer: Customer, currency: str) -> bool:
    email = _email_of(contact)
    return _is_customer(contact) and (email is None or email == customer.email) and _in_currency(contact, currency)


def contact_name(client: ZohoClient, customer: Customer, currency: str) -> str:
    """The plain name in the base currency; ``"Name (EUR)"`` for a contact in another currency (names are
    unique in Zoho, and the same customer may need one contact per currency)."""
    return customer.name if currency == base_currency(client) else f"{customer.name} ({currency})"


def _contact_currency_id(client: ZohoClient, customer: Customer, currency: str) -> str | None:
    if currency == base_currency(client):
        return None
    known = currencies(client)
    if currency not in known:
        known = currencies(client, refresh=True)
    entry = known.get(currency)
    if entry is None:
        raise PermanentError(
            f"Customer {customer.id} is billed in {currency} but Zoho Books organization "
            f"{client.settings.organization_id} has no {currency} currency. Add it under Settings → Currencies "
            f"with a positive exchange rate, then retry the task.", code="currency_missing")
    return str(entry.get("currency_id"))


def _contact_body(client: ZohoClient, customer: Customer, name: str, currency: str, *, create: bool) -> dict:
    return contact_payload(
        customer, name,
        currency_id=_contact_currency_id(client, customer, currency) if create else None,
        edition_fields=editions.contact_fields(edition(client), customer),
        custom_fields=custom_fields(customer.metadata, client.settings.contact_custom_fields),
        address=editions.address_payload(customer))


def _create_contact(client: ZohoClient, customer: Customer, name: str, currency: str) -> str | None:
    """The new contact's id, or ``None`` when the name is taken (3062)."""
    try:
        envelope = client.post("/contacts", _contact_body(client, customer, name, currency, create=True))
    except PermanentError as exc:
        if exc.code == CONTACT_NAME_EXISTS:
            return None
        raise
    contact = envelope.get("contact") or {}
    if not contact.get("contact_id"):
        raise PermanentError("Zoho Books created a contact but sent no contact_id")
    code = str(contact.get("currency_code") or currency).upper()
    if code != currency:
        raise PermanentError(
            f"Zoho Books created contact {contact['contact_id']} for customer {customer.id} in {code}, not "
            f"{currency}; check the organization's currencies (multi-currency is a plan feature).",
            code="currency_mismatch")
    return str(contact["contact_id"])


def upsert_contact(connection: ProviderContext, customer: Customer, currency: str | None = None) -> str:
    """The customer's contact in ``currency``: matched by email, else created with that currency; a name clash
    (3062) adopts the same customer's contact or disambiguates the name."""
    client = ZohoClient(connection)
    currency = (currency or base_currency(client)).upper()
    first = contact_name(client, customer, currency)
    if customer.email:
        found = find_contact_by_email(client, customer.email, currency)
        if found:
            return found
    else:
        existing = find_contact_by_name(client, first)
        if existing is not None and _adoptable(existing, customer, currency) and existing.get("contact_id"):
            return str(existing["contact_id"])
    suffix = "" if first == customer.name else f" ({currency})"
    for name in [first, *(n + suffix for n in disambiguated_names(customer))]:
        created = _create_contact(client, customer, name, currency)
        if created:
            return created
        clash = find_contact_by_name(client, name)
        if clash is not None and _adoptable(clash, customer, currency) and clash.get("contact_id"):
            log.info("zoho_books: adopting existing contact %s for customer %s", clash["contact_id"], customer.id)
            return str(clash["contact_id"])
    raise PermanentError(f"Zoho Books already has other contacts named {customer.name!r} and its variants; "
                         f"rename the customer or link it by email", code=CONTACT_NAME_EXISTS)


def update_contact(connection: ProviderContext, customer: Customer, remote_contact_id: str,
                   currency: str | None = None) -> None:
    """Send the customer's current name, email, address, tax data and custom fields to its contact (one PUT)."""
    client = ZohoClient(connection)
    currency = (currency or base_currency(client)).upper()
    first = contact_name(client, customer, currency)
    suffix = "" if first == customer.name else f" ({currency})"
    for name in [first, *(n + suffix for n in disambiguated_names(customer))]:
        try:
            client.put(f"/contacts/{remote_contact_id}", _contact_body(client, customer, name, currency,
                                                                       create=False))
            return
        except PermanentError as exc:
            if exc.code != CONTACT_NAME_EXISTS:
                raise
    raise PermanentError(f"Zoho Books already has other contacts named {customer.name!r} and its variants; "
                         f"rename customer {customer.id}", code=CONTACT_NAME_EXISTS)


# --- invoices ------------------------------------------------------------------------------------------


def _remote(invoice: dict[str, Any], adopted: bool) -> RemoteInvoice:
    return RemoteInvoice(remote_id=str(invoice["invoice_id"]),
                         remote_number=str(invoice.get("invoice_number") or "") or None, adopted=adopted)


def _supply(client: ZohoClient, ed: str, invoice: Invoice, fields: dict[str, Any]) -> str | None:
    """India: ``intra`` when the place of supply is the organization's state, ``inter`` otherwise."""
    if ed != "in":
        return None
    place = fields.get("place_of_supply") or profile(client).get("state")
    if editions.treatment_hint(ed, invoice.customer) == "overseas":
        return "inter"  # exports are inter-state supplies under IGST [inference, GST law]
    return "intra" if place and place == profile(client).get("state") else "inter"


def _lines(client: ZohoClient, ed: str, invoice: Invoice, supply: str | None) -> list[dict[str, Any]]:
    out = []
    for order, line in enumerate(invoice.lines, start=1):
        out.append(line_payload(
            line, order,
            item_id=catalog.item_id_for(client, line, ed) if line.product_code else None,
            tax_id=catalog.tax_id_for(client, invoice, line, supply),
            exemption_id=catalog.exemption_id_for(client, invoice, line) if line.tax_exemption else None,
            hsn_or_sac=ed in ("in", "ke", "za")))
    return out


def _check_created(created: dict[str, Any], invoice: Invoice) -> None:
    """Zoho's currency and computed total must be ours (to the currency's precision), never a silent success."""
    label = created.get("invoice_number") or created["invoice_id"]
    code = str(created.get("currency_code") or invoice.currency).upper()
    if code != invoice.currency:
        raise PermanentError(
            f"Zoho Books booked invoice {label} in {code}, but invoice {invoice.number} is in {invoice.currency} "
            f"(the contact's currency differs?). Void it in Zoho Books and check the customer's contacts.",
            code="currency_mismatch")
    total = to_decimal(created.get("total"))
    if total is None:
        return
    step = Decimal(1).scaleb(-invoice.precision)
    totals = invoice.totals()
    ours = invoice.total.quantize(step)
    if total.quantize(step) != ours:
        their_tax = (to_decimal(created.get("tax_total")) or Decimal(0)).quantize(step)
        raise PermanentError(
            f"Zoho Books invoice {label} was created with total {money_text(total.quantize(step))} {code} (tax "
            f"{money_text(their_tax)}) but invoice {invoice.number} totals "
            f"{money_text(ours)} {invoice.currency} (tax {money_text(totals.tax_total.quantize(step))}): taxes, "
            f"discounts or rounding settings differ in Zoho. Check it in Zoho Books and void it if wrong; retrying "
            f"will adopt it.",
            code="total_mismatch")


def push_invoice(connection: ProviderContext, invoice: Invoice, remote_contact_id: str) -> RemoteInvoice:
    client = ZohoClient(connection)
    currency = currency_for(client, invoice)
    ed = edition(client)
    use_numbers = client.settings.use_local_invoice_numbers
    fields = editions.invoice_fields(ed, invoice)
    custom = custom_fields(invoice.metadata, client.settings.invoice_custom_fields)
    if custom:
        fields["custom_fields"] = custom
    body = invoice_payload(invoice, remote_contact_id, currency=currency, use_local_number=use_numbers,
                           lines=_lines(client, ed, invoice, _supply(client, ed, invoice, fields)), extra=fields)
    params = {"ignore_auto_number_generation": "true"} if use_numbers else {}
    try:
        envelope = client.post("/invoices", body, params)
    except PermanentError as exc:
        # The code for a number already in use is undocumented: after any refused create, look the number up
        # and adopt the invoice only when its reference is ours (ZOHO_BOOKS.md "Duplicate invoice number").
        if use_numbers:
            adopted = _adopt_by_number(client, invoice)
            if adopted is not None:
                return adopted
        raise exc
    created = envelope.get("invoice") or {}
    if not created.get("invoice_id"):
        raise PermanentError("Zoho Books created an invoice but sent no invoice_id")
    _check_created(created, invoice)
    return _remote(created, adopted=False)


def _adopt_by_number(client: ZohoClient, invoice: Invoice) -> RemoteInvoice | None:
    """Zoho has this invoice number: ours (a lost response) if its reference is ours, else a clash; ``None`` when
    no invoice carries the number (the create failed for another reason)."""
    ref = reference_for(invoice.id)
    envelope = client.get("/invoices", {"invoice_number": invoice.number, "per_page": 200})
    for item in envelope.get("invoices") or []:
        if isinstance(item, dict) and str(item.get("invoice_number") or "") == invoice.number:
            if str(item.get("reference_number") or "") == ref:
                return _remote(item, adopted=True)
            raise PermanentError(
                f"Zoho Books already has invoice number {invoice.number} for another invoice (reference "
                f"{item.get('reference_number') or 'none'!r}, ours is {ref!r}). Renumber one of them, or set "
                f"use_local_invoice_numbers=false to let Zoho number invoices, then retry.", code=ALREADY_EXISTS)
    return None


def _customer_matches(item: dict[str, Any], customer: Customer, currency: str) -> bool | None:
    """True/False when the list item says who the customer is, ``None`` when it does not say."""
    name = str(item.get("customer_name") or "").strip()
    email = str(item.get("email") or "").strip().lower()
    if name:
        plain = {customer.name.lower(), *(n.lower() for n in disambiguated_names(customer))}
        variants = plain | {f"{n} ({currency.lower()})" for n in plain}  # contacts in another currency
        if name.lower() in variants:
            return True
    if email and customer.email:
        return email == customer.email
    return None if not name else False


def find_invoice(connection: ProviderContext, invoice: Invoice) -> RemoteInvoice | None:
    """The Zoho invoice carrying our reference (exact match), confirmed against the customer when possible."""
    client = ZohoClient(connection)
    ref = reference_for(invoice.id)
    envelope = client.get("/invoices", {"reference_number": ref, "per_page": 200})
    candidates = [i for i in envelope.get("invoices") or []
                  if isinstance(i, dict) and str(i.get("reference_number") or "") == ref and i.get("invoice_id")]
    if not candidates:
        return None
    confirmed = [i for i in candidates if _customer_matches(i, invoice.customer, invoice.currency) is not False]
    if not confirmed:
        names = ", ".join(sorted({str(i.get("customer_name")) for i in candidates}))
        raise PermanentError(
            f"Zoho Books has an invoice with reference {ref} (ours for invoice {invoice.number}) but for another "
            f"customer ({names}). Check it in Zoho Books before retrying.", code="reference_clash")
    confirmed.sort(key=lambda i: (str(i.get("invoice_number") or "") != invoice.number,
                                  str(i.get("status") or "") == "void"))
    if len(confirmed) > 1:
        log.warning("zoho_books: %d Zoho invoices carry reference %s; adopting %s", len(confirmed), ref,
                    confirmed[0]["invoice_id"])
    return _remote(confirmed[0], adopted=True)


def void_remote_invoice(connection: ProviderContext, remote_invoice_id: str) -> None:
    client = ZohoClient(connection)
    client.post(f"/invoices/{remote_invoice_id}/status/void")

