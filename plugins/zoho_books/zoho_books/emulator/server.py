"""The Emulator object: one loopback HTTP server answering as Zoho Accounts, Books and a control API."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from integration_core.emulation.wsgi import LoopbackEmulator, read_request, send

from .api import BooksApi, RequestCounters
from .errors import INTERNAL_ERROR, RATE_LIMIT_MINUTE, OAuthError, ZohoError
from .faults import FaultInjector
from .httpio import Request, Response, jsonable
from .limits import LimitConfig, RateLimiter
from .oauth import ALL_SCOPES, OAuthConfig, OAuthServer
from .payments import delete_payment, refund_payment
from .state import BooksState
from .subscriptions import PaymentWebhooks
from .webhooks import WebhookDelivery, contact_record, invoice_record, payment_record, send_webhook

log = logging.getLogger(__name__)
API_PREFIX = "/books/v3"


class Emulator(LoopbackEmulator):
    """A faithful local Zoho Books: start it, register a client and an organization, point a client at it."""

    thread_name = "zoho-emulator"

    def __init__(
        self,
        *,
        rate_limit_per_minute: int = 100,
        rate_window_seconds: float = 60.0,
        daily_limit: int | None = None,
        max_concurrent: int | None = None,
        retry_after: int | None = None,
        access_token_ttl: int = 3600,
        code_ttl: float = 120.0,
        refresh_limit: int = 10,
        refresh_window_seconds: float = 600.0,
        enforce_scopes: bool = True,
        verbose: bool = False,
        org_defaults: Mapping[str, Any] | None = None,
    ) -> None:
        """``org_defaults``: edition settings every new organization starts with (e.g. ``{"edition": "in",
        "state_code": "KA"}``; see ``BooksState.configure_organization``), also through the pytest fixture
        ``zoho_emulator_factory(org_defaults=...)``."""
        self.state = BooksState()
        self.org_defaults = dict(org_defaults or {})
        self.oauth = OAuthServer(
            OAuthConfig(access_token_ttl, code_ttl, refresh_limit, refresh_window_seconds, 20, enforce_scopes)
        )
        self.limiter = RateLimiter(
            LimitConfig(rate_limit_per_minute, rate_window_seconds, daily_limit, max_concurrent, retry_after)
        )
        self.faults = FaultInjector()
        self.counters = RequestCounters()
        # One re-entrant lock for all in-memory state, so introspection sees consistent snapshots.
        self.lock = threading.RLock()
        self.state.lock = self.oauth.lock = self.limiter.lock = self.faults.lock = self.counters.lock = self.lock
        self.api = BooksApi(self.state, self.oauth, self.limiter, self.counters, self._guard)
        self.webhooks = PaymentWebhooks(self.state)  # payment webhooks sent as Zoho sends them
        self.api.on_payment = self.webhooks.notify
        self.verbose = verbose

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    # ----------------------------------------------------------------- setup
    def add_client(self, client_id: str, client_secret: str, redirect_uris: Iterable[str] | str) -> None:
        uris = [redirect_uris] if isinstance(redirect_uris, str) else list(redirect_uris)
        self.oauth.add_client(client_id, client_secret, uris)

    def add_organization(
        self, org_id: str | None = None, name: str = "Emulated Org", currency_code: str = "USD",
        plan: str = "premium", daily_limit: int | None = None, max_concurrent: int | None = None,
        **settings: Any,
    ) -> str:
        """``settings``: the organization's edition and behaviour settings (``BooksState.configure_organization``),
        e.g. ``edition="in", state_code="KA"``."""
        return self.state.add_organization(name, currency_code, plan, org_id, daily_limit, max_concurrent,
                                           **{**self.org_defaults, **settings})

    def configure_organization(self, org_id: str, **settings: Any) -> dict[str, Any]:
        return jsonable(self.state.configure_organization(org_id, **settings))

    def add_custom_field(self, org_id: str, module: str, api_name: str, label: str = "",
                         data_type: str = "string") -> dict[str, Any]:
        """Define an invoice or contact custom field of an organization (Zoho: Settings -> Preferences)."""
        return self.state.add_custom_field(org_id, module, api_name, label, data_type)

    def add_tax(self, org_id: str, name: str, percentage: Any, **extra: Any) -> dict[str, Any]:
        return jsonable(self.state.create_tax(org_id, {"tax_name": name, "tax_percentage": percentage, **extra}))

    def add_tax_group(self, org_id: str, name: str, tax_ids: Iterable[str]) -> dict[str, Any]:
        return jsonable(self.state.create_tax_group(org_id, {"tax_group_name": name, "taxes": ",".join(tax_ids)}))

    def add_exemption(self, org_id: str, code: str, kind: str = "customer", description: str = "") -> dict[str, Any]:
        return jsonable(self.state.create_exemption(org_id, {"tax_exemption_code": code, "type": kind,
                                                             "description": description}))

    def items(self, org_id: str) -> list[dict[str, Any]]:
        return self._records(org_id, "items")

    def add_currency(self, org_id: str, code: str, exchange_rate: Any = 0) -> dict[str, Any]:
        return jsonable(self.state.add_currency(org_id, code, exchange_rate))

    def issue_tokens(
        self, client_id: str, *org_ids: str, scopes: Iterable[str] = ALL_SCOPES
    ) -> dict[str, Any]:
        """Mint tokens without the OAuth dance; no org ids means access to every organization."""
        body = self.oauth.issue(client_id, org_ids or None, scopes)
        body["api_domain"] = self.base_url if self._base_url else ""
        return body

    def reset(self) -> None:
        """Forget all data, clients, tokens, counters and faults; configuration stays."""
        self.state.reset()
        self.oauth.reset()
        self.limiter.reset()
        self.faults.clear()
        self.counters.reset()
        self.webhooks.clear()

    # ----------------------------------------------------------------- faults
    def fail_next(self, count: int = 1, status: int = 500, method: str | None = None,
                  path_prefix: str | None = None) -> None:
        self.faults.add("error", count, method, path_prefix, status)

    def rate_limit_next(self, count: int = 1, method: str | None = None, path_prefix: str | None = None) -> None:
        self.faults.add("rate_limit", count, method, path_prefix)

    def lose_next_response(self, count: int = 1, method: str | None = None, path_prefix: str | None = None,
                           as_error: bool = False, silent: bool = False) -> None:
        """Commit the write, then cut the connection mid-response (`silent`: before any byte is sent),
        or answer 500 code 1000 when `as_error`."""
        kind = "error_after_commit" if as_error else ("dropped" if silent else "lost")
        self.faults.add(kind, count, method, path_prefix)

    def set_latency(self, seconds: float | None = None, low: float | None = None, high: float | None = None) -> None:
        self.faults.set_latency(seconds, low, high)

    def random_faults(self, rates: Mapping[str, float] | None, seed: int | None = None,
                      latency: tuple[float, float] | None = None) -> None:
        self.faults.set_random(dict(rates) if rates is not None else None, seed, latency)

    def clear_faults(self) -> None:
        self.faults.clear()

    def expire_tokens(self) -> int:
        return self.oauth.expire_all()

    # ----------------------------------------------------------------- introspection
    def request_count(self, org_id: str, method: str, template: str) -> int:
        return self.counters.get(org_id, method, template)

    def request_counts(self, org_id: str | None = None) -> dict[str, int]:
        return self.counters.snapshot(org_id)

    def _records(self, org_id: str, kind: str) -> list[dict[str, Any]]:
        with self.state.lock:
            return jsonable(list(getattr(self.state.org(org_id), kind).values()))

    def invoices(self, org_id: str) -> list[dict[str, Any]]:
        return self._records(org_id, "invoices")

    def contacts(self, org_id: str) -> list[dict[str, Any]]:
        return [dict(c, email=self.state.primary_person(c).get("email", "")) for c in self._records(org_id, "contacts")]

    def payments(self, org_id: str) -> list[dict[str, Any]]:
        return self._records(org_id, "payments")

    # ----------------------------------------------------------------- data shortcuts and webhooks
    def create_contact(
        self, org_id: str, contact_name: str, contact_type: str = "customer", email: str | None = None,
        webhook_url: str | None = None, secret: str | None = None, **fields: Any,
    ) -> tuple[dict[str, Any], WebhookDelivery | None]:
        data: dict[str, Any] = {"contact_name": contact_name, "contact_type": contact_type, **fields}
        if email:
            data.setdefault("contact_persons", [{"email": email, "is_primary_contact": True}])
        contact = self.state.create_contact(org_id, data)
        delivery = None
        if webhook_url:
            delivery = self.send_webhook(webhook_url, "contact", self.contact_webhook(org_id, contact["contact_id"]),
                                         secret)
        return jsonable(self.state.contact_full(contact)), delivery

    def create_invoice(self, org_id: str, customer_id: str, line_items: list[dict[str, Any]],
                       **fields: Any) -> dict[str, Any]:
        return jsonable(self.state.create_invoice(org_id, {"customer_id": customer_id, "line_items": line_items,
                                                           **fields}))

    def record_payment(
        self, org_id: str, invoice_id: str, amount: Any = None, payment_mode: str = "banktransfer",
        date: str | None = None, webhook_url: str | None = None, secret: str | None = None,
        module: str = "invoice",
    ) -> tuple[dict[str, Any], WebhookDelivery | None]:
        """Pay an invoice (its whole balance by default), as a user does in Zoho, and optionally emit the
        ``invoice`` webhook (or the ``payment`` one) at once; subscriptions (``subscribe_webhooks``) are
        notified as for a payment made over the API."""
        inv = self.state.invoice(org_id, invoice_id)
        applied = inv["balance"] if amount is None else amount
        payment = self.state.create_payment(org_id, {
            "customer_id": inv["customer_id"], "payment_mode": payment_mode, "amount": applied,
            "date": date or time.strftime("%Y-%m-%d"),
            "invoices": [{"invoice_id": invoice_id, "amount_applied": applied}],
        })
        delivery = None
        if webhook_url:
            record = (self.invoice_webhook(org_id, invoice_id) if module == "invoice"
                      else payment_record(self.state, org_id, payment))
            delivery = self.send_webhook(webhook_url, module, record, secret)
        self.webhooks.notify(org_id, "created", payment)
        return jsonable(payment), delivery

    def subscribe_webhooks(self, org_id: str, url: str, secret: str | None,
                           modules: Iterable[str] = ("payment",)) -> None:
        """Send webhooks for every payment created, refunded or deleted in this organization from now on."""
        self.webhooks.subscribe(org_id, url, secret, tuple(modules))

    def wait_webhooks(self, timeout: float = 10.0) -> bool:
        return self.webhooks.wait_idle(timeout)

    def delete_payment(self, org_id: str, payment_id: str) -> dict[str, Any]:
        """Delete a payment as a user does in Zoho (its invoices get their balance back); subscriptions hear."""
        deleted = delete_payment(self.state, org_id, payment_id)
        self.webhooks.notify(org_id, "deleted", deleted)
        return jsonable(deleted)

    def refund_payment(self, org_id: str, payment_id: str, amount: Any) -> dict[str, Any]:
        refund = refund_payment(self.state, org_id, payment_id, {"amount": amount})
        self.webhooks.notify(org_id, "refunded", self.state.payment(org_id, payment_id))
        return jsonable(refund)

    def void_invoice(self, org_id: str, invoice_id: str, webhook_url: str | None = None,
                     secret: str | None = None) -> tuple[dict[str, Any], WebhookDelivery | None]:
        self.state.mark_void(org_id, invoice_id)
        record = self.invoice_webhook(org_id, invoice_id)
        delivery = self.send_webhook(webhook_url, "invoice", record, secret) if webhook_url else None
        return record, delivery

    def invoice_webhook(self, org_id: str, invoice_id: str) -> dict[str, Any]:
        return invoice_record(self.state, org_id, invoice_id)

    def contact_webhook(self, org_id: str, contact_id: str) -> dict[str, Any]:
        return contact_record(self.state, org_id, contact_id)

    @staticmethod
    def send_webhook(
        url: str, module: str, record: Mapping[str, Any], secret: str | None,
        query: Mapping[str, str] | None = None, form: Mapping[str, str] | None = None,
    ) -> WebhookDelivery:
        return send_webhook(url, module, record, secret, query, form)

    # ----------------------------------------------------------------- HTTP
    def _guard(self, req: Request, run: Any) -> Response:
        """Latency, then scheduled/random faults around the real handler."""
        delay = self.faults.pick_delay()
        if delay > 0:
            time.sleep(delay)
        api_path = req.path.removeprefix(API_PREFIX)
        fault = self.faults.take(req.method, req.path, api_path)
        if fault is not None and fault.kind == "error":
            return Response.json(fault.status, {"code": INTERNAL_ERROR, "message": "Internal Error"})
        if fault is not None and fault.kind == "rate_limit":
            headers = []
            if self.limiter.config.retry_after is not None:
                headers.append(("Retry-After", str(self.limiter.config.retry_after)))
            err = ZohoError(429, RATE_LIMIT_MINUTE,
                            "You have made too many requests per minute. Please try again after some time.")
            return Response.error(err, headers)
        try:
            response: Response = run()
        except ZohoError as err:
            response = Response.error(err)
        except OAuthError as err:
            response = Response.json(err.status, err.body())
        if fault is not None and fault.kind in ("lost", "dropped"):
            response.lost = True
            response.partial = fault.kind == "lost"
        elif fault is not None and fault.kind == "error_after_commit":
            response = Response.json(fault.status, {"code": INTERNAL_ERROR, "message": "Internal Error"})
        return response

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """WSGI entry point; never lets a traceback reach the client."""
        try:
            req = self._request(environ)
            response = self._dispatch(req)
        except ZohoError as err:
            response = Response.error(err)
        except Exception:
            log.exception("emulator internal error")
            response = Response.json(500, {"code": INTERNAL_ERROR, "message": "Internal Error"})
        return send(environ, start_response, response)

    def _request(self, environ: dict[str, Any]) -> Request:
        return read_request(environ, lambda: ZohoError(413, 4, "Request body too large"), Request)

    def _dispatch(self, req: Request) -> Response:
        from .control import handle_control

        if req.path.startswith("/_emulator/"):
            return handle_control(self, req)
        if req.path.startswith(API_PREFIX + "/"):
            return self.api.handle(req, req.path[len(API_PREFIX):])
        if req.path.rstrip("/") in ("/oauth/v2/auth", "/oauth/v2/token", "/oauth/v2/token/revoke"):
            return self._guard(req, lambda: self._oauth(req))
        return Response.json(404, {"code": 5, "message": "Invalid URL Passed"})

    def _oauth(self, req: Request) -> Response:
        path = req.path.rstrip("/")
        try:
            if path == "/oauth/v2/auth":
                if req.method not in ("GET", "POST"):
                    return Response.json(405, {"error": "method_not_allowed"})
                location = self.oauth.authorize({**req.query, **req.form()}, self.base_url)
                return Response(302, b"", [("Location", location)])
            if req.method != "POST":
                return Response.json(405, {"error": "method_not_allowed"})
            params = {**req.query, **req.form()}
            if path == "/oauth/v2/token":
                return Response.json(200, self.oauth.token(params, self.base_url))
            if self.oauth.revoke(params.get("token", "")):
                return Response.json(200, {"status": "success"})
            return Response.json(200, {"error": "invalid_token"})
        except OAuthError as err:
            return Response.json(err.status, err.body())
