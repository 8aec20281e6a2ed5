"""The Emulator: one loopback HTTP server answering as Intuit's OAuth hosts, the QuickBooks Online v3 API
and a ``/_emulator`` control API. The real service's paths are kept, so one base URL stands in for
``appcenter.intuit.com``, ``oauth.platform.intuit.com``, ``developer.api.intuit.com`` and the API host.

HTTP: the core's loopback WSGI server (``integration_core.emulation``, shared with the Zoho Books emulator),
which can also cut a connection mid-answer for the lost-response faults.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from integration_core.emulation.wsgi import LoopbackEmulator, read_request, send

from . import errors as E
from .api import CompanyApi
from .errors import OAuthError, QBOError
from .faults import FaultInjector
from .httpio import Request, Response, jsonable
from .limits import LimitConfig, RateLimiter
from .oauth import Consent, OAuthConfig, OAuthServer
from .state import CompanyStore, Rules
from .webhooks import Delivery, WebhookSender

log = logging.getLogger(__name__)
AUTHORIZE_PATH = "/connect/oauth2"  # §1 authorize URL path
TOKEN_PATH = "/oauth2/v1/tokens/bearer"  # §1 token URL path
REVOKE_PATH = "/v2/oauth2/tokens/revoke"  # §1 revoke URL path


def _error_response(err: QBOError, headers: list[tuple[str, str]] | None = None) -> Response:
    if err.shape == "xml":
        return Response(err.status, err.xml(), [("Content-Type", "application/xml"), *(headers or [])])
    return Response.json(err.status, err.body(), headers)


class Emulator(LoopbackEmulator):
    """A local QuickBooks Online: start it, add an app (client) and a company, point the plugin at it."""

    thread_name = "qbo-emulator"

    def __init__(self, *, rate_limit_per_minute: int = 500, rate_window_seconds: float = 60.0,
                 max_concurrent: int = 10, access_token_ttl: int = 3600, rotate_after: float = 86_400.0,
                 old_refresh_grace: float = 0.0, verbose: bool = False, **rules: Any) -> None:
        self.lock = threading.RLock()
        self.store = CompanyStore(Rules(**rules))
        self.oauth = OAuthServer(OAuthConfig(access_token_ttl=access_token_ttl, rotate_after=rotate_after,
                                             old_refresh_grace=old_refresh_grace))
        self.limiter = RateLimiter(LimitConfig(rate_limit_per_minute, rate_window_seconds, max_concurrent))
        self.faults = FaultInjector()
        self.webhooks = WebhookSender(self.oauth.live_apps)
        self.store.lock = self.oauth.lock = self.limiter.lock = self.faults.lock = self.webhooks.lock = self.lock
        self.store.listeners.append(self.webhooks.on_change)
        self.api = CompanyApi(self)
        self.api.counters.lock = self.lock
        self.edits_after_read: set[tuple[str, str, str]] = set()
        self.verbose = verbose

    # ----------------------------------------------------------------- setup
    def add_app(self, client_id: str, client_secret: str, redirect_uris: Iterable[str] | str) -> None:
        """An Intuit app (OAuth client)."""
        uris = [redirect_uris] if isinstance(redirect_uris, str) else list(redirect_uris)
        self.oauth.add_client(client_id, client_secret, uris)

    def add_company(self, realm_id: str | None = None, *, currencies: Mapping[str, Any] | None = None,
                    **config: Any) -> str:
        """A company; ``config``: name, country, home_currency, multicurrency, custom_txn_numbers, ast, ast_rate."""
        realm = self.store.add_company(realm_id, **config)
        for code, rate in (currencies or {}).items():
            self.add_currency(realm, code, rate)
        return realm

    def add_currency(self, realm_id: str, code: str, rate: Any) -> None:
        """§5: a foreign currency active in the company's list, with its rate to the home currency."""
        with self.lock:
            self.store.company(realm_id).currencies[code.upper()] = Decimal(str(rate))

    def add_name(self, realm_id: str, entity: str, display_name: str, **fields: Any) -> dict[str, Any]:
        """A Customer, Vendor or Employee (names are unique across the three, §4)."""
        with self.lock:
            return jsonable(self.store.public(self.store.create_name(
                self.store.company(realm_id), entity, {"DisplayName": display_name, **fields})))

    def next_consent(self, realm_id: str | None = None, deny: bool = False) -> None:
        """Which company the next consent connects (default: the newest), or a refusal."""
        with self.lock:
            self.oauth.next_consent = Consent(realm_id, deny)

    def issue_tokens(self, client_id: str, realm_id: str) -> dict[str, Any]:
        return self.oauth.issue(client_id, realm_id)

    def edit_after_next_read(self, realm_id: str, entity: str, entity_id: str) -> None:
        """Right after the next API read of this record, change it as a QuickBooks user would (stale SyncToken)."""
        with self.lock:
            self.edits_after_read.add((realm_id, entity, str(entity_id)))

    def expire_tokens(self) -> int:
        return self.oauth.expire_all()

    def configure_webhooks(self, client_id: str, url: str, verifier_token: str, fmt: str = "classic") -> None:
        self.webhooks.configure(client_id, url, verifier_token, fmt)

    def deliver_webhooks(self, client_id: str | None = None) -> list[Delivery]:
        return self.webhooks.deliver(client_id)

    def reset(self) -> None:
        with self.lock:
            self.store.companies.clear()
            self.oauth.reset()
            self.limiter.reset()
            self.faults.clear()
            self.api.counters.reset()
            self.webhooks.apps.clear()
            self.webhooks.log.clear()

    # ----------------------------------------------------------------- faults (same kinds as the Zoho emulator)
    def fail_next(self, count: int = 1, status: int = 500, method: str | None = None,
                  path_prefix: str | None = None) -> None:
        self.faults.add("error", count, method, path_prefix, status)

    def rate_limit_next(self, count: int = 1, method: str | None = None, path_prefix: str | None = None) -> None:
        self.faults.add("rate_limit", count, method, path_prefix)

    def lose_next_response(self, count: int = 1, method: str | None = None, path_prefix: str | None = None,
                           as_error: bool = False, silent: bool = False) -> None:
        kind = "error_after_commit" if as_error else ("dropped" if silent else "lost")
        self.faults.add(kind, count, method, path_prefix)

    def set_latency(self, seconds: float | None = None, low: float | None = None, high: float | None = None) -> None:
        self.faults.set_latency(seconds, low, high)

    def random_faults(self, rates: Mapping[str, float] | None, seed: int | None = None,
                      latency: tuple[float, float] | None = None) -> None:
        self.faults.set_random(dict(rates) if rates is not None else None, seed, latency)

    def clear_faults(self) -> None:
        self.faults.clear()

    # ----------------------------------------------------------------- introspection and data shortcuts
    def records(self, realm_id: str, entity: str) -> list[dict[str, Any]]:
        with self.lock:
            return jsonable(self.store.records(self.store.company(realm_id), entity))

    def invoices(self, realm_id: str) -> list[dict[str, Any]]:
        return self.records(realm_id, "Invoice")

    def customers(self, realm_id: str) -> list[dict[str, Any]]:
        return self.records(realm_id, "Customer")

    def request_counts(self, realm_id: str | None = None) -> dict[str, int]:
        return self.api.counters.snapshot(realm_id)

    def record_payment(self, realm_id: str, applications: Mapping[str, Any], total: Any = None,
                       **fields: Any) -> dict[str, Any]:
        """A customer payment applied to invoices (``{invoice id: amount}``), as if entered in QuickBooks."""
        with self.lock:
            c = self.store.company(realm_id)
            first = self.store.get(c, "Invoice", next(iter(applications)))
            lines = [{"Amount": str(amount), "LinkedTxn": [{"TxnId": str(inv), "TxnType": "Invoice"}]}
                     for inv, amount in applications.items()]
            applied = sum((Decimal(str(a)) for a in applications.values()), Decimal("0"))
            body = {"CustomerRef": dict(first["CustomerRef"]), "TotalAmt": str(total if total is not None
                                                                                else applied),
                    "Line": lines, **fields}
            return jsonable(self.store.public(self.store.create_payment(c, body)))

    def void_invoice(self, realm_id: str, invoice_id: str) -> dict[str, Any]:
        """Void as a QuickBooks user would (reads the current SyncToken itself)."""
        with self.lock:
            c = self.store.company(realm_id)
            record = self.store.get(c, "Invoice", invoice_id)
            return jsonable(self.store.public(self.store.void_invoice(c, {"Id": invoice_id,
                                                                          "SyncToken": record["SyncToken"]})))

    def void_payment(self, realm_id: str, payment_id: str) -> dict[str, Any]:
        """Void a payment as a QuickBooks user would (§4: the ``operation=update&include=void`` effect)."""
        with self.lock:
            c = self.store.company(realm_id)
            record = self.store.get(c, "Payment", payment_id)
            return jsonable(self.store.public(self.store.void_payment(c, {"Id": payment_id,
                                                                          "SyncToken": record["SyncToken"]})))

    def delete_payment(self, realm_id: str, payment_id: str) -> dict[str, Any]:
        """Delete a payment as a QuickBooks user would (§2 ``operation=delete``; a later read gives 610)."""
        with self.lock:
            c = self.store.company(realm_id)
            record = self.store.get(c, "Payment", payment_id)
            return jsonable(self.store.delete_txn(c, "Payment", {"Id": payment_id, "SyncToken": record["SyncToken"]}))

    # ----------------------------------------------------------------- HTTP
    def _guard(self, req: Request, run: Any) -> Response:
        """Latency, then scheduled/random faults around the real handler (as in the Zoho emulator)."""
        delay = self.faults.pick_delay()
        if delay > 0 and req.path.startswith("/v3/"):
            req.environ["qbo.delay"] = delay  # spent while the request counts as in flight
        elif delay > 0:
            time.sleep(delay)
        fault = self.faults.take(req.method, req.path, req.path)
        if fault is not None and fault.kind == "error":
            return _error_response(E.system_error(fault.status))
        if fault is not None and fault.kind == "rate_limit":
            return _error_response(E.throttled(self.limiter.config.json_429))
        try:
            response: Response = run()
        except QBOError as err:
            headers = []
            if err.status == 429 and self.limiter.config.retry_after is not None:
                headers.append(("Retry-After", str(self.limiter.config.retry_after)))
            response = _error_response(err, headers)
        except OAuthError as err:
            response = Response.json(err.status, err.body())
        if fault is not None and fault.kind in ("lost", "dropped"):
            response.lost = True
            response.partial = fault.kind == "lost"
        elif fault is not None and fault.kind == "error_after_commit":
            response = _error_response(E.system_error(fault.status))
        return response

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            req = self._request(environ)
            response = self._dispatch(req)
        except QBOError as err:
            response = _error_response(err)
        except Exception:
            log.exception("emulator internal error")
            response = _error_response(E.system_error())
        return send(environ, start_response, response)

    @staticmethod
    def _request(environ: dict[str, Any]) -> Request:
        return read_request(environ, lambda: QBOError(413, "413", "Request body too large",
                                                      message="Payload Too Large"))

    def _dispatch(self, req: Request) -> Response:
        from .control import handle_control

        if req.path.startswith("/_emulator/"):
            return handle_control(self, req)
        if req.path.startswith("/v3/company/"):
            return self._guard(req, lambda: self.api.handle(req))
        if req.path.rstrip("/") in (AUTHORIZE_PATH, TOKEN_PATH, REVOKE_PATH):
            return self._guard(req, lambda: self._oauth(req))
        return Response.json(404, {"error": "not_found"})

    def _newest_realm(self) -> str | None:
        with self.lock:
            return next(reversed(self.store.companies), None)

    def _oauth(self, req: Request) -> Response:
        path = req.path.rstrip("/")
        if path == AUTHORIZE_PATH:
            if req.method != "GET":
                return Response.json(405, {"error": "method_not_allowed"})
            location = self.oauth.authorize(req.query, self._newest_realm())
            return Response(302, b"", [("Location", location)])
        if req.method != "POST":
            return Response.json(405, {"error": "method_not_allowed"})
        auth = req.headers.get("authorization")
        if path == TOKEN_PATH:
            if req.content_type != "application/x-www-form-urlencoded":
                raise OAuthError(400, "invalid_request", "the body must be form-encoded")
            return Response.json(200, self.oauth.token(auth, req.form(), req.headers))
        try:
            token = json.loads(req.body or b"{}").get("token", "")
        except (ValueError, AttributeError):
            raise OAuthError(400, "invalid_request", "the body must be JSON {\"token\": ...}") from None
        self.oauth.revoke(auth, str(token))
        return Response(200, b"", [])
