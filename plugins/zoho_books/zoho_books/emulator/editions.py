"""Country editions: which edition-specific fields an organization takes, and the values Zoho accepts.

Zoho's API exposes no edition code (organizations.yml has only a free-text ``country``), so the emulator
holds the edition per organization itself (``Organization.edition``). Every table below follows the
``x-node_available_in`` / ``x-node_unavailable_in`` tags of Zoho's OpenAPI files as listed, with file and
line, in /work/shared/ZOHO_EDITIONS.md §1. Fields without a tag are available everywhere and are not listed.

What Zoho does with a field of another edition is undocumented (ZOHO_EDITIONS.md §0, §6.1): the emulator's
``off_edition_fields`` setting chooses ``ignore`` (default) or ``refuse``.
Bad values are answered as Zoho answers them: code 2, "Invalid value passed for <field>" (ZOHO_EDITIONS.md §5).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import invalid

EDITIONS = ("us", "ca", "au", "in", "uk", "eu", "gcc", "mx", "ke", "za", "global")
IGNORE, REFUSE = "ignore", "refuse"

# --- contacts: POST/PUT /contacts (contacts.yml:2066 create, 2258 update; ZOHO_EDITIONS.md §1a) -------------
CONTACT_FIELDS: dict[str, frozenset[str]] = {
    "is_taxable": frozenset({"us", "ca", "au", "in", "mx", "ke", "za"}),  # contacts.yml:1546
    "tax_id": frozenset({"in", "us"}),  # contacts.yml:1559
    "tax_exemption_id": frozenset({"us", "ca", "au", "in"}),  # contacts.yml:1581
    "tax_exemption_code": frozenset({"us", "ca", "au", "in"}),  # contacts.yml:1734
    "tax_authority_id": frozenset({"us"}),  # contacts.yml:1574
    "vat_treatment": frozenset({"uk"}),  # contacts.yml:1603
    "vat_reg_no": frozenset({"uk"}),  # contacts.yml:1646 (also Avalara)
    "country_code": frozenset({"uk", "gcc"}),  # contacts.yml:1638
    "tax_treatment": frozenset({"gcc", "mx", "ke", "za"}),  # contacts.yml:1609
    "tax_reg_no": frozenset({"gcc", "mx", "ke", "za"}),  # contacts.yml:1653
    "place_of_contact": frozenset({"in"}),  # contacts.yml:1710
    "gst_no": frozenset({"in"}),  # contacts.yml:1717
    "gst_treatment": frozenset({"in"}),  # contacts.yml:1724
}

# --- invoices: POST /invoices (invoices.yml:3243; ZOHO_EDITIONS.md §1b) -----------------------------------
INVOICE_FIELDS: dict[str, frozenset[str]] = {
    "place_of_supply": frozenset({"in", "gcc"}),  # invoices.yml:2056
    "gst_treatment": frozenset({"in"}),  # invoices.yml:2088
    "gst_no": frozenset({"in"}),  # invoices.yml:2095
    "vat_treatment": frozenset({"uk"}),  # invoices.yml:2791
    "tax_treatment": frozenset({"gcc", "mx", "ke", "za"}),  # invoices.yml:2064
    "is_reverse_charge_applied": frozenset({"za"}),  # invoices.yml:2074
    "tax_authority_id": frozenset({"us"}),  # invoices.yml:2756
    "tax_exemption_id": frozenset({"in", "us"}),  # invoices.yml:2763
}

# --- invoice lines (invoices.yml:3307; ZOHO_EDITIONS.md §1c) ----------------------------------------------
LINE_FIELDS: dict[str, frozenset[str]] = {
    "hsn_or_sac": frozenset({"in", "ke", "za"}),  # invoices.yml:2127
    "tax_treatment_code": frozenset({"gcc"}),  # invoices.yml:2081
    # Line exemptions are not in the create schema (ZOHO_EDITIONS.md §1c) but ZOHO_BOOKS.md lists them;
    # accepted where the exemption fields are tagged on contacts (us ca au in).
    "tax_exemption_id": frozenset({"us", "ca", "au", "in"}),
    "tax_exemption_code": frozenset({"us", "ca", "au", "in"}),
}

# --- items: POST /items (items.yml:788; ZOHO_EDITIONS.md §1d) ---------------------------------------------
ITEM_FIELDS: dict[str, frozenset[str]] = {
    "tax_id": frozenset(set(EDITIONS) - {"us", "in"}),  # items.yml:514-521, unavailable in us, in
    "item_tax_preferences": frozenset({"in"}),  # items.yml:728
    "is_taxable": frozenset({"in", "us", "mx", "ke", "za"}),  # items.yml:553
    "tax_exemption_id": frozenset({"in", "us", "mx", "ke", "za"}),  # items.yml:563
    "hsn_or_sac": frozenset({"in", "ke", "za"}),  # items.yml:689
}

# --- enumerations and formats -------------------------------------------------------------------------------
GST_TREATMENTS = ("business_gst", "business_none", "overseas", "consumer")  # contacts.yml:1724
VAT_TREATMENTS = ("uk", "eu_vat_registered", "overseas", "eu_vat_not_registered", "non_eu")  # contacts.yml:1603
TAX_TREATMENTS: dict[str, tuple[str, ...]] = {  # contacts.yml:1609, invoices.yml:2064
    "gcc": ("vat_registered", "vat_not_registered", "gcc_vat_registered", "gcc_vat_not_registered", "non_gcc",
            "dz_vat_registered", "dz_vat_not_registered"),
    "mx": ("home_country_mexico", "border_region_mexico", "non_mexico"),
    "ke": ("vat_registered", "vat_not_registered", "non_kenya"),
    "za": ("vat_registered", "vat_not_registered", "overseas"),
}
# Treatments that need a registration number (contacts.yml:1653-1660).
REGISTERED_TREATMENTS: dict[str, tuple[str, ...]] = {
    "gcc": ("vat_registered", "gcc_vat_registered", "dz_vat_registered"),
    "mx": TAX_TREATMENTS["mx"],
    "ke": ("vat_registered",),
    "za": ("vat_registered",),
}
# tax_reg_no formats (contacts.yml:1654): GCC 15 digits, MX 12-13 chars (RFC), KE 11, ZA 10 digits.
TAX_REG_NO: dict[str, re.Pattern[str]] = {
    "gcc": re.compile(r"^\d{15}$"),
    "mx": re.compile(r"^[A-Z&Ñ0-9]{12,13}$"),
    "ke": re.compile(r"^[A-Z0-9]{11}$"),
    "za": re.compile(r"^\d{10}$"),
}
# GSTIN: two-digit state, PAN (5 letters, 4 digits, letter), entity digit, 'Z', check character. The same
# pattern public integrations apply before sending gst_no (ZOHO_EDITIONS.md §5, [seen]).
GSTIN = re.compile(r"^\d{2}[A-Z]{5}\d{4}[A-Z][A-Z\d]Z[A-Z\d]$")
# Indian states and union territories as Zoho codes them ("State code according to Indian Census 2011",
# ZOHO_EDITIONS.md §5; example TN, contacts.yml:1710).
INDIAN_STATES = frozenset({
    "AN", "AP", "AR", "AS", "BR", "CH", "CG", "DN", "DD", "DL", "GA", "GJ", "HR", "HP", "JK", "JH", "KA", "KL",
    "LA", "LD", "MP", "MH", "MN", "ML", "MZ", "NL", "OD", "PY", "PB", "RJ", "SK", "TN", "TS", "TR", "UP", "UK",
    "WB",
})
# GCC place of supply: UAE emirates or GCC countries (contacts.yml:1638, invoices.yml:2056).
GCC_PLACES = frozenset({"AB", "AJ", "DU", "FU", "RA", "SH", "UM", "AE", "SA", "BH", "KW", "OM", "QA"})


def gate(edition: str, fields: dict[str, frozenset[str]], data: dict[str, Any], policy: str) -> dict[str, Any]:
    """The edition fields of ``data`` this edition takes; others are dropped or refused per ``policy``."""
    taken: dict[str, Any] = {}
    for name, editions in fields.items():
        if name not in data or data[name] in (None, ""):
            continue
        if edition in editions:
            taken[name] = data[name]
        elif policy == REFUSE:
            raise invalid(name, f"The field is not available in the {edition} edition.")
    return taken


def _enum(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    text = str(value).strip()
    if text not in allowed:
        raise invalid(name)
    return text


def check_contact_fields(edition: str, fields: dict[str, Any], require_gstin: bool) -> dict[str, Any]:
    """Validate the (already gated) edition fields of a contact; returns them normalized."""
    out = dict(fields)
    if "gst_treatment" in out:
        out["gst_treatment"] = _enum("gst_treatment", out["gst_treatment"], GST_TREATMENTS)
    if "gst_no" in out:
        out["gst_no"] = str(out["gst_no"]).strip().upper()
        if not GSTIN.match(out["gst_no"]):
            raise invalid("gst_no")  # code 2 "Invalid value passed for gst_no" (ZOHO_EDITIONS.md §5, [seen])
    if edition == "in" and require_gstin and out.get("gst_treatment") == "business_gst" and not out.get("gst_no"):
        # A registered business needs its GSTIN (ZOHO_EDITIONS.md §2 India, [inference]; setting
        # ``require_gstin_for_business_gst``).
        raise invalid("gst_no", "GSTIN is required for the GST treatment business_gst.")
    if "place_of_contact" in out:
        out["place_of_contact"] = _enum("place_of_contact", str(out["place_of_contact"]).upper(),
                                        tuple(INDIAN_STATES))
        if out.get("gst_treatment") == "overseas":  # "not applicable to overseas contacts" (contacts.yml:1711)
            raise invalid("place_of_contact", "Place of contact is not applicable to overseas contacts.")
    if "vat_treatment" in out:
        out["vat_treatment"] = _enum("vat_treatment", out["vat_treatment"], VAT_TREATMENTS)
    if "vat_reg_no" in out:
        out["vat_reg_no"] = str(out["vat_reg_no"]).strip()
        if not 2 <= len(out["vat_reg_no"]) <= 12:  # contacts.yml:1647: 2-12 characters
            raise invalid("vat_reg_no")
    if "tax_treatment" in out:
        out["tax_treatment"] = _enum("tax_treatment", out["tax_treatment"], TAX_TREATMENTS.get(edition, ()))
    if "tax_reg_no" in out:
        out["tax_reg_no"] = str(out["tax_reg_no"]).strip().upper()
        pattern = TAX_REG_NO.get(edition)
        if pattern is not None and not pattern.match(out["tax_reg_no"]):
            raise invalid("tax_reg_no")
    if out.get("tax_treatment") in REGISTERED_TREATMENTS.get(edition, ()) and not out.get("tax_reg_no"):
        raise invalid("tax_reg_no", "A tax registration number is required for this tax treatment.")
    if "country_code" in out and edition == "gcc":
        out["country_code"] = _enum("country_code", str(out["country_code"]).upper(), tuple(GCC_PLACES))
    if "is_taxable" in out and not isinstance(out["is_taxable"], bool):
        raise invalid("is_taxable")
    return out


def check_invoice_fields(edition: str, fields: dict[str, Any], contact: dict[str, Any], org_state: str) -> dict:
    """Validate an invoice's edition fields and apply Zoho's defaults from the contact and organization."""
    out = dict(fields)
    if edition == "in":
        place = out.get("place_of_supply") or contact.get("place_of_contact") or org_state
        # place of supply: the invoice's, else the contact's place_of_contact (invoices.yml:2056), else the
        # organization's state (Zoho staff, ZOHO_EDITIONS.md §5)
        if contact.get("gst_treatment") != "overseas" or out.get("place_of_supply"):
            out["place_of_supply"] = _enum("place_of_supply", str(place).upper(), tuple(INDIAN_STATES))
        out["gst_treatment"] = _enum("gst_treatment", out.get("gst_treatment") or contact.get("gst_treatment")
                                     or "consumer", GST_TREATMENTS)  # defaults from the contact [inference]
        gst_no = out.get("gst_no") or contact.get("gst_no") or ""
        if gst_no and not GSTIN.match(str(gst_no).upper()):
            raise invalid("gst_no")
        out["gst_no"] = str(gst_no).upper()
    elif edition == "gcc":
        place = out.get("place_of_supply") or contact.get("country_code") or org_state
        if place:
            out["place_of_supply"] = _enum("place_of_supply", str(place).upper(), tuple(GCC_PLACES))
    if edition == "uk":
        treatment = out.get("vat_treatment") or contact.get("vat_treatment")
        if treatment:
            out["vat_treatment"] = _enum("vat_treatment", treatment, VAT_TREATMENTS)
    if edition in TAX_TREATMENTS:
        treatment = out.get("tax_treatment") or contact.get("tax_treatment")
        if treatment:
            out["tax_treatment"] = _enum("tax_treatment", treatment, TAX_TREATMENTS[edition])
        if edition == "za" and out.get("tax_treatment") == "vat_registered" and \
                not isinstance(out.get("is_reverse_charge_applied"), bool):
            # "required if the customer's tax treatment is vat_registered" (invoices.yml:2075)
            raise invalid("is_reverse_charge_applied")
    return out
