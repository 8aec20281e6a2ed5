"""The v3 company endpoints (QUICKBOOKS.md §2): ``/v3/company/{realmId}/{entity}…`` with ``minorversion``,
``requestid`` replay, the query and CDC endpoints, Fault envelopes."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from . import errors as E
from . import querylang
from .errors import QBOError, qbo_time
from .httpio import Request, Response, dumps

if TYPE_CHECKING:
    from .server import Emulator

PATH = re.compile(r"^/v3/company/(?P<realm>[^/]+)/(?P<rest>.*)$")
ENTITY_PATHS = {"customer": "Customer", "item": "Item", "invoice": "Invoice", "payment": "Payment",
                "account": "Account", "taxcode": "TaxCode", "vendor": "Vendor", "employee": "Employee"}
CURRENT_MINOR_VERSION = 75  # §2 minorversion: < 75 (or none) is treated as 75
MAX_REQUEST_ID = 50  # §2 requestid: max 50 characters


class Counters:
    def __init__(self) -> None:
        self.lock: threading.RLock = threading.RLock()
        self.counts: dict[tuple[str, str, str], int] = defaultdict(int)

    def add(self, realm: str, method: str, template: str) -> None:
        with self.lock:
            self.counts[(realm, method, template)] += 1

    def snapshot(self, realm: str | None = None) -> dict[str, int]:
        with self.lock:
            return {f"{m} {t}": n for (r, m, t), n in self.counts.items() if realm is None or r == realm}

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()


def _template(rest: str) -> str:
    parts = rest.split("/")
    return "/" + "/".join("{id}" if i > 0 and (p.isdigit() or i == 1) else p for i, p in enumerate(parts))


def _xml(payload: Any) -> bytes:
    """§2: without ``Accept: application/json`` the answer is XML (a plain rendering here)."""
    from xml.sax.saxutils import escape

    def render(key: str, value: Any) -> str:
        if isinstance(value, dict):
            return f"<{key}>" + "".join(render(k, v) for k, v in value.items()) + f"</{key}>"
        if isinstance(value, list):
            return "".join(render(key, v) for v in value)
        return f"<{key}>{escape(str(value))}</{key}>"

    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><IntuitResponse>'
            + "".join(render(k, v) for k, v in payload.items() if k != "time") + "</IntuitResponse>").encode()


class CompanyApi:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.counters = Counters()

    def handle(self, req: Request) -> Response:
        m = PATH.match(req.path)
        if m is None:
            return Response.json(404, {"Fault": {"Error": [{"Message": "Not Found", "code": "404"}]}})
        realm, rest = m.group("realm"), m.group("rest").rstrip("/")
        emu = self.emu
        grant = emu.oauth.check_access(req.headers.get("authorization"), realm)
        self.counters.add(realm, req.method, _template(rest))
        with emu.limiter.admit(realm, grant.client_id):
            delay = req.environ.get("qbo.delay")
            if delay:
                time.sleep(delay)
            return self._answer(req, realm, rest)

    def _answer(self, req: Request, realm: str, rest: str) -> Response:
        emu = self.emu
        store = emu.store
        request_id = req.query.get("requestid")
        if request_id is not None and len(request_id) > MAX_REQUEST_ID:
            raise E.validation(E.STRING_LENGTH, "requestid max 50 characters", "requestid")
        with store.lock:
            company = store.company(realm)
            if request_id and request_id in company.request_ids:
                # §2 requestid: a repeated id is not redone; the original answer comes back.
                status, body, ctype = company.request_ids[request_id]
                return Response(status, body, [("Content-Type", ctype)])
            try:
                payload = self._route(req, company, rest)
                status = 200  # §2: creates answer 200, not 201
            except QBOError as err:
                if not (request_id and store.rules.replay_failed_requests) or err.status in (401, 403, 429):
                    raise
                payload, status = err.body(), err.status
            wants_json = "json" in req.headers.get("accept", "") or req.headers.get("accept", "") in ("", "*/*")
            if wants_json:
                payload_bytes, ctype = dumps(payload), "application/json;charset=UTF-8"
            else:
                payload_bytes, ctype = _xml(json.loads(dumps(payload))), "application/xml"
            if request_id and req.method == "POST":
                company.request_ids[request_id] = (status, payload_bytes, ctype)
            return Response(status, payload_bytes, [("Content-Type", ctype)])

    # ------------------------------------------------------------------------------- routing
    def _body(self, req: Request) -> dict[str, Any]:
        try:
            data = json.loads(req.body or b"{}", parse_float=Decimal)
        except ValueError:
            raise E.validation(E.UNSUPPORTED_PROPERTY, "Request has invalid or unsupported property: malformed "
                               "JSON") from None
        if not isinstance(data, dict):
            raise E.validation(E.UNSUPPORTED_PROPERTY, "the body must be a JSON object")
        return data

    def _route(self, req: Request, company: Any, rest: str) -> dict[str, Any]:
        store = self.emu.store
        parts = rest.split("/")
        head = parts[0]
        out: dict[str, Any]
        if head == "query":
            text = req.query.get("query")
            if req.method == "POST" and text is None:
                text = req.body.decode("utf-8", "replace")  # §2: POST application/text also works
            if not text:
                raise E.validation(E.QUERY_PARSE, "QueryParserError: empty query")
            query = querylang.parse(text)
            records = store.records(company, query.entity)
            out = {"QueryResponse": querylang.run(query, records)}
        elif head == "cdc" and req.method == "GET":
            entities = [e.strip() for e in req.query.get("entities", "").split(",") if e.strip()]
            since_text = req.query.get("changedSince", "")
            try:
                since = dt.datetime.fromisoformat(since_text.replace("Z", "+00:00"))
                if since.tzinfo is None:
                    since = since.replace(tzinfo=dt.UTC)
            except ValueError:
                raise E.validation(E.INVALID_QUERY, f"changedSince is not an ISO 8601 time: {since_text!r}",
                                   "changedSince") from None
            if not entities:
                raise E.validation(E.REQUIRED_PARAM_MISSING, "entities is required", "entities")
            out = {"CDCResponse": [{"QueryResponse": store.cdc(company, entities, since)}]}
        elif head == "companyinfo" and req.method == "GET":
            out = {"CompanyInfo": self._company_info(company)}
        elif head == "preferences" and req.method == "GET":
            out = {"Preferences": self._preferences(company)}
        elif head == "exchangerate" and req.method == "GET":
            code = req.query.get("sourcecurrencycode", "").upper()
            rate = company.currencies.get(code)
            if rate is None:
                raise E.not_found("ExchangeRate", code)
            out = {"ExchangeRate": {"SourceCurrencyCode": code, "TargetCurrencyCode": company.config.home_currency,
                                    "Rate": rate, "AsOfDate": req.query.get("asofdate") or store.today(company)}}
        elif head in ENTITY_PATHS:
            entity = ENTITY_PATHS[head]
            if req.method == "GET" and len(parts) == 2:
                record = store.get(company, entity, parts[1])
                out = {entity: store.public(record)}
                edit = (company.realm_id, entity, record["Id"])
                if edit in self.emu.edits_after_read:
                    # A user edits the record right after this read: the reader's SyncToken goes stale.
                    self.emu.edits_after_read.discard(edit)
                    store.touch(company, entity, record, "Update")
            elif req.method == "POST" and len(parts) == 1:
                out = {entity: self._write(company, entity, req)}
            else:
                raise QBOError(405, "405", f"{req.method} not allowed here", message="Method Not Allowed")
        else:
            raise QBOError(404, "404", f"no resource {unquote_plus(rest)}", message="Not Found")
        out["time"] = qbo_time()
        return out

    def _write(self, company: Any, entity: str, req: Request) -> dict[str, Any]:
        store = self.emu.store
        body = self._body(req)
        operation = req.query.get("operation", "")
        if operation == "delete" and entity in ("Invoice", "Payment"):
            return store.delete_txn(company, entity, body)
        if entity == "Invoice" and operation == "void":  # §2/§4: invoice void form
            return store.public(store.void_invoice(company, body))
        if entity == "Payment" and operation == "update" and req.query.get("include") == "void":
            return store.public(store.void_payment(company, body))  # §4: the payment void form differs
        if operation not in ("", "create", "update"):
            raise E.validation(E.UNSUPPORTED_PROPERTY, f"operation {operation} is not supported for {entity}")
        if entity == "Customer":
            record = store.update_customer(company, body) if body.get("Id") else store.create_name(
                company, "Customer", body)
        elif entity == "Item" and not body.get("Id"):
            record = store.create_item(company, body)
        elif entity == "Invoice" and not body.get("Id"):
            record = store.create_invoice(company, body)
        elif entity == "Payment" and not body.get("Id"):
            record = store.create_payment(company, body)
        else:
            raise E.validation(E.UNSUPPORTED_PROPERTY, f"updates of {entity} are not emulated")
        return store.public(record)

    @staticmethod
    def _company_info(company: Any) -> dict[str, Any]:
        cfg = company.config
        return {"Id": "1", "CompanyName": cfg.name, "LegalName": cfg.name, "Country": cfg.country,
                "DefaultTimeZone": "America/Los_Angeles", "SupportedLanguages": "en", "domain": "QBO",
                "SyncToken": "0", "NameValue": [{"Name": "OfferingSku", "Value": "QuickBooks Online Plus"}]}

    @staticmethod
    def _preferences(company: Any) -> dict[str, Any]:
        cfg = company.config
        return {"Id": "1", "domain": "QBO", "SyncToken": "0",
                "CurrencyPrefs": {"MultiCurrencyEnabled": cfg.multicurrency,
                                  "HomeCurrency": {"value": cfg.home_currency}},
                "SalesFormsPrefs": {"CustomTxnNumbers": cfg.custom_txn_numbers, "AllowDiscount": cfg.allow_discount},
                "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": cfg.country == "US" and cfg.ast}}
