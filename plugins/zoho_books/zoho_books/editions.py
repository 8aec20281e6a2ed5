"""Our customer and invoice data as each Zoho Books country edition wants it.

Field names, values and formats follow /work/shared/ZOHO_EDITIONS.md (Zoho's OpenAPI tags, file and line).
Zoho exposes no edition code: the connection's ``edition`` setting wins, else the organization's free-text
``country`` decides (organizations.yml:278). When data an edition needs is missing or malformed locally,
the task fails permanently with a message naming the field and the customer.
"""

from __future__ import annotations

import re
from typing import Any

from integration_core.errors import PermanentError
from integration_core.models import Customer, Invoice

GSTIN = re.compile(r"^\d{2}[A-Z]{5}\d{4}[A-Z][A-Z\d]Z[A-Z\d]$")  # the check Zoho applies to gst_no (§5)
TAX_REG_NO = {"gcc": re.compile(r"^\d{15}$"), "ke": re.compile(r"^[A-Z0-9]{11}$"), "za": re.compile(r"^\d{10}$"),
              "mx": re.compile(r"^[A-Z&Ñ0-9]{12,13}$")}  # contacts.yml:1654
GCC_COUNTRIES = {"AE", "SA", "BH", "KW", "OM", "QA"}
EMIRATES = {"AB", "AJ", "DU", "FU", "RA", "SH", "UM"}
EU_COUNTRIES = {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT",
                "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"}
HOME_COUNTRY = {"in": "IN", "uk": "GB", "us": "US", "ca": "CA", "au": "AU", "mx": "MX", "ke": "KE", "za": "ZA"}
_COUNTRY_WORDS = {
    "in": ("india",), "uk": ("united kingdom", "u.k", "uk", "great britain", "england", "scotland", "wales"),
    "us": ("u.s.a", "usa", "united states", "u.s."), "ca": ("canada",), "au": ("australia",),
    "mx": ("mexico", "méxico"), "ke": ("kenya",), "za": ("south africa",),
    "gcc": ("united arab emirates", "uae", "saudi arabia", "bahrain", "kuwait", "oman", "qatar"),
    "eu": ("austria", "belgium", "bulgaria", "croatia", "cyprus", "czech", "denmark", "estonia", "finland",
           "france", "germany", "greece", "hungary", "ireland", "italy", "latvia", "lithuania", "luxembourg",
           "malta", "netherlands", "poland", "portugal", "romania", "slovakia", "slovenia", "spain", "sweden"),
}
# Our provider-agnostic tax_treatment hint -> the edition's treatment (contacts.yml:1609, 1603, 1724).
TREATMENTS: dict[str, dict[str, str]] = {
    "in": {"business": "business_gst", "business_unregistered": "business_none", "consumer": "consumer",
           "overseas": "overseas", "exempt": "consumer"},
    "uk": {"business": "uk", "business_unregistered": "uk", "consumer": "uk", "overseas": "overseas",
           "exempt": "uk"},
    "gcc": {"business": "vat_registered", "business_unregistered": "vat_not_registered",
            "consumer": "vat_not_registered", "overseas": "non_gcc", "exempt": "vat_not_registered"},
    "ke": {"business": "vat_registered", "business_unregistered": "vat_not_registered",
           "consumer": "vat_not_registered", "overseas": "non_kenya", "exempt": "vat_not_registered"},
    "za": {"business": "vat_registered", "business_unregistered": "vat_not_registered",
           "consumer": "vat_not_registered", "overseas": "overseas", "exempt": "vat_not_registered"},
    "mx": {"business": "home_country_mexico", "business_unregistered": "home_country_mexico",
           "consumer": "home_country_mexico", "overseas": "non_mexico", "exempt": "home_country_mexico"},
}
MX_GENERIC_RFC = {"consumer": "XAXX010101000", "overseas": "XEXX010101000"}  # contacts.yml:1653
GCC_REGISTERED = {"vat_registered", "gcc_vat_registered", "dz_vat_registered"}


def edition_of(setting: str, country: str | None) -> str:
    """The edition from the connection setting, else from the organization's free-text country."""
    if setting:
        return setting
    text = (country or "").strip().lower()
    for edition, words in _COUNTRY_WORDS.items():
        if any(text == w or text.startswith(w + " ") for w in words):
            return edition
    return "global"


def _missing(customer: Customer, field: str, why: str) -> PermanentError:
    return PermanentError(f"Customer {customer.id} ({customer.name}): {field} {why}", code="customer_data")


def _country(customer: Customer) -> str | None:
    return customer.billing_address.country if customer.billing_address else None


def _state(customer: Customer) -> str | None:
    return customer.billing_address.state if customer.billing_address else None


def treatment_hint(edition: str, customer: Customer) -> str:
    """The customer's hint, else: abroad -> overseas, a tax number -> business, otherwise consumer."""
    if customer.tax_treatment:
        return customer.tax_treatment
    home, country = HOME_COUNTRY.get(edition), _country(customer)
    if country and ((home and country != home) or (edition == "gcc" and country not in GCC_COUNTRIES)):
        return "overseas"
    return "business" if customer.tax_number else "consumer"


def contact_fields(edition: str, customer: Customer) -> dict[str, Any]:
    """The edition's contact fields for ``customer``; raises ``PermanentError`` naming what is missing."""
    hint = treatment_hint(edition, customer)
    number = (customer.tax_number or "").replace(" ", "").upper()
    out: dict[str, Any] = {}
    if edition == "in":
        out["gst_treatment"] = TREATMENTS["in"][hint]
        if out["gst_treatment"] == "business_gst":
            if not number:
                raise _missing(customer, "tax_number", "is required: a GST-registered business needs its GSTIN "
                               "(Zoho gst_no)")
            if not GSTIN.match(number):
                raise _missing(customer, "tax_number", f"{customer.tax_number!r} is not a valid GSTIN (Zoho gst_no: "
                               "15 characters, e.g. 22AAAAA0000A1Z5)")
            out["gst_no"] = number
        state = _state(customer)
        if hint != "overseas":  # place_of_contact is not applicable to overseas contacts (contacts.yml:1711)
            if state:
                out["place_of_contact"] = state
        if hint in ("consumer", "business_unregistered", "exempt") and number and GSTIN.match(number):
            out["gst_no"] = number
    elif edition == "uk":
        out["vat_treatment"] = TREATMENTS["uk"][hint]
        if number:
            if not 2 <= len(number) <= 12:  # contacts.yml:1647
                raise _missing(customer, "tax_number", f"{customer.tax_number!r} is not a UK VAT number "
                               "(Zoho vat_reg_no: 2 to 12 characters)")
            out["vat_reg_no"] = number
        if _country(customer):
            out["country_code"] = _country(customer)
    elif edition in ("gcc", "mx", "ke", "za"):
        treatment = TREATMENTS[edition][hint]
        out["tax_treatment"] = treatment
        if edition == "mx" and not number:
            number = MX_GENERIC_RFC.get(hint, "")
        registered = treatment in GCC_REGISTERED or edition == "mx"
        if registered and not number:
            raise _missing(customer, "tax_number", f"is required for the tax treatment {treatment} (Zoho tax_reg_no)")
        if number:
            if not TAX_REG_NO[edition].match(number):
                raise _missing(customer, "tax_number", f"{customer.tax_number!r} is not a valid tax registration "
                               f"number for this organization (Zoho tax_reg_no)")
            out["tax_reg_no"] = number
        if edition == "gcc":
            place = _state(customer) if _state(customer) in EMIRATES else _country(customer)
            if place in EMIRATES | GCC_COUNTRIES:
                out["country_code"] = place  # the place of supply (contacts.yml:1638)
    if edition in ("us", "ca", "au", "in") and hint == "exempt":
        out["is_taxable"] = False  # contacts.yml:1546
    return out


def invoice_fields(edition: str, invoice: Invoice) -> dict[str, Any]:
    """Edition fields of the invoice; the rest Zoho takes from the contact (invoices.yml:2056)."""
    out: dict[str, Any] = {}
    customer = invoice.customer
    hint = treatment_hint(edition, customer)
    if edition == "in" and hint != "overseas" and _state(customer):
        out["place_of_supply"] = _state(customer)
    if edition == "za" and TREATMENTS["za"][hint] == "vat_registered":
        out["is_reverse_charge_applied"] = False  # required for vat_registered customers (invoices.yml:2075)
    return out


def address_payload(customer: Customer) -> dict[str, str] | None:
    a = customer.billing_address
    if a is None:
        return None
    data = {"address": a.line1, "street2": a.line2, "city": a.city, "state": a.state, "state_code": a.state,
            "zip": a.postal_code, "country": a.country}
    return {k: v for k, v in data.items() if v}
