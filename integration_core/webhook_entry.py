"""The framework-agnostic webhook entry: one call per request, whatever the web framework.

``Hub.handle_webhook`` (this module's :class:`WebhookEntry`) takes what any framework can give (method,
headers, query string, the raw body) and answers a :class:`WebhookResponse` (status, headers, body) for
the framework to send. The stock WSGI app (:mod:`integration_core.webhooks`) is a thin adapter over it,
and so are the Django, Flask and FastAPI recipes of ``docs/embedding.md``: there is one code path.

The order in which the status is decided (the table in :mod:`integration_core.webhooks`):
404 (bad segment, or not exactly one enabled connection), 405, then the body (400/411/413), 401
(``verify_webhook``), 400 (``parse_event``), and 200 / 503 / 500 from storing and applying the events.

The body must be the bytes the sender signed, never a framework's re-serialization. Pass ``bytes``, a
file-like object (read only once the connection is known: at most ``max_webhook_bytes`` + 1 bytes, and
not at all when ``Content-Length`` is already too large), or a callable ``read(limit) -> bytes`` (the
WSGI adapter's, which reads ``wsgi.input``); a callable may raise :class:`Refused`.

Provider-level endpoints (one URL per provider, the connections named by the payload) call
:meth:`WebhookEntry.handle` with ``tenant_id=None``: verified with the provider-level secrets and routed by
the provider's ``route_webhook`` hook (:mod:`integration_core.app_webhooks`); 404 for a provider without it.

A connection's context (its decrypted secrets) is cached per process and checked against the row on
each delivery by the very statement that stores its first event (an :class:`inbound.Guard`, so the check
costs no round trip): a connection changed since (secrets, settings, status), or its provider's
provider-level settings and secrets (``providers configure``), is read again and the delivery re-verified
with it.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

import attrs
import sqlalchemy as sa

from . import app_webhooks, inbound
from .context import ProviderContext
from .errors import IntegrationError, WebhookRejected
from .metrics import webhook_answered
from .models import ConnectionStatus, WebhookRequest
from .redact import log_internal
from .store.schema import connections, provider_configs
from .validation import segment_error

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)
_OAUTH_ERRORS = frozenset({
    "access_denied", "invalid_request", "unauthorized_client", "unsupported_response_type", "invalid_scope",
    "server_error", "temporarily_unavailable",
})

WEBHOOK_PREFIX = "/v1/webhooks/"

_READ_CHUNK = 64 * 1024


class Readable(Protocol):
    """A file-like request body: Django's ``request``, Flask's ``request.stream``, ``wsgi.input``."""

    def read(self, size: int = -1, /) -> bytes: ...


Body = bytes | Readable | Callable[[int], bytes]
Headers = Mapping[str, str] | Iterable[tuple[str, str]]
Query = str | bytes | Mapping[str, str | list[str]]

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


# What a cached connection context depends on: the row's values, read with the context and compared by the
# guard of the storing insert. JSON settings are compared as the stored text. The provider-level values every
# connection falls back to (``apps.py``) are in it too: a new provider-level webhook secret changes the context.
# Stored secrets are a Fernet token, new on every write. Not updated_at: every lease and schedule write of the
# outbound worker moves it (onupdate).
_JOINED = connections.outerjoin(provider_configs, provider_configs.c.provider == connections.c.provider)
_DEPENDS_ON = {
    "status": connections.c.status,
    "secrets": connections.c.secrets,
    "settings_text": sa.cast(connections.c.settings, sa.Text),
    "name": connections.c.name,
    "invoices_outbound": connections.c.invoices_outbound,
    "customers_inbound": connections.c.customers_inbound,
    "app_settings_text": sa.cast(provider_configs.c.settings, sa.Text),
    "app_secrets": provider_configs.c.secrets,
}
_FIND = (
    sa.select(connections, provider_configs.c.settings.label("app_settings"),
              *(expr.label(name) for name, expr in _DEPENDS_ON.items() if name not in connections.c))
    .select_from(_JOINED)
    .where(
        connections.c.provider == sa.bindparam("provider"),
        connections.c.tenant_id == sa.bindparam("tenant"),
        connections.c.environment_id == sa.bindparam("env"),
    )
)
# "The connection's row (and its provider's) is still as seen": tested by the inbox's insert itself.
_UNCHANGED = sa.exists(
    sa.select(sa.literal(1)).select_from(_JOINED).where(
        connections.c.id == sa.bindparam("g_cid"),
        *(expr.is_not_distinct_from(sa.bindparam(f"g_{name}", type_=expr.type)) for name, expr in _DEPENDS_ON.items()),
    )
)


def fingerprint(row: Any) -> tuple[Any, ...]:
    """What a cached connection context depends on (from a row read by ``_FIND``)."""
    return tuple(getattr(row, name) for name in _DEPENDS_ON)


def _unchanged(connection_id: str, seen: tuple[Any, ...]) -> inbound.Guard:
    """The guard of the storing insert: the connection row (and its provider's) still as ``seen``."""
    values = {f"g_{name}": value for name, value in zip(_DEPENDS_ON, seen, strict=True)}
    return inbound.Guard(_UNCHANGED, {"g_cid": connection_id, **values})


@attrs.frozen
class WebhookResponse:
    """What to answer: ``status``, ``headers`` (without Content-Length) and the encoded ``body``."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def content_type(self) -> str:
        return next((v for k, v in self.headers if k.lower() == "content-type"), "application/octet-stream")

    @property
    def status_line(self) -> str:
        """``"200 OK"``, for WSGI's ``start_response``."""
        return f"{self.status} {REASONS.get(self.status, 'Status')}"

    def json(self) -> Any:
        return json.loads(self.body)


class Refused(Exception):
    """Raised by a body reader (or inside the entry) to answer ``status`` with ``body`` at once."""

    def __init__(self, status: int, body: dict[str, Any] | str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or []


def webhook_path(provider: str, tenant_id: str, environment_id: str) -> str:
    return f"{WEBHOOK_PREFIX}{provider}/{tenant_id}/{environment_id}"


def respond(status: int, body: dict[str, Any] | str, headers: Iterable[tuple[str, str]] = ()) -> WebhookResponse:
    """A JSON (dict) or HTML (str) response with the headers every answer carries."""
    if isinstance(body, str):
        data, content_type = body.encode("utf-8"), "text/html; charset=utf-8"
    else:
        data, content_type = json.dumps(body, sort_keys=True).encode(), "application/json"
    return WebhookResponse(status, (("Content-Type", content_type), ("Cache-Control", "no-store"), *headers), data)


class WebhookEntry:
    """Webhooks, the OAuth callback and the health check of one Hub (``hub.entry``). Thread-safe."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._contexts: dict[tuple[str, str, str], tuple[tuple[Any, ...], ProviderContext]] = {}
        self._lock = threading.Lock()

    # --- webhooks --------------------------------------------------------------------------------

    def handle(
        self,
        provider: str,
        tenant_id: str | None = None,
        environment_id: str | None = None,
        *,
        method: str = "POST",
        headers: Headers = (),
        query: Query = "",
        body: Body = b"",
        path: str | None = None,
    ) -> WebhookResponse:
        """Verify, parse, store and apply one delivery; never raises (500 for our own failures)."""
        answer: dict[str, Any] | str
        try:
            status, answer, extra = self._webhook(provider, tenant_id, environment_id, method, headers, query, body,
                                                  path)
        except Refused as refused:
            status, answer, extra = refused.status, refused.body, refused.headers
        except Exception as exc:  # last line of defence: never a traceback in a response
            log_internal(log, "webhook", exc)
            status, answer, extra = 500, {"error": "internal error"}, []
        webhook_answered(None if status in (404, 405) else provider, status)  # a 404/405 names no provider
        return respond(status, answer, extra)

    def _webhook(
        self,
        provider_name: str,
        tenant_id: str | None,
        environment_id: str | None,
        method: str,
        headers: Headers,
        query: Query,
        body: Body,
        path: str | None,
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        names = (provider_name, tenant_id, environment_id)
        if tenant_id is None or environment_id is None:
            return self._app_webhook(provider_name, method, headers, query, body, path)
        if any(segment_error(p) for p in names):  # the one rule for ids (validation.py)
            raise Refused(404, {"error": "not found"})
        if method.upper() != "POST":
            raise Refused(405, {"error": "method not allowed"}, [("Allow", "POST")])
        key = (provider_name, tenant_id, environment_id)
        seen, ctx, cached = self._context(key, fresh=False)
        try:
            self.hub.provider(ctx.record.provider)
        except IntegrationError:
            log.warning("webhook for connection %s: provider %s is not installed", ctx.record.id, ctx.record.provider)
            raise Refused(404, {"error": "not found"}) from None
        limit = int(self.hub.config.max_webhook_bytes)
        header_map = _headers(headers)
        raw = _read(body, header_map.get("content-length", ""), limit)
        if len(raw) > limit:
            raise Refused(413, {"error": "body too large"})
        request = build_request(method.upper(), path or webhook_path(*key), header_map, query, raw)
        for attempt in (1, 2, 3):
            try:
                events = self._verify_and_parse(ctx, request)
            except Refused:
                if not cached:
                    raise
                # Refused with a cached context: a new webhook secret may be in force. Judge by the row.
                now_seen, ctx, cached = self._context(key, fresh=True)
                if now_seen == seen:
                    raise
                seen = now_seen
                continue
            try:
                outcomes = inbound.apply(self.hub, ctx.record, events, guard=_unchanged(ctx.record.id, seen))
            except inbound.GuardFailed:
                if attempt == 3:
                    raise
                seen, ctx, cached = self._context(key, fresh=True)  # re-read, then verify again with it
                continue
            except Exception as exc:
                log_internal(log, f"inbound apply for connection {ctx.record.id}", exc)
                raise Refused(500, {"error": "internal error"}) from None
            summary = inbound.summarize(outcomes)
            if summary["failed"]:
                return 503, {"status": "retry", **summary}, [("Retry-After", "60")]
            return 200, {"status": "ok", **summary}, []
        raise AssertionError("unreachable")  # pragma: no cover: the third attempt returns or raises

    def _app_webhook(self, provider_name: str, method: str, headers: Headers, query: Query, body: Body,
                     path: str | None) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """``POST /v1/webhooks/<provider>``: 404 unless the provider routes webhooks itself, then as above."""
        if segment_error(provider_name):
            raise Refused(404, {"error": "not found"})
        if method.upper() != "POST":
            raise Refused(405, {"error": "method not allowed"}, [("Allow", "POST")])
        try:
            provider = self.hub.provider(provider_name)
        except IntegrationError:
            raise Refused(404, {"error": "not found"}) from None
        if not provider.implements("route_webhook"):
            raise Refused(404, {"error": "not found"})
        limit = int(self.hub.config.max_webhook_bytes)
        header_map = _headers(headers)
        raw = _read(body, header_map.get("content-length", ""), limit)
        if len(raw) > limit:
            raise Refused(413, {"error": "body too large"})
        request = build_request(method.upper(), path or WEBHOOK_PREFIX + provider_name, header_map, query, raw)
        return app_webhooks.deliver(self.hub, provider_name, provider, request)

    def _verify_and_parse(self, ctx: ProviderContext, request: WebhookRequest) -> list[Any]:
        conn = ctx.record
        provider = self.hub.provider(conn.provider)
        try:
            authentic = provider.verify_webhook(ctx=ctx, request=request)
        except WebhookRejected as exc:
            log.info("webhook for connection %s rejected by verification (%s)", conn.id, exc.status)
            raise Refused(401, {"error": "signature not valid"}) from None
        except Exception as exc:
            log.warning("webhook for connection %s: verify_webhook raised %s", conn.id, exc.__class__.__name__)
            raise Refused(401, {"error": "signature not valid"}) from None
        if authentic is not True:
            log.info("webhook for connection %s: signature missing or not valid", conn.id)
            raise Refused(401, {"error": "signature not valid"})
        try:
            events = app_webhooks.parse_for(provider, ctx, request)
        except WebhookRejected as exc:
            status = exc.status if exc.status in (400, 413) else 400
            log.info("webhook for connection %s rejected by parse_event (%s)", conn.id, status)
            raise Refused(status, {"error": "malformed webhook"}) from None
        except Exception as exc:
            log.warning("webhook for connection %s: parse_event raised %s", conn.id, exc.__class__.__name__)
            raise Refused(400, {"error": "malformed webhook"}) from None
        return events

    def _context(self, key: tuple[str, str, str], *, fresh: bool) -> tuple[tuple[Any, ...], ProviderContext, bool]:
        """The connection's fingerprint and context, and whether they came from the cache; 404 when there is
        no enabled connection for ``key``."""
        cached = None if fresh else self._contexts.get(key)
        if cached is not None:
            return (*cached, True)
        with self.hub.engine.connect() as db:
            row = db.execute(_FIND, {"provider": key[0], "tenant": key[1], "env": key[2]}).first()
        if row is None or row.status == ConnectionStatus.DISABLED:
            with self._lock:
                self._contexts.pop(key, None)
            raise Refused(404, {"error": "not found"})
        app = dict(row.app_settings or {}), self.hub.keys.decrypt(row.app_secrets)
        entry = (fingerprint(row), self.hub.context_from_row(row, app))
        with self._lock:
            self._contexts[key] = entry
        return (*entry, False)

    # --- OAuth callback and health ---------------------------------------------------------------

    def oauth_callback(self, query: Query) -> WebhookResponse:
        """Complete an authorization from the callback's query parameters; an HTML page to show."""
        params = {k: v[0] for k, v in _query(query).items()}
        if params.get("error"):
            # Only the standard codes are shown: the parameter is whatever the link said (RFC 6749 4.1.2.1).
            code = params["error"] if params["error"] in _OAUTH_ERRORS else "an unrecognized error"
            return respond(400, page("Not connected", f"The account owner did not grant access ({code})."))
        state, code = params.pop("state", ""), params.pop("code", "")
        if not state or not code:
            return respond(400, page("Not connected", "The callback needs both code and state parameters."))
        try:
            conn = self.hub.complete_authorization(state, code, params)
        except IntegrationError as exc:
            log.info("OAuth callback failed: %s", exc.__class__.__name__)
            return respond(400, page("Not connected", f"Authorization failed: {exc}"))
        except Exception as exc:
            log_internal(log, "OAuth callback", exc)
            return respond(500, page("Not connected", "An internal error occurred; please try again."))
        message = f"Connection {conn.name} ({conn.provider}) is connected. You can close this page."
        return respond(200, page("Connected", message))

    def health(self) -> WebhookResponse:
        """200 ``{"status": "ok"}`` when the database answers, else 503."""
        try:
            with self.hub.engine.connect() as db:
                db.execute(sa.text("SELECT 1"))
        except Exception as exc:
            log_internal(log, "health check", exc)
            return respond(503, {"status": "unavailable"})
        return respond(200, {"status": "ok"})


# --- request building ------------------------------------------------------------------------------


def build_request(method: str, path: str, headers: Mapping[str, str], query: Query, body: bytes) -> WebhookRequest:
    """The provider's view of the request; the form is parsed from the raw body, which is kept unchanged."""
    form: dict[str, list[str]] = {}
    if headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            form = {}
    return WebhookRequest(method=method, path=path, query=_query(query), headers=headers, body=body, form=form)


def _read(body: Body, content_length: str, limit: int) -> bytes:
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if callable(body):
        return body(limit)
    digits = content_length.strip().lstrip("0") or "0"
    if digits.isascii() and digits.isdigit() and (len(digits) > len(str(limit)) or int(digits) > limit):
        raise Refused(413, {"error": "body too large"})  # refused unread
    parts: list[bytes] = []
    total = 0
    while total <= limit:
        try:
            piece = body.read(min(_READ_CHUNK, limit + 1 - total))
        except (ValueError, OSError):
            raise Refused(400, {"error": "malformed body"}) from None
        if not piece:
            break
        parts.append(piece)
        total += len(piece)
    return b"".join(parts)


def _headers(headers: Headers) -> dict[str, str]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {str(k).lower(): str(v) for k, v in pairs}


def _query(query: Query) -> dict[str, list[str]]:
    if isinstance(query, bytes):
        return parse_qs(query.decode("utf-8", errors="replace"), keep_blank_values=True)
    if isinstance(query, str):
        return parse_qs_utf8(query)
    return {str(k): [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in query.items()}


def parse_qs_utf8(query: str) -> dict[str, list[str]]:
    """A WSGI ``QUERY_STRING`` (latin-1 decoded per PEP 3333) parsed as the UTF-8 it was sent as."""
    try:
        return parse_qs(query.encode("latin-1").decode("utf-8"), keep_blank_values=True)
    except (UnicodeEncodeError, UnicodeDecodeError, ValueError):
        return parse_qs(query, keep_blank_values=True, errors="replace")


def page(title: str, message: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + "</title></head><body><h1>"
        + html.escape(title)
        + "</h1><p>"
        + html.escape(message)
        + "</p></body></html>"
    )
