"""Product codes to QuickBooks items, and our invoice lines to QuickBooks sales lines.

A line with a ``product_code`` uses the QuickBooks Item of that code (QUICKBOOKS.md §4 Item): remembered in the
core's mapping table (``ctx.mappings``, entity type ``item``; also cached in the process), else found by
``Sku`` (``item_lookup=sku``, the default) or by ``Name`` (``item_lookup=name``) through the query endpoint
(§2: single quotes, an apostrophe escaped as ``\\'``), else created (``item_type`` Service or NonInventory,
with the connection's income account). Item names are unique among items, inactive ones included (§4, clash →
6240): a clash adopts the holder when it is active, sellable and not another product's (its ``Sku`` empty or
ours), else tries ``<name> (<code>)`` and then the code itself. Lines without a product code use the
connection's default item (``item_name``).

A repeat of a known product code costs no request, also from a new process. QuickBooks has no API-visible
switch saying whether a company shows SKUs (the facts file names none), hence the ``item_lookup`` setting;
a Sku lookup that finds nothing still lands on the right item through the name clash.
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from integration_core.errors import PermanentError
from integration_core.models import LineItem

from .client import QBClient, QBOFault, queryable, quote, request_id

log = logging.getLogger(__name__)

ITEM = "item"  # entity type of a product code's QuickBooks item in the core's mapping table (ctx.mappings)
NAME_MAX = 100  # §4 Item: Name max 100 characters, no colon
DUPLICATE_NAME = "6240"
SELLABLE = ("Service", "NonInventory", "Inventory")
CENT = Decimal("0.01")


def clean_name(text: str) -> str:
    """§4 Item: a Name of at most 100 characters without a colon (nor tabs and line breaks)."""
    cleaned = text.replace(":", " -")
    for ch in "\t\r\n":
        cleaned = cleaned.replace(ch, " ")
    return " ".join(cleaned.split())[:NAME_MAX].strip()


def _where(field: str, value: str) -> str:
    """``field = 'value'`` with the apostrophe escaped; a value the lexer cannot take becomes a LIKE pattern
    (the caller compares exactly)."""
    if queryable(value):
        return f"{field} = {quote(value)}"
    pattern = "".join(ch if queryable(ch) else "%" for ch in value)
    return f"{field} LIKE {quote(pattern)}"


def find_items(client: QBClient, field: str, value: str) -> list[dict[str, Any]]:
    """Items (active or not) whose ``field`` (``Sku`` or ``Name``) is exactly ``value`` (case-insensitive)."""
    text = f"SELECT * FROM Item WHERE {_where(field, value)} AND Active IN (true, false) MAXRESULTS 1000"
    found = client.query(text).get("Item") or []
    wanted = value.strip().lower()
    return [dict(i) for i in found if isinstance(i, dict) and i.get("Id")
            and str(i.get(field) or "").strip().lower() == wanted]


def _adoptable(item: dict[str, Any], code: str) -> bool:
    sku = str(item.get("Sku") or "").strip()
    return item.get("Active") is not False and item.get("Type", "Service") in SELLABLE and sku in ("", code)


def _names(line: LineItem, code: str) -> list[str]:
    base = clean_name(line.description) or clean_name(code)
    names = [base, clean_name(f"{base[:NAME_MAX - len(code) - 3]} ({code})"), clean_name(code)]
    return [n for n in dict.fromkeys(names) if n]


def _create(client: QBClient, line: LineItem, code: str, name: str, income: str,
            passed_over: list[str]) -> dict[str, Any] | None:
    """The new item, or ``None`` when the name is taken (6240). The ``requestid`` names the items passed over,
    so a create after the remembered item went inactive is not answered with that item again (§2 replay)."""
    body: dict[str, Any] = {"Name": name, "Type": client.settings.item_type, "IncomeAccountRef": {"value": income},
                            "Sku": code[:NAME_MAX], "Description": line.description[:4000]}
    if line.unit_price is not None:
        body["UnitPrice"] = line.unit_price
    try:
        answer = client.post("/item", body, request_id=request_id("product-item", client.realm_id, code, name,
                                                                 passed_over))
    except QBOFault as exc:
        if exc.code == DUPLICATE_NAME:
            return None
        raise
    item = answer.get("Item") or {}
    if not item.get("Id"):
        raise PermanentError(f"QuickBooks created the item {name!r} but sent no Id")
    return dict(item)


def _resolve(client: QBClient, line: LineItem, code: str, income_account: Any) -> str:
    lookup = client.settings.item_lookup
    names = _names(line, code)
    candidates = find_items(client, "Sku", code) if lookup == "sku" else find_items(client, "Name", names[0])
    for item in candidates:
        if _adoptable(item, code):
            return str(item["Id"])
    passed_over = sorted(str(item["Id"]) for item in candidates)
    income = str(income_account(client))
    for name in names:
        created = _create(client, line, code, name, income, passed_over)
        if created is not None:
            log.info("quickbooks: created item %s %r for product code %r", created["Id"], name, code)
            return str(created["Id"])
        for holder in find_items(client, "Name", name):
            if _adoptable(holder, code):
                log.info("quickbooks: adopting item %s %r for product code %r", holder["Id"], name, code)
                return str(holder["Id"])
    raise PermanentError(f"QuickBooks already has other items named {names[0]!r} and its variants (inactive, "
                         f"another product's SKU, or not sellable); rename one of them, then retry",
                         code=DUPLICATE_NAME)


def item_for(client: QBClient, line: LineItem, income_account: Any, cache: dict[str, str], *,
             refresh: bool = False) -> str:
    """The QuickBooks item of the line's product code (see the module). ``cache``: the connection's process
    cache of codes; ``income_account(client)`` gives the account for a new item; ``refresh``: look it up in
    QuickBooks again (the remembered item was deleted or made inactive there)."""
    code = str(line.product_code)
    known = None if refresh else cache.get(code) or client.ctx.mappings.get(ITEM, code)
    if known:
        cache[code] = str(known)
        return str(known)
    item_id = _resolve(client, line, code, income_account)
    client.ctx.mappings.remember(ITEM, code, item_id)
    cache[code] = item_id
    return item_id


def sales_line(line: LineItem, item_id: str, tax_code: str) -> dict[str, Any]:
    """One ``SalesItemLineDetail`` line. §4: when both ``Qty`` and ``UnitPrice`` are sent, ``Amount`` must equal
    their product rounded to 2 places, so they are sent only when that holds (a line discount, or a currency
    rounding to fewer places, leaves the net ``Amount`` alone, which QuickBooks accepts)."""
    detail: dict[str, Any] = {"ItemRef": {"value": item_id}, "TaxCodeRef": {"value": tax_code}}
    if line.unit_price is not None:
        qty = line.effective_quantity
        if (qty * line.unit_price).quantize(CENT, ROUND_HALF_UP) == line.amount:
            detail["Qty"] = qty
            detail["UnitPrice"] = line.unit_price
    return {"Amount": line.amount, "DetailType": "SalesItemLineDetail", "Description": line.description[:4000],
            "SalesItemLineDetail": detail}
