"""The Books REST surface under /books/v3: routing, auth, organization scoping, limits, envelopes."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import changes, payments
from .errors import METHOD_NOT_ALLOWED, ORG_NOT_ASSOCIATED, ORG_REQUIRED, ZohoError, invalid, mandatory
from .httpio import Request, Response
from .limits import RateLimiter
from .oauth import AccessToken, OAuthServer
from .state import PLANS, BooksState, Organization

Handler = Callable[[Request, str, dict[str, str]], Response]
Guard = Callable[[Request, Callable[[], Response]], Response]


@dataclass
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    module: str
    operation: str
    needs_org: bool = True


class RequestCounters:
    """Requests per (organization, method, path template), for benchmarks and call-count assertions."""

    def __init__(self) -> None:
        self.lock: threading.RLock | threading.Lock = threading.RLock()
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def hit(self, org_id: str, method: str, template: str) -> None:
        with self.lock:
            self.counts[(org_id, method, template)] += 1

    def snapshot(self, org_id: str | None = None) -> dict[str, int]:
        with self.lock:
            return {
                f"{m} {t}": n for (o, m, t), n in sorted(self.counts.items()) if org_id is None or o == org_id
            }

    def get(self, org_id: str, method: str, template: str) -> int:
        with self.lock:
            return self.counts[(org_id, method.upper(), template)]

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()


def _compile(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "/?$")


def _page(query: dict[str, str]) -> tuple[int, int]:
    try:
        page = int(query.get("page", "1"))
        per_page = int(query.get("per_page", "200"))
    except ValueError:
        raise invalid("page") from None
    if page < 1:
        raise invalid("page")
    return page, max(1, min(per_page, 200))


def _paged(rows: list[dict[str, Any]], query: dict[str, str], extra: dict[str, Any]) -> tuple[list, dict]:
    page, per_page = _page(query)
    start = (page - 1) * per_page
    context = {"page": page, "per_page": per_page, "has_more_page": len(rows) > start + per_page, **extra}
    return rows[start:start + per_page], context


class BooksApi:
    """Dispatches /books/v3 calls; `guard` wraps the handler with latency and fault injection."""

    def __init__(
        self, state: BooksState, oauth: OAuthServer, limiter: RateLimiter, counters: RequestCounters,
        guard: Guard,
    ) -> None:
        self.state = state
        self.oauth = oauth
        self.limiter = limiter
        self.counters = counters
        self.guard = guard
        # Called after a payment was created, deleted or refunded over HTTP: (org_id, event, payment).
        self.on_payment: Callable[[str, str, dict[str, Any]], None] | None = None
        self.routes: list[Route] = []
        r = self._route
        r("GET", "/organizations", self.list_orgs, "settings", "READ", needs_org=False)
        r("GET", "/organizations/{organization_id}", self.get_org, "settings", "READ", needs_org=False)
        r("GET", "/settings/currencies", self.list_currencies, "settings", "READ")
        r("POST", "/settings/currencies", self.create_currency, "settings", "CREATE")
        r("GET", "/settings/currencies/{currency_id}", self.get_currency, "settings", "READ")
        r("POST", "/settings/currencies/{currency_id}/exchangerates", self.create_rate, "settings", "CREATE")
        r("GET", "/contacts", self.list_contacts, "contacts", "READ")
        r("POST", "/contacts", self.create_contact, "contacts", "CREATE")
        r("GET", "/contacts/{contact_id}", self.get_contact, "contacts", "READ")
        r("PUT", "/contacts/{contact_id}", self.update_contact, "contacts", "UPDATE")
        # items.yml uses the ZohoBooks.settings scopes (items.yml:39, 192)
        r("GET", "/items", self.list_items, "settings", "READ")
        r("POST", "/items", self.create_item, "settings", "CREATE")
        r("GET", "/items/{item_id}", self.get_item, "settings", "READ")
        r("GET", "/settings/taxes", self.list_taxes, "settings", "READ")  # taxes.yml (ZohoBooks.settings.*)
        r("POST", "/settings/taxes", self.create_tax, "settings", "CREATE")
        r("GET", "/settings/taxes/{tax_id}", self.get_tax, "settings", "READ")
        r("POST", "/settings/taxgroups", self.create_tax_group, "settings", "CREATE")
        r("GET", "/settings/taxgroups/{tax_group_id}", self.get_tax_group, "settings", "READ")
        r("GET", "/settings/taxexemptions", self.list_exemptions, "settings", "READ")
        r("POST", "/settings/taxexemptions", self.create_exemption, "settings", "CREATE")
        r("GET", "/invoices", self.list_invoices, "invoices", "READ")
        r("POST", "/invoices", self.create_invoice, "invoices", "CREATE")
        r("GET", "/invoices/{invoice_id}", self.get_invoice, "invoices", "READ")
        r("POST", "/invoices/{invoice_id}/status/sent", self.mark_sent, "invoices", "UPDATE")
        r("POST", "/invoices/{invoice_id}/status/void", self.mark_void, "invoices", "UPDATE")
        r("POST", "/customerpayments", self.create_payment, "customerpayments", "CREATE")
        r("GET", "/customerpayments/{payment_id}", self.get_payment, "customerpayments", "READ")
        payments.register_routes(self)  # list, delete, refund (emulator/payments.py)

    def _route(
        self, method: str, template: str, handler: Handler, module: str, op: str, needs_org: bool = True
    ) -> None:
        self.routes.append(Route(method, template, _compile(template), handler, module, op, needs_org))

    # ----------------------------------------------------------------- dispatch
    def handle(self, req: Request, api_path: str) -> Response:
        try:
            route, params = self._match(req.method, api_path)
        except ZohoError as err:
            self.counters.hit(req.query.get("organization_id", ""), req.method, api_path)
            return Response.error(err)
        org_id = req.query.get("organization_id", "") or params.get("organization_id", "")
        self.counters.hit(org_id, req.method, route.template)
        try:
            token = self.oauth.authenticate(req.headers.get("authorization"))
            self.oauth.check_scope(token, route.module, route.operation)
            if not route.needs_org:
                if "organization_id" in params:
                    self._org_for(token, params["organization_id"])
                return self.guard(req, lambda: route.handler(req, org_id, params))
            if not req.query.get("organization_id"):
                raise ZohoError(
                    400, ORG_REQUIRED,
                    "This user belongs to multiple organizations, hence the parameter CompanyID/CompanyName "
                    "is required for associating this user to a specific organization.",
                )
            org = self._org_for(token, org_id)
            daily, concurrent = PLANS[org.plan]
            with self.limiter.admit(
                org_id, org.daily_limit if org.daily_limit is not None else daily,
                org.max_concurrent if org.max_concurrent is not None else concurrent,
            ):
                return self.guard(req, lambda: route.handler(req, org_id, params))
        except ZohoError as err:
            headers = []
            if err.status == 429 and self.limiter.config.retry_after is not None:
                headers.append(("Retry-After", str(self.limiter.config.retry_after)))
            return Response.error(err, headers)

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m:
                if route.method == method:
                    return route, m.groupdict()
                allowed = True
        if allowed:
            raise ZohoError(
                405, METHOD_NOT_ALLOWED, f"The HTTP method {method} is not allowed for the requested resource"
            )
        raise ZohoError(404, 5, "Invalid URL Passed")

    def _org_for(self, token: AccessToken, org_id: str) -> Organization:
        org = self.state.orgs.get(org_id)
        if org is None or (token.grant.org_ids is not None and org_id not in token.grant.org_ids):
            raise ZohoError(
                401, ORG_NOT_ASSOCIATED, f"This user is not associated with the CompanyID/CompanyName:{org_id}."
            )
        return org

    @staticmethod
    def _ok(resource: str, value: Any, message: str = "success", status: int = 200, **extra: Any) -> Response:
        return Response.json(status, {"code": 0, "message": message, resource: value, **extra})

    # ----------------------------------------------------------------- organizations
    def _org_body(self, org: Organization) -> dict[str, Any]:
        base = org.base_currency()
        return {
            "organization_id": org.org_id,
            "name": org.name,
            "contact_name": "Emulator User",
            "email": "user@example.com",
            "is_default_org": org.org_id == next(iter(self.state.orgs), None),
            "plan_type": 0,
            "plan_name": org.plan.upper(),
            "plan_period": "",
            "language_code": "en",
            "fiscal_year_start_month": 0,
            "account_created_date": org.created,
            "time_zone": "Etc/UTC",
            "date_format": "yyyy-MM-dd",
            "field_separator": "-",
            "is_org_active": True,
            "currency_id": base["currency_id"],
            "currency_code": base["currency_code"],
            "currency_symbol": base["currency_symbol"],
            "currency_format": base["currency_format"],
            "price_precision": base["price_precision"],
            "country": org.country,
            # the organization's address carries its state (organizations.yml:387-400); India and the Gulf
            # take it as the last fallback of the place of supply (ZOHO_EDITIONS.md §5)
            "address": {"state": org.state_code, "state_code": org.state_code, "country": org.country},
        }

    def list_orgs(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        token = self.oauth.authenticate(req.headers.get("authorization"))
        with self.state.lock:
            orgs = [
                self._org_body(o) for o in self.state.orgs.values()
                if token.grant.org_ids is None or o.org_id in token.grant.org_ids
            ]
        return self._ok("organizations", orgs)

    def get_org(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        with self.state.lock:
            return self._ok("organization", self._org_body(self.state.org(params["organization_id"])))

    # ----------------------------------------------------------------- currencies
    def list_currencies(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        with self.state.lock:
            rows = [dict(c) for c in self.state.org(org_id).currencies.values()]
        return self._ok("currencies", rows)

    def create_currency(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        data = req.payload()
        for name in ("currency_code", "currency_format"):
            if not data.get(name):
                raise mandatory(name)
        cur = self.state.add_currency(
            org_id, str(data["currency_code"]), data.get("exchange_rate", 0), str(data["currency_format"]),
            data.get("currency_symbol"),
        )
        return self._ok("currency", cur, "The currency has been added.", 201)

    def get_currency(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        with self.state.lock:
            cur = self.state.org(org_id).currencies.get(params["currency_id"])
            if cur is None:
                raise ZohoError(404, 1002, "Currency does not exist.")
            return self._ok("currency", dict(cur))

    def create_rate(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        from .state import money

        data = req.payload()
        if data.get("rate") in (None, ""):
            raise mandatory("rate")
        rate = money(data["rate"], "rate")
        if rate <= 0:
            raise invalid("rate")
        with self.state.lock:
            cur = self.state.org(org_id).currencies.get(params["currency_id"])
            if cur is None:
                raise ZohoError(404, 1002, "Currency does not exist.")
            if cur["is_base_currency"]:
                raise invalid("currency_id", "The base currency has a fixed exchange rate of 1.")
            cur["exchange_rate"] = rate
            cur["effective_date"] = str(data.get("effective_date") or cur["effective_date"])
            body = {"exchange_rate_id": self.state.new_id(), "currency_id": cur["currency_id"],
                    "currency_code": cur["currency_code"], "effective_date": cur["effective_date"], "rate": rate}
        return self._ok("exchange_rate", body, "Exchange rate has been added.", 201)

    # ----------------------------------------------------------------- contacts
    def list_contacts(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        rows, order = changes.sort_contacts(self.state.org(org_id), self.state.list_contacts(org_id, req.query),
                                            req.query)
        page, ctx = _paged(rows, req.query, {"applied_filter": "Status.All", **order})
        return self._ok("contacts", page, page_context=ctx)

    def create_contact(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        contact = self.state.create_contact(org_id, req.payload())
        return self._ok("contact", self.state.contact_full(contact), "The contact has been added.", 201)

    def get_contact(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        return self._ok("contact", self.state.contact_full(self.state.contact(org_id, params["contact_id"])))

    def update_contact(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        contact = self.state.update_contact(org_id, params["contact_id"], req.payload())
        return self._ok("contact", self.state.contact_full(contact), "Contact information has been saved.")

    # ----------------------------------------------------------------- items and taxes
    def list_items(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        rows, ctx = _paged(self.state.list_items(org_id, req.query), req.query, {})
        return self._ok("items", rows, page_context=ctx)

    def create_item(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        return self._ok("item", self.state.create_item(org_id, req.payload()), "The item has been added.", 201)

    def get_item(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        return self._ok("item", self.state.item(org_id, params["item_id"]))

    def list_taxes(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        rows, ctx = _paged(self.state.list_taxes(org_id), req.query, {})
        return self._ok("taxes", rows, page_context=ctx)

    def create_tax(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        # "The tax has been added." (taxes.yml:812)
        return self._ok("tax", self.state.create_tax(org_id, req.payload()), "The tax has been added.", 201)

    def get_tax(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        return self._ok("tax", self.state.tax(org_id, params["tax_id"]))

    def create_tax_group(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        return self._ok("tax_group", self.state.create_tax_group(org_id, req.payload()), "success", 201)

    def get_tax_group(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        return self._ok("tax_group", self.state.tax_group(org_id, params["tax_group_id"]))

    def list_exemptions(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        return self._ok("tax_exemptions", self.state.list_exemptions(org_id))

    def create_exemption(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        # 200, not 201, and "Tax Exemption has been added." (taxes.yml:363-407, 1228)
        return self._ok("tax_exemption", self.state.create_exemption(org_id, req.payload()),
                        "Tax Exemption has been added.", 200)

    # ----------------------------------------------------------------- invoices
    def list_invoices(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        rows = list(reversed(self.state.list_invoices(org_id, req.query)))
        page, ctx = _paged(rows, req.query, {"report_name": "Invoices", "applied_filter": "Status.All",
                                             "sort_column": "created_time", "sort_order": "D"})
        return self._ok("invoices", page, page_context=ctx)

    def create_invoice(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        ignore = req.query.get("ignore_auto_number_generation", "false").lower() == "true"
        invoice = self.state.create_invoice(org_id, req.payload(), ignore_auto_number=ignore)
        return self._ok("invoice", invoice, "The invoice has been created.", 201)

    def get_invoice(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        return self._ok("invoice", self.state.invoice(org_id, params["invoice_id"]))

    def mark_sent(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        self.state.mark_sent(org_id, params["invoice_id"])
        return Response.json(200, {"code": 0, "message": "Invoice status has been changed to Sent."})

    def mark_void(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        self.state.mark_void(org_id, params["invoice_id"])
        return Response.json(200, {"code": 0, "message": "Invoice status has been changed to Void."})

    # ----------------------------------------------------------------- payments
    def create_payment(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        payment = self.state.create_payment(org_id, req.payload())
        if self.on_payment is not None:
            self.on_payment(org_id, "created", payment)
        return self._ok("payment", payment, "The payment has been recorded.", 201)

    def get_payment(self, req: Request, org_id: str, params: dict[str, str]) -> Response:
        return self._ok("payment", self.state.payment(org_id, params["payment_id"]))
