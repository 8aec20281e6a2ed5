"""An organization's taxes, exemptions and items, resolved for our lines and cached per connection.

Taxes come from ``GET /settings/taxes`` (taxes.yml:50), exemptions from ``GET /settings/taxexemptions``
(taxes.yml:363), items from ``GET /items?sku=`` / ``?name=`` and ``POST /items`` (items.yml). All are
cached (``catalog_cache_ttl``): in steady state a line with a product code and a tax costs no request.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from integration_core.errors import PermanentError
from integration_core.models import Invoice, LineItem

from .client import ZohoClient
from .payloads import LINE_NAME_MAX, to_decimal, truncate

PREFIX = "zoho_books:catalog"


def _get(client: ZohoClient, name: str) -> Any:
    entry = client.connection.cache.get(f"{PREFIX}:{client.settings.organization_id}:{name}")
    if entry is None or time.monotonic() - entry[0] > client.settings.catalog_cache_ttl:
        return None
    return entry[1]


def _put(client: ZohoClient, name: str, value: Any) -> None:
    client.connection.cache[f"{PREFIX}:{client.settings.organization_id}:{name}"] = (time.monotonic(), value)


def taxes(client: ZohoClient, *, refresh: bool = False) -> list[dict[str, Any]]:
    cached = None if refresh else _get(client, "taxes")
    if cached is not None:
        return list(cached)
    rows = [t for t in client.get("/settings/taxes", {"per_page": 200}).get("taxes") or [] if isinstance(t, dict)]
    _put(client, "taxes", rows)
    return rows


def _is_group(tax: dict[str, Any]) -> bool:
    return str(tax.get("tax_type") or "") == "tax_group"


def _igst(tax: dict[str, Any]) -> bool:
    return str(tax.get("tax_specific_type") or "") == "igst" or str(tax.get("tax_name") or "").upper().startswith(
        "IGST")


def _pick(line: LineItem, rows: list[dict[str, Any]], supply: str | None) -> list[dict[str, Any]]:
    if line.tax_code:
        code = line.tax_code.lower()
        return [t for t in rows if str(t.get("tax_id")) == line.tax_code or str(t.get("tax_name") or "").lower()
                == code]
    rate = Decimal(line.tax_rate or 0)
    found = [t for t in rows if to_decimal(t.get("tax_percentage")) == rate]
    if line.tax_name:
        named = [t for t in found if str(t.get("tax_name") or "").lower() == line.tax_name.lower()]
        found = named or found
    if supply == "inter":  # India: IGST across states (ZOHO_EDITIONS.md §2 India)
        found = [t for t in found if _igst(t) and not _is_group(t)]
    elif supply == "intra":  # India: CGST+SGST within one state, as a tax group
        found = [t for t in found if _is_group(t)] or [t for t in found if not _igst(t)]
    elif len(found) > 1:
        found = [t for t in found if not _is_group(t)] or found
    return found


def tax_id_for(client: ZohoClient, invoice: Invoice, line: LineItem, supply: str | None) -> str | None:
    """The Zoho ``tax_id`` of a line's tax (by code, else rate and name), ``None`` for an untaxed line."""
    if line.tax_code is None and not line.tax_rate:
        return None
    for refresh in (False, True):  # a tax just added by the operator: look once more before failing
        found = _pick(line, taxes(client, refresh=refresh), supply)
        if len(found) == 1:
            return str(found[0]["tax_id"])
        if len(found) > 1:
            names = ", ".join(sorted(str(t.get("tax_name")) for t in found))
            raise PermanentError(
                f"Invoice {invoice.number}, line {line.description!r}: several Zoho Books taxes match "
                f"{line.tax_rate}% ({names}); give the line a tax_name or tax_code", code="tax_ambiguous")
    what = f"tax {line.tax_code!r}" if line.tax_code else f"a {line.tax_rate}% tax" + (
        f" named {line.tax_name!r}" if line.tax_name else "")
    where = {"inter": " (IGST, for an inter-state supply)", "intra": " (a CGST+SGST group, for an intra-state "
             "supply)"}.get(supply or "", "")
    raise PermanentError(
        f"Invoice {invoice.number}, line {line.description!r}: Zoho Books organization "
        f"{client.settings.organization_id} has no {what}{where}. Add it under Settings → Taxes, then retry.",
        code="tax_missing")


def exemption_id_for(client: ZohoClient, invoice: Invoice, line: LineItem) -> str:
    wanted = str(line.tax_exemption)
    for refresh in (False, True):
        rows = None if refresh else _get(client, "exemptions")
        if rows is None:
            answer = client.get("/settings/taxexemptions")
            rows = [e for e in answer.get("tax_exemptions") or [] if isinstance(e, dict)]
            _put(client, "exemptions", rows)
        for row in rows:
            if wanted in (str(row.get("tax_exemption_id")), str(row.get("tax_exemption_code"))):
                return str(row["tax_exemption_id"])
    raise PermanentError(
        f"Invoice {invoice.number}, line {line.description!r}: Zoho Books has no tax exemption {wanted!r}. Add it "
        f"under Settings → Taxes → Tax exemptions (reason: {line.tax_exemption_reason or 'not given'}), then retry.",
        code="exemption_missing")


ITEM = "item"  # entity type of a product code's Zoho item in the core's mapping table (ctx.mappings)


def item_id_for(client: ZohoClient, line: LineItem, edition: str) -> str:
    """The Zoho item of a product code: cached, else remembered in the mapping table, else found by SKU, then
    by name, else created (and then remembered)."""
    code = str(line.product_code)
    key = f"item:{code}"
    cached = _get(client, key) or client.connection.mappings.get(ITEM, code)
    if cached:
        _put(client, key, str(cached))
        return str(cached)
    name = truncate(line.description, LINE_NAME_MAX)
    found = _find_item(client, "sku", code) or _find_item(client, "name", name)
    if found is None:
        found = client.post("/items", _item_payload(client, line, name, edition)).get("item") or {}
        if not found.get("item_id"):
            raise PermanentError("Zoho Books created an item but sent no item_id")
    client.connection.mappings.remember(ITEM, code, str(found["item_id"]))
    _put(client, key, str(found["item_id"]))
    return str(found["item_id"])


def _find_item(client: ZohoClient, field: str, value: str) -> dict[str, Any] | None:
    for row in client.get("/items", {field: value, "per_page": 200}).get("items") or []:
        if isinstance(row, dict) and str(row.get(field) or "").lower() == value.lower() and row.get("item_id"):
            return row
    return None


def _item_payload(client: ZohoClient, line: LineItem, name: str, edition: str) -> dict[str, Any]:
    s = client.settings
    data: dict[str, Any] = {"name": name, "rate": line.effective_unit_price, "sku": line.product_code,
                            "product_type": s.item_product_type, "description": line.description}
    if line.unit or s.item_unit:
        data["unit"] = line.unit or s.item_unit
    if s.item_account_id:
        data["account_id"] = s.item_account_id
    if s.item_tax_id and edition not in ("us", "in"):  # item tax_id is unavailable in us, in (items.yml:514)
        data["tax_id"] = s.item_tax_id
    if line.classification_code and edition in ("in", "ke", "za"):
        data["hsn_or_sac"] = line.classification_code  # items.yml:689
    return data
