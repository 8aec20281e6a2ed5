"""The emulated companies (realms) and the accounting rules their API enforces.

Every rule cites its section of /work/shared/QUICKBOOKS.md. Money is ``Decimal``, rendered as JSON numbers.
Uncertain points ([U] in the facts file) are switches on :class:`CompanyConfig` / :class:`Rules`.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from . import errors as E
from .errors import COMPANY_TZ, QBOError, qbo_time

CENT = Decimal("0.01")
ENTITIES = ("Customer", "Vendor", "Employee", "Item", "Account", "Invoice", "Payment", "TaxCode")
NAME_HOLDERS = ("Customer", "Vendor", "Employee")  # §4 Customer: DisplayName unique across these


def money(value: Any, element: str = "") -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise E.validation(E.UNSUPPORTED_PROPERTY, f"Property Name:Can not deserialize value {value!r}",
                           element) from None
    if not result.is_finite():
        raise E.validation(E.UNSUPPORTED_PROPERTY, f"Property Name:invalid number {value!r}", element)
    return result.quantize(CENT, ROUND_HALF_UP)


@dataclass
class Rules:
    """Emulator-wide switches for the uncertain points."""

    # §2 requestid: replay failed answers too? Undocumented [U]; default: only successes are remembered.
    replay_failed_requests: bool = False
    # §2 SyncToken: does a payment applied to an invoice bump the invoice's SyncToken? [U]
    payment_bumps_invoice_synctoken: bool = True
    # §4 Customer: some 6240 details end ": Id=<existing id>" [U]
    duplicate_name_reports_id: bool = True
    # §5: an omitted ExchangeRate is stored as 1 (observed 2024); False: fill in the company's rate.
    missing_exchange_rate_is_one: bool = True
    # §7 CDC: look-back limit and object cap.
    cdc_lookback_days: int = 30
    cdc_max_objects: int = 1000
    # §4 Invoice DiscountLineDetail: refused (6000) when SalesFormsPrefs.AllowDiscount is off? [U]
    discount_needs_preference: bool = True
    # §4 Payment void: do the voided payment's lines keep their LinkedTxn (amounts 0)? [U]
    voided_payment_keeps_links: bool = True


@dataclass
class CompanyConfig:
    """Per-company settings (§4 Preferences/CompanyInfo, §5, §6)."""

    name: str = "Emulated Company"
    country: str = "US"
    home_currency: str = "USD"
    multicurrency: bool = False
    custom_txn_numbers: bool = True
    ast: bool = True  # US Automated Sales Tax (PartnerTaxEnabled)
    ast_rate: Decimal = Decimal("0.0825")  # a fixed test rate stands in for address-based AST (§9)
    allow_discount: bool = False  # §4 Preferences SalesFormsPrefs.AllowDiscount (default off [U])


@dataclass
class Change:
    at: float
    entity: str
    entity_id: str
    operation: str  # Create, Update, Delete, Void, Merge (§7)


@dataclass
class Company:
    realm_id: str
    config: CompanyConfig
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {e: {} for e in ENTITIES})
    next_ids: dict[str, int] = field(default_factory=dict)
    currencies: dict[str, Decimal] = field(default_factory=dict)  # active foreign currencies → rate to home
    request_ids: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    next_doc_number: int = 1001
    clock_offset: float = 0.0


class CompanyStore:
    """All companies; one lock (shared with the rest of the emulator) guards everything."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.lock: threading.RLock = threading.RLock()
        self.companies: dict[str, Company] = {}
        self._next_realm = 9130350000000000
        self.listeners: list[Any] = []  # called with (realm_id, Change) after each change

    # ------------------------------------------------------------------ setup
    def add_company(self, realm_id: str | None = None, **config: Any) -> str:
        with self.lock:
            if realm_id is None:
                self._next_realm += 1
                realm_id = str(self._next_realm)
            if realm_id in self.companies:
                raise ValueError(f"company {realm_id} exists")
            cfg = CompanyConfig(**{k: v for k, v in config.items() if v is not None})
            cfg.ast_rate = Decimal(str(cfg.ast_rate))
            company = Company(realm_id, cfg)
            self.companies[realm_id] = company
            self._seed(company)
            return realm_id

    def _seed(self, c: Company) -> None:
        """§4 Item "Sandbox default": a ``Services`` item and a chart of accounts; §6 tax codes."""
        for name, kind, sub in (("Services", "Income", "ServiceFeeIncome"),
                                ("Sales of Product Income", "Income", "SalesOfProductIncome"),
                                ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
                                ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
                                ("Cost of Goods Sold", "Cost of Goods Sold", "SuppliesMaterialsCogs")):
            self._insert(c, "Account", {"Name": name, "FullyQualifiedName": name, "AccountType": kind,
                                        "AccountSubType": sub, "Active": True,
                                        "Classification": "Revenue" if kind == "Income" else "Asset",
                                        "CurrencyRef": {"value": c.config.home_currency}}, record_change=False)
        self._insert(c, "Item", {"Name": "Services", "Type": "Service", "Active": True, "Taxable": False,
                                 "IncomeAccountRef": {"value": "1", "name": "Services"}}, record_change=False)
        if c.config.country != "US":
            # §6 non-US: TaxCode Ids with rates (e.g. "5" = 20% S VAT in the UK); ours: a standard and a zero code.
            for name, rate in (("Standard", Decimal("0.20")), ("Zero-rated", Decimal("0")),
                               ("Exempt", Decimal("0"))):
                self._insert(c, "TaxCode", {"Name": name, "Active": True, "Taxable": rate > 0,
                                            "RateValue": rate}, record_change=False)

    def company(self, realm_id: str) -> Company:
        c = self.companies.get(realm_id)
        if c is None:
            raise E.forbidden("Company not found for this realm")
        return c

    def now(self, c: Company) -> float:
        return time.time() + c.clock_offset

    def today(self, c: Company) -> str:
        return dt.datetime.fromtimestamp(self.now(c), COMPANY_TZ).date().isoformat()

    # ------------------------------------------------------------------ records
    def _insert(self, c: Company, entity: str, data: dict[str, Any], *, record_change: bool = True) -> dict[str, Any]:
        n = c.next_ids.get(entity, 0) + 1
        c.next_ids[entity] = n
        stamp = qbo_time(self.now(c))
        record = {"Id": str(n), **data, "domain": "QBO", "sparse": False, "SyncToken": "0",
                  "MetaData": {"CreateTime": stamp, "LastUpdatedTime": stamp}, "_updated": self.now(c)}
        c.records[entity][record["Id"]] = record
        if record_change:
            self._changed(c, entity, record["Id"], "Create")
        return record

    def _touch(self, c: Company, entity: str, record: dict[str, Any], operation: str, *, bump: bool = True) -> None:
        if bump:
            record["SyncToken"] = str(int(record["SyncToken"]) + 1)  # §2 SyncToken: incremented on each change
        record["MetaData"]["LastUpdatedTime"] = qbo_time(self.now(c))
        record["_updated"] = self.now(c)
        self._changed(c, entity, record["Id"], operation)

    def touch(self, c: Company, entity: str, record: dict[str, Any], operation: str) -> None:
        """A modification made in QuickBooks itself (SyncToken bumped, change recorded)."""
        self._touch(c, entity, record, operation)

    def _changed(self, c: Company, entity: str, entity_id: str, operation: str) -> None:
        change = Change(self.now(c), entity, entity_id, operation)
        c.changes.append(change)
        for listener in list(self.listeners):
            listener(c.realm_id, change)

    @staticmethod
    def public(record: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}

    def get(self, c: Company, entity: str, entity_id: str) -> dict[str, Any]:
        record = c.records.get(entity, {}).get(str(entity_id))
        if record is None or record.get("_deleted"):
            raise E.not_found(entity, str(entity_id))
        return record

    def records(self, c: Company, entity: str) -> list[dict[str, Any]]:
        return [self.public(r) for r in c.records.get(entity, {}).values() if not r.get("_deleted")]

    def _ref(self, c: Company, entity: str, ref: Any, element: str, *, required: bool = True) -> dict[str, Any] | None:
        """§2 references: ``value`` is authoritative; a missing Id → 2500, an inactive one → 610."""
        if ref is None or (isinstance(ref, dict) and not ref.get("value")):
            if required:
                raise E.validation(E.REQUIRED_PARAM_MISSING, f"Required parameter {element} is missing in the "
                                   f"request", element)
            return None
        if not isinstance(ref, dict):
            raise E.validation(E.UNSUPPORTED_PROPERTY, f"Property Name:{element} must be an object", element)
        record = c.records.get(entity, {}).get(str(ref["value"]))
        if record is None or record.get("_deleted"):
            raise E.validation(E.INVALID_REFERENCE, f"Invalid Reference Id : {element}", element)
        if record.get("Active") is False:
            raise E.not_found(entity, str(ref["value"]))
        return record

    def _check_sync(self, record: dict[str, Any], body: dict[str, Any]) -> None:
        token = body.get("SyncToken")
        if token is None:
            raise E.validation(E.REQUIRED_PARAM_MISSING, "Required parameter SyncToken is missing in the request",
                               "SyncToken")
        if str(token) != record["SyncToken"]:  # §2: mismatch → 400 code 5010
            raise E.validation(E.STALE_OBJECT, "Stale Object Error : You and Emulator User were working on this at "
                               "the same time. Emulator User finished before you did, so your work was not saved.")

    @staticmethod
    def _unknown(body: dict[str, Any], allowed: set[str], where: str) -> None:
        """§2 code 2010: an unknown property in the body."""
        for key in body:
            if key not in allowed:
                raise E.validation(E.UNSUPPORTED_PROPERTY, f'Property Name:Unrecognized field "{key}" '
                                   f"(class {where}), not marked as ignorable", key)

    # ------------------------------------------------------------------ names
    def _name_taken(self, c: Company, name: str, entities: tuple[str, ...], except_id: str | None = None,
                    except_entity: str | None = None) -> dict[str, Any] | None:
        wanted = name.strip().lower()  # case-insensitive [U]; inactive holders count too [U]
        for entity in entities:
            for record in c.records[entity].values():
                if record.get("_deleted") or (entity == except_entity and record["Id"] == except_id):
                    continue
                held = str(record.get("DisplayName") or record.get("Name") or "").strip().lower()
                if held == wanted:
                    return record
        return None

    def _duplicate_name(self, holder: dict[str, Any]) -> QBOError:
        detail = ("The name supplied already exists. : Another customer, vendor or employee is already using this "
                  "name. Please use a different name.")
        if self.rules.duplicate_name_reports_id:
            detail += f" : Id={holder['Id']}"
        return E.validation(E.DUPLICATE_NAME, detail)

    def create_name(self, c: Company, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """Customer (and the Vendor/Employee name holders seeded through the control API)."""
        self._unknown(body, {"DisplayName", "GivenName", "MiddleName", "FamilyName", "Title", "Suffix",
                             "CompanyName", "PrimaryEmailAddr", "BillAddr", "ShipAddr", "CurrencyRef", "Active",
                             "Notes", "PrimaryPhone", "Taxable", "DefaultTaxCodeRef", "PrintOnCheckName",
                             "PrimaryTaxIdentifier", "domain", "sparse"}, f"com.intuit.schema.finance.v3.{entity}")
        name = str(body.get("DisplayName") or "").strip()
        if not name:
            # §4 Customer: DisplayName derived from the name parts when omitted.
            parts = [str(body.get(k) or "").strip() for k in ("Title", "GivenName", "MiddleName", "FamilyName",
                                                              "Suffix")]
            name = " ".join(p for p in parts if p)
        if not name:
            raise E.validation(E.REQUIRED_PARAM_MISSING, "Required parameter DisplayName is missing in the request",
                               "DisplayName")
        if len(name) > 500:
            raise E.validation(E.STRING_LENGTH, "String length is either shorter or longer than supported by "
                               "specification. DisplayName max 500", "DisplayName")
        if any(ch in name for ch in ":\t\n"):  # §4: colon, tab and newline are not allowed [code U]
            raise E.business("Display name cannot contain a colon (:), tab or newline")
        holder = self._name_taken(c, name, NAME_HOLDERS)
        if holder is not None:
            raise self._duplicate_name(holder)
        currency = self._currency_of_new_name(c, body.get("CurrencyRef"))
        email = body.get("PrimaryEmailAddr")
        data = {k: v for k, v in body.items() if k not in ("domain", "sparse")}
        data.update({"DisplayName": name, "Active": body.get("Active", True) is not False,
                     "Balance": Decimal("0"), "CurrencyRef": {"value": currency}})
        if "FullyQualifiedName" not in data:
            data["FullyQualifiedName"] = name
        if isinstance(email, dict) and email.get("Address"):
            data["PrimaryEmailAddr"] = {"Address": str(email["Address"])}
        return self._insert(c, entity, data)

    def _currency_of_new_name(self, c: Company, ref: Any) -> str:
        """§5: customers default to the home currency; a foreign one needs multicurrency and an active currency."""
        home = c.config.home_currency
        code = str(ref.get("value") or "").upper() if isinstance(ref, dict) else ""
        if not code or code == home:
            return home
        if not c.config.multicurrency:
            raise E.business(f"Multicurrency is not enabled for this company; currency {code} cannot be used")
        if code not in c.currencies:
            raise E.business(f"Currency {code} is not active in this company's currency list")
        return code

    def update_customer(self, c: Company, body: dict[str, Any]) -> dict[str, Any]:
        """Sparse or full update (§2 "SyncToken and updates")."""
        record = self.get(c, "Customer", str(body.get("Id")))
        self._check_sync(record, body)
        sparse = body.get("sparse") is True
        changes = {k: v for k, v in body.items() if k not in ("Id", "SyncToken", "sparse", "domain", "MetaData")}
        if "DisplayName" in changes:
            name = str(changes["DisplayName"]).strip()
            holder = self._name_taken(c, name, NAME_HOLDERS, record["Id"], "Customer")
            if holder is not None:
                raise self._duplicate_name(holder)
        if "CurrencyRef" in changes:
            new = str((changes["CurrencyRef"] or {}).get("value") or "").upper()
            if new and new != record["CurrencyRef"]["value"]:
                raise E.business("You can't change the currency of a customer")  # §4/§5: immutable [U text]
        if not sparse:
            keep = {"Id", "SyncToken", "domain", "sparse", "MetaData", "_updated", "Balance", "CurrencyRef",
                    "DisplayName", "FullyQualifiedName", "Active"}
            for key in [k for k in record if k not in keep]:
                record.pop(key)
        record.update(changes)
        self._touch(c, "Customer", record, "Update")
        return record

    # ------------------------------------------------------------------ items
    def create_item(self, c: Company, body: dict[str, Any]) -> dict[str, Any]:
        self._unknown(body, {"Name", "Type", "IncomeAccountRef", "ExpenseAccountRef", "AssetAccountRef", "UnitPrice",
                             "Description", "Sku", "Active", "Taxable", "SalesTaxCodeRef", "TrackQtyOnHand",
                             "QtyOnHand", "InvStartDate", "domain", "sparse"}, "com.intuit.schema.finance.v3.Item")
        name = str(body.get("Name") or "").strip()
        if not name:
            raise E.validation(E.REQUIRED_PARAM_MISSING, "Required parameter Name is missing in the request", "Name")
        if len(name) > 100:
            raise E.validation(E.STRING_LENGTH, "Name max 100", "Name")
        if ":" in name:
            raise E.business("Item name cannot contain a colon (:)")
        holder = self._name_taken(c, name, ("Item",))  # §4 Item: Name unique among items, clash → 6240
        if holder is not None:
            raise self._duplicate_name(holder)
        kind = str(body.get("Type") or "Service")
        if kind not in ("Service", "NonInventory", "Inventory", "Group", "Category"):
            raise E.business(f"Invalid item type {kind}")
        if kind in ("Service", "NonInventory", "Inventory"):
            account = self._ref(c, "Account", body.get("IncomeAccountRef"), "IncomeAccountRef")
            if account is not None and account.get("AccountType") not in ("Income", "Other Income"):
                raise E.business("Income account must be of type Income or Other Income")  # §4 Item
        data = {k: v for k, v in body.items() if k not in ("domain", "sparse")}
        data.update({"Name": name, "FullyQualifiedName": name, "Type": kind, "Active": body.get("Active", True)
                     is not False, "Taxable": bool(body.get("Taxable", False))})
        if "UnitPrice" in body:
            data["UnitPrice"] = money(body["UnitPrice"], "UnitPrice")
        return self._insert(c, "Item", data)

    # ------------------------------------------------------------------ invoices
    def create_invoice(self, c: Company, body: dict[str, Any]) -> dict[str, Any]:
        self._unknown(body, {"CustomerRef", "Line", "DocNumber", "AutoDocNumber", "TxnDate", "DueDate",
                             "PrivateNote", "CustomerMemo", "BillEmail", "CurrencyRef", "ExchangeRate",
                             "GlobalTaxCalculation", "TxnTaxDetail", "SalesTermRef", "ShipAddr", "BillAddr",
                             "ClassRef", "DepartmentRef", "CustomField", "EmailStatus", "domain", "sparse",
                             "ApplyTaxAfterDiscount", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment"},
                     "com.intuit.schema.finance.v3.Invoice")
        customer = self._ref(c, "Customer", body.get("CustomerRef"), "CustomerRef")
        assert customer is not None
        cur_code = self._txn_currency(c, customer, body.get("CurrencyRef"))
        rate = self._exchange_rate(c, cur_code, body.get("ExchangeRate"))
        lines_in = body.get("Line")
        if not isinstance(lines_in, list) or not any(
                isinstance(line, dict) and line.get("DetailType") in ("SalesItemLineDetail", "GroupLineDetail")
                for line in lines_in):
            raise E.validation(E.REQUIRED_PARAM_MISSING, "Required parameter Line.SalesItemLineDetail is missing "
                               "in the request", "Line.SalesItemLineDetail")
        non_us = c.config.country != "US"
        calc = str(body.get("GlobalTaxCalculation") or "TaxExcluded")
        lines: list[dict[str, Any]] = []
        subtotal = Decimal("0")
        tax = Decimal("0")
        discounts: list[dict[str, Any]] = []
        for n, line in enumerate(lines_in, start=1):
            if isinstance(line, dict) and line.get("DetailType") == "DiscountLineDetail":
                discounts.append(line)
                continue
            out, taxed = self._invoice_line(c, line, n, non_us, calc)
            lines.append(out)
            subtotal += out["Amount"]
            tax += taxed
        discount_lines, off = self._discount(c, discounts, subtotal, len(lines))
        if off and tax:  # §4 Invoice: the discount applies before tax; tax scaled on the discounted base
            tax = tax * (subtotal - off) / subtotal if subtotal else tax
        tax = tax.quantize(CENT, ROUND_HALF_UP)
        total = subtotal - off + tax if calc != "TaxInclusive" else subtotal - off
        doc = self._doc_number(c, body)
        txn_date = str(body.get("TxnDate") or self.today(c))
        data: dict[str, Any] = {
            "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]},
            "Line": [*lines, {"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
                     *discount_lines],
            "TxnDate": txn_date, "DueDate": str(body.get("DueDate") or txn_date),
            "CurrencyRef": {"value": cur_code}, "ExchangeRate": rate,
            "TotalAmt": total, "Balance": total, "HomeTotalAmt": (total * rate).quantize(CENT, ROUND_HALF_UP),
            "HomeBalance": (total * rate).quantize(CENT, ROUND_HALF_UP),
            "TxnTaxDetail": {"TotalTax": tax}, "LinkedTxn": [], "EmailStatus": "NotSet",
        }
        if doc is not None:
            data["DocNumber"] = doc
        if non_us:
            data["GlobalTaxCalculation"] = calc
        for key in ("PrivateNote", "CustomerMemo", "BillEmail", "SalesTermRef", "BillAddr", "ShipAddr",
                    "CustomField", "ClassRef", "DepartmentRef"):
            if key in body:
                data[key] = copy.deepcopy(body[key])
        record = self._insert(c, "Invoice", data)
        customer["Balance"] = customer.get("Balance", Decimal("0")) + total
        return record

    def _discount(self, c: Company, given: list[dict[str, Any]], subtotal: Decimal,
                  count: int) -> tuple[list[dict[str, Any]], Decimal]:
        """§4 Invoice: a ``DiscountLineDetail`` line (an amount, or ``PercentBased`` with ``DiscountPercent`` of
        the subtotal); the answer lists it after the SubTotal line and TotalAmt = lines + tax - discount."""
        if not given:
            return [], Decimal("0")
        if len(given) > 1:
            raise E.business("Only one discount line is allowed on a transaction")  # [U text]
        if not c.config.allow_discount and self.rules.discount_needs_preference:
            raise E.business("Discounts are turned off for this company (SalesFormsPrefs.AllowDiscount)")  # [U]
        line = given[0]
        self._unknown(line, {"Id", "LineNum", "Description", "Amount", "DetailType", "DiscountLineDetail"},
                      "com.intuit.schema.finance.v3.Line")
        detail = line.get("DiscountLineDetail") or {}
        self._unknown(detail, {"PercentBased", "DiscountPercent", "DiscountAccountRef"},
                      "com.intuit.schema.finance.v3.DiscountLineDetail")
        if detail.get("PercentBased") is True:
            percent = Decimal(str(detail.get("DiscountPercent") or 0))
            amount = (subtotal * percent / 100).quantize(CENT, ROUND_HALF_UP)
        else:
            if "Amount" not in line:
                raise E.validation(E.REQUIRED_PARAM_MISSING, "Required parameter Line.Amount is missing in the "
                                   "request", "Line.Amount")
            amount = money(line["Amount"], "Line.Amount")
        if amount < 0 or amount > subtotal:
            raise E.business("The discount must be between zero and the subtotal")  # [U text]
        out_detail: dict[str, Any] = {"PercentBased": detail.get("PercentBased") is True}
        if out_detail["PercentBased"]:
            out_detail["DiscountPercent"] = Decimal(str(detail.get("DiscountPercent") or 0))
        return ([{"Id": str(count + 1), "LineNum": count + 1, "Amount": amount, "DetailType": "DiscountLineDetail",
                  "DiscountLineDetail": out_detail}], amount)

    def _txn_currency(self, c: Company, customer: dict[str, Any], ref: Any) -> str:
        """§5: the transaction currency defaults to the customer's and must equal it."""
        own = customer["CurrencyRef"]["value"]
        code = str(ref.get("value") or "").upper() if isinstance(ref, dict) else ""
        if code and code != own:
            raise E.business(f"The currency of the transaction ({code}) must match the currency of the customer "
                             f"({own})")
        if own != c.config.home_currency and not c.config.multicurrency:
            raise E.business(f"Multicurrency is not enabled; {own} cannot be used")
        return own

    def _exchange_rate(self, c: Company, code: str, given: Any) -> Decimal:
        if code == c.config.home_currency:
            return Decimal("1")
        if given is not None:
            try:
                rate = Decimal(str(given))
            except InvalidOperation:
                raise E.validation(E.UNSUPPORTED_PROPERTY, "Property Name:ExchangeRate", "ExchangeRate") from None
            if rate <= 0:
                raise E.business("Exchange rate must be positive")
            return rate
        # §5: if omitted via the API, QBO stored 1 (observed 2024) — switchable.
        return Decimal("1") if self.rules.missing_exchange_rate_is_one else c.currencies.get(code, Decimal("1"))

    def _invoice_line(self, c: Company, line: Any, n: int, non_us: bool, calc: str) -> tuple[dict[str, Any],
                                                                                                Decimal]:
        if not isinstance(line, dict):
            raise E.validation(E.UNSUPPORTED_PROPERTY, "Property Name:Line must be an object", "Line")
        self._unknown(line, {"Id", "LineNum", "Description", "Amount", "DetailType", "SalesItemLineDetail",
                             "GroupLineDetail", "DescriptionOnly", "DiscountLineDetail", "SubTotalLineDetail"},
                      "com.intuit.schema.finance.v3.Line")
        kind = line.get("DetailType")
        if kind == "DescriptionOnly" or kind == "SubTotalLineDetail":
            return ({"Id": str(n), "LineNum": n, "Description": line.get("Description"),
                     "Amount": Decimal("0"), "DetailType": "DescriptionOnly", "DescriptionOnly": {}},
                    Decimal("0"))
        if "Amount" not in line:
            raise E.validation(E.REQUIRED_PARAM_MISSING, "Required parameter Line.Amount is missing in the request",
                               "Line.Amount")
        amount = money(line["Amount"], "Line.Amount")
        detail = line.get("SalesItemLineDetail")
        if kind != "SalesItemLineDetail" or not isinstance(detail, dict):
            raise E.validation(E.REQUIRED_PARAM_MISSING, "Required parameter Line.SalesItemLineDetail is missing "
                               "in the request", "Line.SalesItemLineDetail")
        # §4 Invoice: Amount inside SalesItemLineDetail → 2010.
        self._unknown(detail, {"ItemRef", "Qty", "UnitPrice", "TaxCodeRef", "ServiceDate", "ClassRef",
                               "ItemAccountRef", "DiscountAmt", "DiscountRate", "TaxInclusiveAmt"},
                      "com.intuit.schema.finance.v3.SalesItemLineDetail")
        if "ItemRef" in detail:
            item = self._ref(c, "Item", detail.get("ItemRef"), "Line.SalesItemLineDetail.ItemRef")
        else:
            item = c.records["Item"]["1"]  # §4: omitted ItemRef files the line under a default item
        assert item is not None
        out_detail: dict[str, Any] = {"ItemRef": {"value": item["Id"], "name": item["Name"]}}
        if "Qty" in detail and "UnitPrice" in detail:
            qty, price = Decimal(str(detail["Qty"])), Decimal(str(detail["UnitPrice"]))
            if (qty * price).quantize(CENT, ROUND_HALF_UP) != amount:  # §4: Amount must equal Qty * UnitPrice
                raise E.validation(E.LINE_MATH, f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}")
            out_detail.update({"Qty": qty, "UnitPrice": price})
        elif "Qty" in detail:
            out_detail["Qty"] = Decimal(str(detail["Qty"]))
        taxed = Decimal("0")
        code = detail.get("TaxCodeRef")
        code_value = str(code.get("value") or "") if isinstance(code, dict) else ""
        if non_us:
            if not code_value:  # §6: non-US companies require a TaxCodeRef on every line → 6000
                raise E.business("Make sure all your transactions have a VAT rate before you save.")
            tax_code = self._ref(c, "TaxCode", code, "Line.SalesItemLineDetail.TaxCodeRef")
            assert tax_code is not None
            rate = Decimal(str(tax_code.get("RateValue", 0)))
            if calc == "TaxInclusive":
                taxed = amount - amount / (1 + rate)
            elif calc != "NotApplicable":
                taxed = amount * rate
            out_detail["TaxCodeRef"] = {"value": tax_code["Id"]}
        else:
            if code_value and code_value not in ("TAX", "NON"):
                raise E.validation(E.INVALID_REFERENCE, "Invalid Reference Id : Line.SalesItemLineDetail.TaxCodeRef",
                                   "Line.SalesItemLineDetail.TaxCodeRef")
            marker = code_value or ("TAX" if item.get("Taxable") else "NON")  # §6: defaults from Item.Taxable
            if marker == "TAX" and c.config.ast:
                taxed = amount * c.config.ast_rate
            out_detail["TaxCodeRef"] = {"value": marker}
        for key in ("ServiceDate", "ClassRef"):
            if key in detail:
                out_detail[key] = detail[key]
        return ({"Id": str(n), "LineNum": n, "Description": line.get("Description"), "Amount": amount,
                 "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": out_detail}, taxed)

    def _doc_number(self, c: Company, body: dict[str, Any]) -> str | None:
        """§4 Invoice DocNumber: custom numbers on → given (unique, ≤ 21) or AutoDocNumber; off → auto [U]."""
        given = body.get("DocNumber")
        if not c.config.custom_txn_numbers or body.get("AutoDocNumber") is True:
            return self._next_doc(c)
        if given in (None, ""):
            return None
        doc = str(given)
        if len(doc) > 21:
            raise E.validation(E.STRING_LENGTH, "String length is either shorter or longer than supported by "
                               "specification. DocNumber max 21", "DocNumber")
        for other in c.records["Invoice"].values():
            if not other.get("_deleted") and other.get("DocNumber") == doc:
                raise E.validation(E.DUPLICATE_DOC_NUMBER, "Duplicate Document Number Error : You must specify a "
                                   f"different number. This number has already been used. DocNumber={doc} is "
                                   f"assigned to TxnType=Invoice with TxnId={other['Id']}")
        return doc

    def _next_doc(self, c: Company) -> str:
        used = {r.get("DocNumber") for r in c.records["Invoice"].values()}
        while str(c.next_doc_number) in used:
            c.next_doc_number += 1
        doc = str(c.next_doc_number)
        c.next_doc_number += 1
        return doc

    def void_invoice(self, c: Company, body: dict[str, Any]) -> dict[str, Any]:
        """§4 Void: amounts zeroed, PrivateNote "Voided", SyncToken bumped, record kept; payments unapplied [U]."""
        record = self.get(c, "Invoice", str(body.get("Id")))
        self._check_sync(record, body)
        customer = c.records["Customer"].get(record["CustomerRef"]["value"])
        if customer is not None:
            customer["Balance"] = customer.get("Balance", Decimal("0")) - record["Balance"]
        for link in record.get("LinkedTxn", []):
            if link.get("TxnType") == "Payment":
                payment = c.records["Payment"].get(link["TxnId"])
                if payment is not None:
                    self._unlink_payment(c, payment, record["Id"])
        for line in record["Line"]:
            line["Amount"] = Decimal("0")
        record.update({"TotalAmt": Decimal("0"), "Balance": Decimal("0"), "HomeTotalAmt": Decimal("0"),
                       "HomeBalance": Decimal("0"), "PrivateNote": "Voided", "LinkedTxn": []})
        record["TxnTaxDetail"] = {"TotalTax": Decimal("0")}
        record["_voided"] = True
        self._touch(c, "Invoice", record, "Void")
        return record

    def delete_txn(self, c: Company, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """§2/§4 delete: ``{"status": "Deleted", ...}``; a later GET gives 610."""
        record = self.get(c, entity, str(body.get("Id")))
        self._check_sync(record, body)
        if entity == "Invoice" and record.get("LinkedTxn"):
            raise E.business("This transaction is linked to a payment; delete the payment first")  # [U]
        if entity == "Payment":  # §4 Payment effects undone: the invoices' balances and LinkedTxn restored
            self._unapply_payment(c, record)
        record["_deleted"] = True
        self._touch(c, entity, record, "Delete")
        return {"status": "Deleted", "domain": "QBO", "Id": record["Id"]}

    # ------------------------------------------------------------------ payments
    def create_payment(self, c: Company, body: dict[str, Any]) -> dict[str, Any]:
        """§4 Payment: lines link invoices; balances drop; the rest is UnappliedAmt."""
        self._unknown(body, {"CustomerRef", "TotalAmt", "Line", "TxnDate", "PaymentRefNum", "PaymentMethodRef",
                             "DepositToAccountRef", "PrivateNote", "CurrencyRef", "ExchangeRate", "domain",
                             "sparse", "ProcessPayment"}, "com.intuit.schema.finance.v3.Payment")
        customer = self._ref(c, "Customer", body.get("CustomerRef"), "CustomerRef")
        assert customer is not None
        if "TotalAmt" not in body:
            raise E.validation(E.REQUIRED_PARAM_MISSING, "Required parameter TotalAmt is missing", "TotalAmt")
        total = money(body["TotalAmt"], "TotalAmt")
        currency = self._txn_currency(c, customer, body.get("CurrencyRef"))
        lines: list[dict[str, Any]] = []
        applied = Decimal("0")
        invoices: list[tuple[dict[str, Any], Decimal]] = []
        for line in body.get("Line") or []:
            amount = money(line.get("Amount"), "Line.Amount")
            links = line.get("LinkedTxn") or []
            if not links:
                raise E.validation(E.REQUIRED_PARAM_MISSING, "Required parameter Line.LinkedTxn is missing",
                                   "Line.LinkedTxn")
            link = links[0]
            invoice = self.get(c, "Invoice", str(link.get("TxnId")))
            if invoice["CustomerRef"]["value"] != customer["Id"] or invoice["CurrencyRef"]["value"] != currency:
                raise E.business("The payment and the invoice must be for the same customer and currency")
            if invoice.get("_voided"):
                raise E.business("A voided transaction cannot be paid")
            if amount > invoice["Balance"]:  # §4: more than the open balance → 6000-series [U]
                raise E.business(f"The amount applied ({amount}) is greater than the open balance "
                                 f"({invoice['Balance']}) of invoice {invoice['Id']}")
            invoices.append((invoice, amount))
            applied += amount
            lines.append({"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]})
        if applied > total:
            raise E.business("The amounts applied are greater than the payment total")
        record = self._insert(c, "Payment", {
            "CustomerRef": {"value": customer["Id"], "name": customer["DisplayName"]}, "TotalAmt": total,
            "UnappliedAmt": total - applied, "Line": lines, "CurrencyRef": {"value": currency},
            "ExchangeRate": self._exchange_rate(c, currency, body.get("ExchangeRate")),
            "TxnDate": str(body.get("TxnDate") or self.today(c)),
            **{k: body[k] for k in ("PaymentRefNum", "PrivateNote") if k in body},
        })
        for invoice, amount in invoices:
            invoice["Balance"] -= amount
            invoice["HomeBalance"] = (invoice["Balance"] * invoice["ExchangeRate"]).quantize(CENT, ROUND_HALF_UP)
            invoice["LinkedTxn"].append({"TxnId": record["Id"], "TxnType": "Payment"})
            customer["Balance"] = customer.get("Balance", Decimal("0")) - amount
            self._touch(c, "Invoice", invoice, "Update", bump=self.rules.payment_bumps_invoice_synctoken)
        return record

    def _unlink_payment(self, c: Company, payment: dict[str, Any], invoice_id: str) -> None:
        for line in payment["Line"]:
            if any(link.get("TxnId") == invoice_id for link in line.get("LinkedTxn", [])):
                payment["UnappliedAmt"] += line["Amount"]
                line["Amount"] = Decimal("0")
                line["LinkedTxn"] = []
        self._touch(c, "Payment", payment, "Update")

    def void_payment(self, c: Company, body: dict[str, Any]) -> dict[str, Any]:
        """§4 Payment void (``operation=update&include=void``): amounts to 0, invoice balances restored [U]."""
        record = self.get(c, "Payment", str(body.get("Id")))
        self._check_sync(record, body)
        self._unapply_payment(c, record)
        for line in record["Line"]:
            line["Amount"] = Decimal("0")
            if not self.rules.voided_payment_keeps_links:
                line["LinkedTxn"] = []
        record.update({"TotalAmt": Decimal("0"), "UnappliedAmt": Decimal("0"), "PrivateNote": "Voided"})
        self._touch(c, "Payment", record, "Void")  # §7: a Void notification (qbo.payment.voided.v1) and CDC
        return record

    def _unapply_payment(self, c: Company, record: dict[str, Any]) -> None:
        """A voided or deleted payment no longer pays its invoices: balances back, links dropped [U details]."""
        customer = c.records["Customer"].get(record["CustomerRef"]["value"])
        for line in record["Line"]:
            for link in line.get("LinkedTxn", []):
                invoice = c.records["Invoice"].get(link.get("TxnId"))
                if invoice is not None and not invoice.get("_deleted"):
                    invoice["Balance"] += line["Amount"]
                    invoice["HomeBalance"] = (invoice["Balance"] * invoice["ExchangeRate"]).quantize(
                        CENT, ROUND_HALF_UP)
                    invoice["LinkedTxn"] = [t for t in invoice["LinkedTxn"] if t.get("TxnId") != record["Id"]]
                    if customer is not None:
                        customer["Balance"] += line["Amount"]
                    self._touch(c, "Invoice", invoice, "Update", bump=self.rules.payment_bumps_invoice_synctoken)

    # ------------------------------------------------------------------ CDC
    def cdc(self, c: Company, entities: list[str], since: dt.datetime) -> list[dict[str, Any]]:
        """§7 ChangeDataCapture: full payloads changed since ``since``; deleted ones as ``status: Deleted``."""
        now = self.now(c)
        if since.timestamp() < now - self.rules.cdc_lookback_days * 86400:
            raise E.validation(E.INVALID_QUERY, f"changedSince must be within the last {self.rules.cdc_lookback_days}"
                               " days")  # [U code]
        out: list[dict[str, Any]] = []
        budget = self.rules.cdc_max_objects
        for entity in entities:
            if entity not in ("Customer", "Item", "Invoice", "Payment", "Account", "Vendor", "Employee"):
                raise E.validation(E.INVALID_QUERY, f"CDC is not supported for {entity}")
            changed = sorted((r for r in c.records[entity].values() if r["_updated"] >= since.timestamp()),
                             key=lambda r: r["_updated"])[:budget]
            budget -= len(changed)
            rows = [{"Id": r["Id"], "status": "Deleted", "domain": "QBO",
                     "MetaData": {"LastUpdatedTime": r["MetaData"]["LastUpdatedTime"]}}
                    if r.get("_deleted") else self.public(r) for r in changed]
            out.append({entity: rows} if rows else {})
        return out
