"""An organization's catalogue: items (items.yml), taxes, tax groups and exemptions (taxes.yml), custom fields.

A mixin of :class:`~.state.BooksState` (it uses the state's lock, ids and organizations). Edition rules come
from :mod:`.editions`; sources are cited per behaviour.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import editions
from .errors import ALREADY_EXISTS, TOO_LONG, ZohoError, invalid, mandatory, not_found

if TYPE_CHECKING:
    import threading

    from .state import Organization

PRODUCT_TYPES = ("goods", "service", "digital_service", "capital_service", "capital_goods")  # items.yml:669
TAX_TYPES = ("tax", "compound_tax")  # taxes.yml:542
TAX_SPECIFIC_TYPES = {"in": ("igst", "cgst", "sgst", "nil", "cess")}  # taxes.yml:662 (India part)
EXEMPTION_TYPES = ("customer", "item")  # taxes.yml:703
CUSTOM_FIELD_MODULES = ("invoice", "contact")


def _money(value: Any, name: str) -> Decimal:
    from .state import money

    return money(value, name)


class CatalogMixin:
    lock: threading.RLock

    def org(self, org_id: str) -> Organization:  # provided by BooksState
        raise NotImplementedError

    def new_id(self) -> str:  # provided by BooksState
        raise NotImplementedError

    # ----------------------------------------------------------------- items (items.yml)
    def create_item(self, org_id: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            org = self.org(org_id)
            name = data.get("name")
            if not isinstance(name, str) or not name.strip():
                raise mandatory("name")  # required (items.yml:789-791)
            if len(name.strip()) > 100:  # "Maximum length [100]" (items.yml, name)
                raise ZohoError(400, TOO_LONG, "Please ensure that the name has less than 100 characters.")
            if data.get("rate") in (None, ""):
                raise mandatory("rate")
            rate = _money(data["rate"], "rate")
            if any(i["name"].lower() == name.strip().lower() for i in org.items.values()):
                # Item names are unique in an organization [inference; code as for other duplicates]
                raise ZohoError(400, ALREADY_EXISTS, f'The item "{name.strip()}" already exists.')
            sku = str(data.get("sku") or "").strip()
            if sku and any(i["sku"] == sku for i in org.items.values()):
                raise ZohoError(400, ALREADY_EXISTS, f'The SKU "{sku}" already exists.')
            product_type = str(data.get("product_type") or "service")
            if product_type not in PRODUCT_TYPES or (product_type.startswith("capital") and org.edition != "za"):
                raise invalid("product_type")  # capital_* are South Africa only (items.yml:669)
            fields = editions.gate(org.edition, editions.ITEM_FIELDS, data, org.off_edition_fields)
            tax = self._tax_or_group(org, fields["tax_id"]) if "tax_id" in fields else None
            prefs = []
            for pref in fields.get("item_tax_preferences") or []:
                if not isinstance(pref, dict) or pref.get("tax_specification") not in ("intra", "inter"):
                    raise invalid("item_tax_preferences")  # intra / inter (ZOHO_EDITIONS.md §5, Zoho staff)
                ptax = self._tax_or_group(org, pref.get("tax_id"))
                prefs.append({"tax_id": ptax["tax_id"], "tax_specification": pref["tax_specification"],
                              "tax_name": ptax["tax_name"], "tax_percentage": ptax["tax_percentage"]})
            is_taxable = fields.get("is_taxable", True)
            exemption = fields.get("tax_exemption_id")
            if is_taxable is False and not exemption:
                raise mandatory("tax_exemption_id")  # "mandatory if is_taxable is false" (items.yml:564)
            if exemption:
                self._exemption(org, exemption)
            item: dict[str, Any] = {
                "item_id": self.new_id(),
                "name": name.strip(),
                "status": "active",
                "description": str(data.get("description") or ""),
                "rate": rate,
                "unit": str(data.get("unit") or ""),
                "sku": sku,
                "product_type": product_type,
                "account_id": str(data.get("account_id") or ""),
                "tax_id": tax["tax_id"] if tax else "",
                "tax_name": tax["tax_name"] if tax else "",
                "tax_percentage": tax["tax_percentage"] if tax else Decimal(0),
                "hsn_or_sac": str(fields.get("hsn_or_sac") or ""),
                "item_tax_preferences": prefs,
                "is_taxable": bool(is_taxable),
                "tax_exemption_id": str(exemption or ""),
            }
            org.items[item["item_id"]] = item
            return copy.deepcopy(item)

    def item(self, org_id: str, item_id: str) -> dict[str, Any]:
        with self.lock:
            found = self.org(org_id).items.get(str(item_id))
            if found is None:
                raise not_found("Item")
            return copy.deepcopy(found)

    def list_items(self, org_id: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        """``GET /items`` filters by ``name`` and ``sku`` (exact, case-insensitive) and ``search_text``."""
        with self.lock:
            rows = [copy.deepcopy(i) for i in self.org(org_id).items.values()]
        for key in ("name", "sku"):
            if filters.get(key):
                rows = [r for r in rows if r[key].lower() == filters[key].lower()]
        if filters.get("search_text"):
            rows = [r for r in rows if filters["search_text"].lower() in r["name"].lower()]
        return rows

    # ----------------------------------------------------------------- taxes and groups (taxes.yml)
    def create_tax(self, org_id: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            org = self.org(org_id)
            name = str(data.get("tax_name") or "").strip()
            if not name:
                raise mandatory("tax_name")  # none is schema-required, but a tax without a name is unusable
            pct = _money(data.get("tax_percentage", 0), "tax_percentage")
            if pct < 0 or pct > 100:
                raise invalid("tax_percentage")
            tax_type = str(data.get("tax_type") or "tax")
            if tax_type not in TAX_TYPES:
                raise invalid("tax_type")
            specific = str(data.get("tax_specific_type") or "")
            if specific and specific not in TAX_SPECIFIC_TYPES.get(org.edition, (specific,)):
                raise invalid("tax_specific_type")
            tax: dict[str, Any] = {
                "tax_id": self.new_id(), "tax_name": name, "tax_percentage": pct, "tax_type": tax_type,
                "tax_specific_type": specific, "country_code": str(data.get("country_code") or ""),
                "is_value_added": bool(data.get("is_value_added", True)), "is_editable": True,
                "is_default_tax": False}
            org.taxes[tax["tax_id"]] = tax
            return copy.deepcopy(tax)

    def create_tax_group(self, org_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """``taxes`` is a comma-separated string of tax ids (taxes.yml:591)."""
        with self.lock:
            org = self.org(org_id)
            name = str(data.get("tax_group_name") or "").strip()
            if not name:
                raise mandatory("tax_group_name")
            ids = [t.strip() for t in str(data.get("taxes") or "").split(",") if t.strip()]
            if not ids:
                raise mandatory("taxes")
            members = []
            for tax_id in ids:
                tax = org.taxes.get(tax_id)
                if tax is None:
                    raise invalid("taxes")
                members.append(tax["tax_id"])
            group: dict[str, Any] = {"tax_group_id": self.new_id(), "tax_group_name": name, "taxes": members}
            org.tax_groups[group["tax_group_id"]] = group
            return self._group_body(org, group)

    def _group_body(self, org: Organization, group: dict[str, Any]) -> dict[str, Any]:
        taxes = [copy.deepcopy(org.taxes[t]) for t in group["taxes"]]
        # tax_group_percentage: the sum of simple member rates [inference, taxes.yml:971 does not say]
        pct = sum((t["tax_percentage"] for t in taxes), Decimal(0))
        return {"tax_group_id": group["tax_group_id"], "tax_group_name": group["tax_group_name"],
                "tax_group_percentage": pct, "taxes": taxes}

    def tax(self, org_id: str, tax_id: str) -> dict[str, Any]:
        with self.lock:
            found = self.org(org_id).taxes.get(str(tax_id))
            if found is None:
                raise not_found("Tax")
            return copy.deepcopy(found)

    def tax_group(self, org_id: str, group_id: str) -> dict[str, Any]:
        with self.lock:
            org = self.org(org_id)
            found = org.tax_groups.get(str(group_id))
            if found is None:
                raise not_found("Tax group")
            return self._group_body(org, found)

    def list_taxes(self, org_id: str) -> list[dict[str, Any]]:
        """Simple and compound taxes (taxes.yml:50); tax groups too, as ``tax_type: tax_group`` rows, when the
        setting ``taxes_list_groups`` is on (the YAML has no group list endpoint, taxes.yml:149-246)."""
        with self.lock:
            org = self.org(org_id)
            rows = [copy.deepcopy(t) for t in org.taxes.values()]
            if org.taxes_list_groups:
                for group in org.tax_groups.values():
                    body = self._group_body(org, group)
                    rows.append({"tax_id": body["tax_group_id"], "tax_name": body["tax_group_name"],
                                 "tax_percentage": body["tax_group_percentage"], "tax_type": "tax_group",
                                 "tax_specific_type": "", "is_editable": True, "is_default_tax": False})
            return rows

    def _tax_or_group(self, org: Organization, tax_id: Any) -> dict[str, Any]:
        """A tax, or a group flattened to its member taxes (``components``); unknown ids are refused."""
        key = str(tax_id or "").strip()
        if key in org.taxes:
            tax = copy.deepcopy(org.taxes[key])
            return {**tax, "components": [tax]}
        if key in org.tax_groups:
            body = self._group_body(org, org.tax_groups[key])
            return {"tax_id": key, "tax_name": body["tax_group_name"], "tax_percentage": body["tax_group_percentage"],
                    "tax_type": "tax_group", "tax_specific_type": "", "components": body["taxes"]}
        raise invalid("tax_id")

    # ----------------------------------------------------------------- exemptions (taxes.yml:363-478)
    def create_exemption(self, org_id: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            org = self.org(org_id)
            code = str(data.get("tax_exemption_code") or "").strip()
            if not code:
                raise mandatory("tax_exemption_code")  # required (taxes.yml:1205)
            kind = str(data.get("type") or "")
            if kind not in EXEMPTION_TYPES:
                raise mandatory("type") if not kind else invalid("type")
            if any(e["tax_exemption_code"] == code for e in org.exemptions.values()):
                raise ZohoError(400, ALREADY_EXISTS, f'Tax exemption "{code}" already exists.')
            row = {"tax_exemption_id": self.new_id(), "tax_exemption_code": code,
                   "description": str(data.get("description") or ""), "type": kind}
            org.exemptions[row["tax_exemption_id"]] = row
            return copy.deepcopy(row)

    def list_exemptions(self, org_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(e) for e in self.org(org_id).exemptions.values()]

    def _exemption(self, org: Organization, key: Any) -> dict[str, Any]:
        found = org.exemptions.get(str(key)) or next(
            (e for e in org.exemptions.values() if e["tax_exemption_code"] == str(key)), None)
        if found is None:
            raise invalid("tax_exemption_id")
        return found

    # ----------------------------------------------------------------- custom fields
    def add_custom_field(self, org_id: str, module: str, api_name: str, label: str = "",
                         data_type: str = "string") -> dict[str, Any]:
        """Define a field as Settings -> Preferences -> Field Customization would (ZOHO_BOOKS.md)."""
        if module not in CUSTOM_FIELD_MODULES:
            raise ValueError(f"module must be one of {CUSTOM_FIELD_MODULES}")
        with self.lock:
            org = self.org(org_id)
            field = {"customfield_id": self.new_id(), "api_name": api_name, "label": label or api_name,
                     "data_type": data_type}
            org.custom_fields.setdefault(module, []).append(field)
            return dict(field)

    def _custom_values(self, org: Organization, module: str, given: Any) -> list[dict[str, Any]]:
        """``custom_fields [{api_name | customfield_id, value}]``; unknown fields are refused (ZOHO_BOOKS.md)."""
        if given in (None, ""):
            return []
        if not isinstance(given, list) or not all(isinstance(g, dict) for g in given):
            raise invalid("custom_fields")
        known = org.custom_fields.get(module, [])
        out = []
        for entry in given:
            field = next((f for f in known if (entry.get("api_name") and f["api_name"] == entry["api_name"]) or
                          (entry.get("customfield_id") and f["customfield_id"] == str(entry["customfield_id"]))),
                         None)
            if field is None:
                name = entry.get("api_name") or entry.get("customfield_id")
                raise invalid("custom_fields", f"The custom field {name} does not exist.")
            out.append({"customfield_id": field["customfield_id"], "api_name": field["api_name"],
                        "label": field["label"], "data_type": field["data_type"],
                        "value": "" if entry.get("value") is None else str(entry["value"])})
        return out
