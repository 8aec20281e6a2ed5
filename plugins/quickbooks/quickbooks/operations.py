"""What the provider hooks do with the API: company facts, customers, the billing item, invoices, voids.

Steady state is one request per invoice: company preferences, the item and exchange rates are cached per
connection for ``cache_ttl`` seconds, and the core remembers customers.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

from integration_core.context import ProviderContext
from integration_core.errors import PermanentError
from integration_core.models import ConnectResult, Customer, Invoice, RemoteInvoice

from . import items
from .client import QBClient, QBOFault, queryable, quote, request_id

log = logging.getLogger(__name__)

OBJECT_NOT_FOUND = "610"
INVALID_REFERENCE = "2500"
STALE_OBJECT = "5010"
BUSINESS_VALIDATION = "6000"
DUPLICATE_DOC_NUMBER = "6140"
DUPLICATE_NAME = "6240"
DOC_NUMBER_MAX = 21  # §4 Invoice DocNumber
REFERENCE_PREFIX = "integration-core invoice "
VOID_ATTEMPTS = 3
CACHE_PREFIX = "quickbooks"


def reference_for(invoice_id: str) -> str:
    """The stable reference in PrivateNote that ties a QuickBooks invoice to ours."""
    return REFERENCE_PREFIX + invoice_id


# --- per-connection cache -----------------------------------------------------------------------------


def _cache_get(client: QBClient, name: str) -> Any:
    entry = client.ctx.cache.get(f"{CACHE_PREFIX}:{client.realm_id}:{name}")
    if entry is None or time.monotonic() - entry[0] > client.settings.cache_ttl:
        return None
    return entry[1]


def _cache_put(client: QBClient, name: str, value: Any) -> None:
    client.ctx.cache[f"{CACHE_PREFIX}:{client.realm_id}:{name}"] = (time.monotonic(), value)


# --- company ------------------------------------------------------------------------------------------


def company_facts(client: QBClient, *, refresh: bool = False) -> dict[str, Any]:
    """Country, home currency, multicurrency and custom numbering (§4 Preferences and CompanyInfo)."""
    if not refresh:
        cached = _cache_get(client, "facts")
        if cached is not None:
            return dict(cached)
    prefs = client.get("/preferences").get("Preferences") or {}
    info = client.get(f"/companyinfo/{client.realm_id}").get("CompanyInfo") or {}
    currency = prefs.get("CurrencyPrefs") or {}
    facts = {
        "name": str(info.get("CompanyName") or f"company {client.realm_id}"),
        "country": str(info.get("Country") or "US").upper(),
        "home_currency": str((currency.get("HomeCurrency") or {}).get("value") or "USD").upper(),
        "multicurrency": bool(currency.get("MultiCurrencyEnabled")),
        "custom_txn_numbers": bool((prefs.get("SalesFormsPrefs") or {}).get("CustomTxnNumbers")),
        # §4 Preferences: SalesFormsPrefs.AllowDiscount (an invoice discount line needs it)
        "allow_discount": bool((prefs.get("SalesFormsPrefs") or {}).get("AllowDiscount")),
    }
    _cache_put(client, "facts", facts)
    return facts


def connect(ctx: ProviderContext) -> ConnectResult:
    client = QBClient(ctx)
    facts = company_facts(client, refresh=True)
    return ConnectResult(account_name=facts["name"], base_currency=facts["home_currency"],
                         details={"realm_id": client.realm_id, "country": facts["country"],
                                  "multicurrency": facts["multicurrency"],
                                  "custom_txn_numbers": facts["custom_txn_numbers"]})


# --- customers ----------------------------------------------------------------------------------------


def _clean_name(name: str) -> str:
    """§4 Customer: DisplayName without colon, tab or newline, at most 500 characters."""
    text = name.replace(":", " -").replace("\t", " ").replace("\r", " ").replace("\n", " ").strip()
    return " ".join(text.split())[:500]


def _customers_where(client: QBClient, condition: str) -> list[dict[str, Any]]:
    found = client.query(f"SELECT * FROM Customer WHERE {condition} MAXRESULTS 1000").get("Customer") or []
    return [c for c in found if isinstance(c, dict) and c.get("Id")]


def _email(record: dict[str, Any]) -> str | None:
    address = (record.get("PrimaryEmailAddr") or {}).get("Address")
    return str(address).strip().lower() if address else None


def find_customer_by_name(client: QBClient, name: str) -> dict[str, Any] | None:
    """The customer (active or not) holding exactly this DisplayName."""
    if queryable(name):
        condition = f"DisplayName = {quote(name)} AND Active IN (true, false)"
    else:  # the lexer would reject the literal: match a LIKE pattern, then compare here
        pattern = "".join(ch if queryable(ch) else "%" for ch in name)
        condition = f"DisplayName LIKE {quote(pattern)} AND Active IN (true, false)"
    for record in _customers_where(client, condition):
        if str(record.get("DisplayName") or "").strip().lower() == name.strip().lower():
            return record
    return None


def _create_customer(client: QBClient, customer: Customer, name: str, currency: str | None = None) -> str | None:
    """The new customer's Id, or ``None`` when the name is taken by a customer, vendor or employee (6240)."""
    body: dict[str, Any] = {"DisplayName": name}
    if customer.email:
        body["PrimaryEmailAddr"] = {"Address": customer.email}
    if customer.company_name:
        body["CompanyName"] = customer.company_name[:100]
    if currency:
        body["CurrencyRef"] = {"value": currency}
    try:
        answer = client.post("/customer", body, request_id=request_id("customer", customer.id, body))
    except QBOFault as exc:
        if exc.code == DUPLICATE_NAME:
            return None
        raise
    created = answer.get("Customer") or {}
    if not created.get("Id"):
        raise PermanentError("QuickBooks created a customer but sent no Id")
    return str(created["Id"])


def _adoptable(record: dict[str, Any], customer: Customer, currency: str) -> bool:
    """Active, in the wanted currency (§5: one per customer), and not someone else's by email."""
    email = _email(record)
    if record.get("Active") is False:
        return False
    if str((record.get("CurrencyRef") or {}).get("value") or "").upper() not in ("", currency):
        return False
    return email is None or email == customer.email


def _name_variants(customer: Customer, currency: str | None = None) -> list[str]:
    base = _clean_name(customer.name)
    tail = f" ({currency})" if currency else ""
    names = [base + tail]
    if customer.email:
        names.append(f"{base} ({customer.email}){tail}")
    names.append(f"{base} ({customer.id}){tail}")
    return [_clean_name(n) for n in names]


def upsert_contact(ctx: ProviderContext, customer: Customer) -> str:
    """Match by email (an exact name match wins among several), else create; a name clash (6240, names are
    unique across customers, vendors and employees) adopts the same customer or tries a variant name."""
    client = QBClient(ctx)
    return _upsert(client, customer, None)


def _upsert(client: QBClient, customer: Customer, currency: str | None) -> str:
    """``currency`` ``None``: the home currency (the customer is created without a CurrencyRef)."""
    wanted = currency or company_facts(client)["home_currency"]
    if customer.email and queryable(customer.email):
        matches = [c for c in _customers_where(client, f"PrimaryEmailAddr = {quote(customer.email)}")
                   if _email(c) == customer.email and _adoptable(c, customer, wanted)]
        named = [c for c in matches if str(c.get("DisplayName") or "").lower() in
                 {n.lower() for n in _name_variants(customer, currency)}]
        if named or len(matches) == 1:
            return str((named or matches)[0]["Id"])
    for name in _name_variants(customer, currency):
        created = _create_customer(client, customer, name, currency)
        if created:
            return created
        holder = find_customer_by_name(client, name)
        if holder is not None and _adoptable(holder, customer, wanted):
            log.info("quickbooks: adopting customer %s for customer %s", holder["Id"], customer.id)
            return str(holder["Id"])
    raise PermanentError(f"QuickBooks already has other customers, vendors or employees named {customer.name!r} "
                         f"and its variants; rename the customer or give it an email", code=DUPLICATE_NAME)


def _customer_currency(client: QBClient, customer_id: str) -> str:
    record = client.get(f"/customer/{customer_id}").get("Customer") or {}
    return str((record.get("CurrencyRef") or {}).get("value") or "").upper()


def _customer_for_currency(client: QBClient, invoice: Invoice, customer_id: str) -> str:
    """§5: one currency per customer. The customer for ``invoice.currency``: the mapped one when its
    currency matches, else a sibling named "<name> (<currency>)", created when missing."""
    key = f"currency-customer:{customer_id}:{invoice.currency}"
    cached = _cache_get(client, key)
    if cached:
        return str(cached)
    chosen = customer_id
    if _customer_currency(client, customer_id) != invoice.currency:
        chosen = _upsert(client, invoice.customer, invoice.currency)
    _cache_put(client, key, chosen)
    return chosen


# --- item and account ---------------------------------------------------------------------------------


def income_account(client: QBClient) -> str:
    """The connection's income account, else the company's service income account (§4 Account lookup)."""
    if client.settings.income_account_id:
        return client.settings.income_account_id
    accounts = client.query("SELECT * FROM Account WHERE AccountType = 'Income' AND Active = true "
                            "MAXRESULTS 1000").get("Account") or []
    accounts.sort(key=lambda a: (a.get("AccountSubType") != "ServiceFeeIncome", int(a.get("Id") or 0)))
    if not accounts:
        raise PermanentError(f"QuickBooks company {client.realm_id} has no active Income account; create one or set "
                             f"income_account_id", code="income_account_missing")
    return str(accounts[0]["Id"])


def billing_item(client: QBClient) -> str:
    """Id of the Service item lines use (§4 Item): found by name, else created with the income account."""
    cached = _cache_get(client, "item")
    if cached:
        return str(cached)
    name = client.settings.item_name
    item = _item_named(client, name)
    if item is None:
        body = {"Name": name, "Type": "Service", "IncomeAccountRef": {"value": income_account(client)}}
        try:
            item = client.post("/item", body, request_id=request_id("item", client.realm_id, body)).get("Item")
        except QBOFault as exc:
            if exc.code != DUPLICATE_NAME:
                raise
            item = _item_named(client, name)  # created meanwhile by another worker
        if not item or not item.get("Id"):
            raise PermanentError(f"QuickBooks did not create the item {name!r}")
    if item.get("Active") is False:
        raise PermanentError(f"QuickBooks item {name!r} is inactive; make it active or set another item_name",
                             code="item_inactive")
    _cache_put(client, "item", str(item["Id"]))
    return str(item["Id"])


def _item_named(client: QBClient, name: str) -> dict[str, Any] | None:
    items = client.query(f"SELECT * FROM Item WHERE Name = {quote(name)} AND Active IN (true, false)").get("Item")
    for item in items or []:
        if str(item.get("Name") or "").lower() == name.lower():
            return dict(item)
    return None


# --- invoices ------------------------------------------------------------------------------------------


def exchange_rate(client: QBClient, currency: str, on: str) -> Decimal:
    """§5: an omitted ExchangeRate is stored as 1, so read the company's rate and send it."""
    key = f"rate:{currency}:{on}"
    cached = _cache_get(client, key)
    if cached is not None:
        return Decimal(cached)
    try:
        answer = client.get("/exchangerate", {"sourcecurrencycode": currency, "asofdate": on})
    except QBOFault as exc:
        raise PermanentError(f"QuickBooks company {client.realm_id} has no exchange rate for {currency} on {on}; "
                             f"add the currency and a rate in QuickBooks, then retry", code="exchange_rate_missing") \
            from exc
    rate = Decimal(str((answer.get("ExchangeRate") or {}).get("Rate") or "0"))
    if rate <= 0:
        raise PermanentError(f"QuickBooks has no positive exchange rate for {currency}", code="exchange_rate_missing")
    _cache_put(client, key, str(rate))
    return rate


def _tax_code(client: QBClient, facts: dict[str, Any]) -> tuple[str, bool]:
    """(TaxCodeRef value, non-US). §6: US lines take TAX or NON (NON: the billed amounts are final); other
    countries need a tax code Id on every line, which only the operator can choose."""
    us = facts["country"] == "US"
    code = client.settings.tax_code or ("NON" if us else "")
    if not code:
        raise PermanentError(f"QuickBooks company {client.realm_id} is in {facts['country']}, where every invoice "
                             f"line needs a tax code: set tax_code to the Id of the tax code to use (for example a "
                             f"zero-rated or standard code)", code="tax_code_missing")
    return code, not us


def _check_currency(client: QBClient, invoice: Invoice, facts: dict[str, Any]) -> None:
    home = facts["home_currency"]
    if invoice.currency != home and not facts["multicurrency"]:
        raise PermanentError(f"Invoice {invoice.number} is in {invoice.currency} but QuickBooks company "
                             f"{client.realm_id} bills only in {home} (multicurrency is off; it can only be turned "
                             f"on in QuickBooks itself)", code="currency_not_enabled")


def _product_items(client: QBClient) -> dict[str, str]:
    """The process cache of product code → item id for this company (the mapping table is the durable copy)."""
    key = f"{CACHE_PREFIX}:{client.realm_id}:product-items"
    cache = client.ctx.cache.get(key)
    if not isinstance(cache, dict):
        cache = client.ctx.cache[key] = {}
    return cache


def _lines(client: QBClient, invoice: Invoice, tax_code: str, facts: dict[str, Any], *,
           refresh_items: bool = False) -> list[dict[str, Any]]:
    """Sales lines (a product code's item, else the default item) and the invoice discount as one
    ``DiscountLineDetail`` line of its amount (§4 Invoice: TotalAmt = lines + tax - discount)."""
    cache = _product_items(client)
    if refresh_items:
        cache.clear()
    lines = [items.sales_line(line, items.item_for(client, line, income_account, cache, refresh=refresh_items)
                              if line.product_code
                              else billing_item(client), tax_code)
             for line in invoice.lines]
    if invoice.discount_percent is not None or invoice.discount_amount is not None:
        off = invoice.totals().discount
        if off:
            if not facts.get("allow_discount"):
                raise PermanentError(f"Invoice {invoice.number} has a discount but QuickBooks company "
                                     f"{client.realm_id} does not allow discounts on sales forms; turn on "
                                     f"Settings → Sales → Discount in QuickBooks, then retry",
                                     code="discount_not_enabled")
            lines.append({"Amount": off, "DetailType": "DiscountLineDetail",
                          "DiscountLineDetail": {"PercentBased": False}})
    return lines


def invoice_body(client: QBClient, invoice: Invoice, customer_id: str, facts: dict[str, Any], *,
                 refresh_items: bool = False) -> dict[str, Any]:
    _check_currency(client, invoice, facts)
    tax_code, non_us = _tax_code(client, facts)
    lines = _lines(client, invoice, tax_code, facts, refresh_items=refresh_items)
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer_id}, "Line": lines, "CurrencyRef": {"value": invoice.currency},
        "TxnDate": invoice.issue_date.isoformat(), "PrivateNote": reference_for(invoice.id),
    }
    if invoice.due_date:
        body["DueDate"] = invoice.due_date.isoformat()
    if invoice.notes:
        body["CustomerMemo"] = {"value": invoice.notes[:1000]}
    if non_us:
        body["GlobalTaxCalculation"] = "TaxInclusive"  # the billed amounts already include any tax
    if client.settings.use_local_invoice_numbers and facts["custom_txn_numbers"]:
        if len(invoice.number) > DOC_NUMBER_MAX:
            raise PermanentError(f"Invoice number {invoice.number!r} is longer than QuickBooks' {DOC_NUMBER_MAX} "
                                 f"characters; set use_local_invoice_numbers=false to let QuickBooks number invoices",
                                 code="doc_number_too_long")
        body["DocNumber"] = invoice.number
    return body


def _remote(record: dict[str, Any], adopted: bool) -> RemoteInvoice:
    return RemoteInvoice(remote_id=str(record["Id"]), remote_number=str(record.get("DocNumber") or "") or None,
                         adopted=adopted)


def _currency_mismatch(exc: QBOFault) -> bool:
    return exc.code == BUSINESS_VALIDATION and "currency" in exc.detail.lower()


def _stale_item(exc: QBOFault) -> bool:
    """§2: an ItemRef to a missing item (2500 naming it), or a reference to something inactive (610, which does
    not say what: the items are looked up again, which costs requests only in this failure)."""
    return exc.code == OBJECT_NOT_FOUND or (exc.code == INVALID_REFERENCE and "ItemRef" in f"{exc.element} {exc}")


def push_invoice(ctx: ProviderContext, invoice: Invoice, remote_contact_id: str) -> RemoteInvoice:
    client = QBClient(ctx)
    facts = company_facts(client)
    customer_id = str(remote_contact_id)
    _check_currency(client, invoice, facts)
    if invoice.currency != facts["home_currency"]:
        customer_id = _customer_for_currency(client, invoice, customer_id)
    refresh_items = False
    for attempt in (1, 2):
        body = invoice_body(client, invoice, customer_id, facts, refresh_items=refresh_items)
        # The same logical write always carries the same requestid (the exchange rate aside, which may move
        # between attempts): a retry after a lost answer is answered with the original invoice (§2).
        rid = request_id("invoice", invoice.id, body)
        if invoice.currency != facts["home_currency"]:
            body["ExchangeRate"] = exchange_rate(client, invoice.currency, invoice.issue_date.isoformat())
        try:
            created = client.post("/invoice", body, request_id=rid).get("Invoice") or {}
        except QBOFault as exc:
            if exc.code == DUPLICATE_DOC_NUMBER and "DocNumber" in body:
                return _adopt_by_number(client, invoice)
            if attempt == 1 and _currency_mismatch(exc):
                # §5: the mapped customer bills in another currency; use (or make) one in this currency.
                _cache_put(client, f"currency-customer:{remote_contact_id}:{invoice.currency}", None)
                customer_id = _upsert(client, invoice.customer, invoice.currency)
                _cache_put(client, f"currency-customer:{remote_contact_id}:{invoice.currency}", customer_id)
                continue
            if attempt == 1 and _stale_item(exc) and any(line.product_code for line in invoice.lines):
                # a remembered item was deleted or made inactive in QuickBooks: look the products up again
                refresh_items = True
                continue
            raise
        break
    if not created.get("Id"):
        raise PermanentError("QuickBooks created an invoice but sent no Id")
    total = Decimal(str(created.get("TotalAmt"))) if created.get("TotalAmt") is not None else None
    if total is not None and total != invoice.total:
        raise PermanentError(
            f"QuickBooks invoice {created.get('DocNumber') or created['Id']} was created with total {total} but "
            f"invoice {invoice.number} totals {invoice.total} {invoice.currency} (tax settings in QuickBooks?). "
            f"Check it in QuickBooks and void it if wrong; retrying will adopt it.", code="total_mismatch")
    return _remote(created, adopted=False)


def _ours(record: dict[str, Any], invoice: Invoice) -> bool:
    return str(record.get("PrivateNote") or "").strip() == reference_for(invoice.id)


def _adopt_by_number(client: QBClient, invoice: Invoice) -> RemoteInvoice:
    """QuickBooks already has this DocNumber (6140): ours (a lost answer) when its PrivateNote is our reference."""
    found = client.query(f"SELECT * FROM Invoice WHERE DocNumber = {quote(invoice.number)}").get("Invoice") or []
    for record in found:
        if _ours(record, invoice):
            return _remote(record, adopted=True)
    raise PermanentError(f"QuickBooks already has invoice number {invoice.number} for another invoice; renumber one "
                         f"of them, or set use_local_invoice_numbers=false, then retry", code=DUPLICATE_DOC_NUMBER)


def find_invoice(ctx: ProviderContext, invoice: Invoice) -> RemoteInvoice | None:
    """The lost-response check: by DocNumber when we send numbers, else among the invoices of its date;
    either way confirmed by the reference in PrivateNote (PrivateNote itself is not queryable)."""
    client = QBClient(ctx)
    if queryable(invoice.number) and client.settings.use_local_invoice_numbers:
        found = client.query(f"SELECT * FROM Invoice WHERE DocNumber = {quote(invoice.number)}").get("Invoice") or []
        for record in found:
            if _ours(record, invoice):
                return _remote(record, adopted=True)
        if company_facts(client)["custom_txn_numbers"]:
            return None
    start = 1
    while True:
        page = client.query(f"SELECT * FROM Invoice WHERE TxnDate = '{invoice.issue_date.isoformat()}' "
                            f"STARTPOSITION {start} MAXRESULTS 1000").get("Invoice") or []
        for record in page:
            if _ours(record, invoice):
                return _remote(record, adopted=True)
        if len(page) < 1000:
            return None
        start += 1000


def void_remote_invoice(ctx: ProviderContext, remote_invoice_id: str) -> None:
    """§4 Void with the current SyncToken; a stale token (5010: someone changed it meanwhile, e.g. a payment)
    is re-read and retried."""
    client = QBClient(ctx)
    for attempt in range(1, VOID_ATTEMPTS + 1):
        try:
            record = client.get(f"/invoice/{remote_invoice_id}").get("Invoice") or {}
        except QBOFault as exc:
            if exc.code == OBJECT_NOT_FOUND:
                log.info("quickbooks: invoice %s is deleted in QuickBooks; nothing to void", remote_invoice_id)
                return
            raise
        body = {"Id": str(remote_invoice_id), "SyncToken": str(record.get("SyncToken") or "0")}
        try:
            client.post("/invoice", body, {"operation": "void"},
                        request_id=request_id("void", client.realm_id, body))
            return
        except QBOFault as exc:
            if exc.code != STALE_OBJECT or attempt == VOID_ATTEMPTS:
                raise
            log.info("quickbooks: invoice %s changed while voiding (stale SyncToken); re-reading", remote_invoice_id)
