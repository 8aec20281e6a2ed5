"""The WSGI dispatcher: webhooks in, the OAuth callback, and a health check. Stdlib only, no framework.

Routes (relative to wherever the app is mounted; ``PATH_INFO`` only):

* ``POST /v1/webhooks/<provider>/<tenant_id>/<environment_id>`` → verify, parse, store and apply.
* ``GET /v1/oauth/callback?code=…&state=…`` → :meth:`Hub.complete_authorization`, a small HTML page.
* ``GET /healthz`` → ``{"status": "ok"}`` when the database answers.

Status codes of the webhook route, in the order they are decided:

====  =========================================================================================
404   not exactly one enabled connection for the (provider, tenant, environment) of the path
405   another method than POST (``Allow: POST``)
411   no Content-Length and a body that is not self-delimiting (chunked bodies are fine)
413   body over ``config.max_webhook_bytes`` (from Content-Length without reading, or while reading)
401   signature missing or wrong (``verify_webhook``); a webhook signed for another tenant lands here
400   ``parse_event`` rejected the body, or failed in any way
200   every event stored and applied, ignored (with a reason) or a duplicate (acknowledged, no effect)
503   a host hook failed: the event is stored ``failed`` with the reason and the sender is asked to
      retry (``Retry-After``); the redelivery applies it then (already-applied events stay applied)
500   our own failure (e.g. the database is down): a generic body, the exception type in the log
====  =========================================================================================

Why 503 for host failures: providers such as accounting systems retry non-2xx deliveries, and most host
failures are transient (a locked database, a deploy). Acknowledging with 200 would turn them into
events only an operator can replay (``integration-core events retry``), which still works either way.

Nothing secret or request-specific is logged: only exception types and ids.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

import sqlalchemy as sa

from . import inbound
from .bootstrap import hub_from_env
from .errors import IntegrationError, WebhookRejected
from .models import EVENT_TYPES, ConnectionStatus, WebhookRequest
from .redact import log_internal

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)

WEBHOOK_PREFIX = "/v1/webhooks/"
CALLBACK_PATH = "/v1/oauth/callback"
HEALTH_PATH = "/healthz"
_EVENT_TYPES = tuple(EVENT_TYPES.values())  # every normalized event kind of models
_SEGMENT = re.compile(r"^[^\x00-\x1f\x7f/]{1,200}$")
_READ_CHUNK = 64 * 1024

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Reply(Exception):
    def __init__(self, status: int, body: dict[str, Any] | str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or []


_REASONS = {
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


def webhook_path(provider: str, tenant_id: str, environment_id: str) -> str:
    return f"{WEBHOOK_PREFIX}{provider}/{tenant_id}/{environment_id}"


def webhook_url(public_url: str, provider: str, tenant_id: str, environment_id: str) -> str:
    """The URL to type into the provider's webhook settings."""
    return public_url.rstrip("/") + webhook_path(
        quote(provider, safe=""), quote(tenant_id, safe=""), quote(environment_id, safe="")
    )


def callback_url(public_url: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PATH


class Dispatcher:
    """The WSGI callable. Thread-safe (state lives in the Hub's database)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, body, headers = self._route(environ)
        except _Reply as reply:
            status, body, headers = reply.status, reply.body, reply.headers
        except Exception as exc:  # last line of defence: never a traceback in a response
            _log_internal("request", exc)
            status, body, headers = 500, {"error": "internal error"}, []
        return _respond(start_response, status, body, headers)

    # --- routing ---------------------------------------------------------------------------------

    def _route(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any] | str, list[tuple[str, str]]]:
        try:
            path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise _Reply(404, {"error": "not found"}) from None
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if path.startswith(WEBHOOK_PREFIX):
            parts = path[len(WEBHOOK_PREFIX) :].split("/")
            if len(parts) != 3 or not all(_SEGMENT.match(p) for p in parts):
                raise _Reply(404, {"error": "not found"})
            if method != "POST":
                raise _Reply(405, {"error": "method not allowed"}, [("Allow", "POST")])
            return self._webhook(environ, method, path, parts[0], parts[1], parts[2])
        if path == CALLBACK_PATH:
            if method not in ("GET", "HEAD"):
                raise _Reply(405, {"error": "method not allowed"}, [("Allow", "GET")])
            return self._oauth_callback(environ)
        if path == HEALTH_PATH:
            if method not in ("GET", "HEAD"):
                raise _Reply(405, {"error": "method not allowed"}, [("Allow", "GET")])
            return self._health()
        raise _Reply(404, {"error": "not found"})

    # --- webhooks --------------------------------------------------------------------------------

    def _webhook(
        self, environ: dict[str, Any], method: str, path: str, provider_name: str, tenant_id: str, environment_id: str
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        hub = self.hub
        ctx = hub.find_context(provider_name, tenant_id, environment_id)
        if ctx is None or ctx.record.status == ConnectionStatus.DISABLED:
            raise _Reply(404, {"error": "not found"})
        conn = ctx.record
        try:
            provider = hub.provider(conn.provider)
        except IntegrationError:
            log.warning("webhook for connection %s: provider %s is not installed", conn.id, conn.provider)
            raise _Reply(404, {"error": "not found"}) from None
        body = _read_body(environ, int(hub.config.max_webhook_bytes))
        request = _build_request(environ, method, path, body)
        try:
            authentic = provider.verify_webhook(ctx=ctx, request=request)
        except WebhookRejected as exc:
            log.info("webhook for connection %s rejected by verification (%s)", conn.id, exc.status)
            raise _Reply(401, {"error": "signature not valid"}) from None
        except Exception as exc:
            log.warning("webhook for connection %s: verify_webhook raised %s", conn.id, exc.__class__.__name__)
            raise _Reply(401, {"error": "signature not valid"}) from None
        if authentic is not True:
            log.info("webhook for connection %s: signature missing or not valid", conn.id)
            raise _Reply(401, {"error": "signature not valid"})
        try:
            parsed = provider.parse_event(ctx=ctx, request=request)
            if parsed is None or isinstance(parsed, str | bytes | dict):
                raise TypeError("parse_event must return a list of events")
            events = list(parsed)
            if not all(isinstance(e, _EVENT_TYPES) for e in events):
                raise TypeError("parse_event must return a list of events")
        except WebhookRejected as exc:
            status = exc.status if exc.status in (400, 413) else 400
            log.info("webhook for connection %s rejected by parse_event (%s)", conn.id, status)
            raise _Reply(status, {"error": "malformed webhook"}) from None
        except Exception as exc:
            log.warning("webhook for connection %s: parse_event raised %s", conn.id, exc.__class__.__name__)
            raise _Reply(400, {"error": "malformed webhook"}) from None
        try:
            outcomes = inbound.apply(hub, conn, events)
        except Exception as exc:
            _log_internal(f"inbound apply for connection {conn.id}", exc)
            raise _Reply(500, {"error": "internal error"}) from None
        summary = inbound.summarize(outcomes)
        if summary["failed"]:
            return 503, {"status": "retry", **summary}, [("Retry-After", "60")]
        return 200, {"status": "ok", **summary}, []

    # --- OAuth callback --------------------------------------------------------------------------

    def _oauth_callback(self, environ: dict[str, Any]) -> tuple[int, str, list[tuple[str, str]]]:
        params = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        if params.get("error"):
            return 400, _page("Not connected", f"The account owner did not grant access ({params['error']})."), []
        state, code = params.pop("state", ""), params.pop("code", "")
        if not state or not code:
            return 400, _page("Not connected", "The callback needs both code and state parameters."), []
        try:
            conn = self.hub.complete_authorization(state, code, params)
        except IntegrationError as exc:
            log.info("OAuth callback failed: %s", exc.__class__.__name__)
            return 400, _page("Not connected", f"Authorization failed: {exc}"), []
        message = f"Connection {conn.name} ({conn.provider}) is connected. You can close this page."
        return 200, _page("Connected", message), []

    # --- health ----------------------------------------------------------------------------------

    def _health(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        try:
            with self.hub.engine.connect() as db:
                db.execute(sa.text("SELECT 1"))
        except Exception as exc:
            _log_internal("health check", exc)
            return 503, {"status": "unavailable"}, []
        return 200, {"status": "ok"}, []


def create_app(hub: Hub) -> WSGIApp:
    """A WSGI application for ``hub``: mount it under any path in any WSGI server or framework."""
    return Dispatcher(hub)


def app_from_env() -> WSGIApp:
    """For ``gunicorn 'integration_core.webhooks:app_from_env()'``: a Hub from ``IC_*`` variables.

    Host hooks come from ``IC_HOST`` (``module:attribute``), when set, so a host can run the stock app.
    """
    return create_app(hub_from_env())


_gunicorn_app: WSGIApp | None = None
_gunicorn_lock = threading.Lock()


def gunicorn_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``gunicorn integration_core.webhooks:gunicorn_app``: builds the app from ``IC_*`` on first request
    (in each worker, after the fork, so no database connection is shared across processes)."""
    global _gunicorn_app
    if _gunicorn_app is None:
        with _gunicorn_lock:
            if _gunicorn_app is None:
                _gunicorn_app = app_from_env()
    return _gunicorn_app(environ, start_response)


# --- helpers -----------------------------------------------------------------------------------------


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, never more than ``limit`` bytes read (413 past it)."""
    stream = environ.get("wsgi.input")
    raw_length = str(environ.get("CONTENT_LENGTH") or "").strip()
    if raw_length:
        # ASCII digits only: str.isdigit() also accepts "²" (int() refuses it), and int() refuses over 4300 digits.
        if not (raw_length.isascii() and raw_length.isdigit()):
            raise _Reply(400, {"error": "bad content-length"})
        digits = raw_length.lstrip("0") or "0"
        if len(digits) > len(str(limit)) or int(digits) > limit:
            raise _Reply(413, {"error": "body too large"})
        return _read_exact(stream, int(digits))
    chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    if environ.get("wsgi.input_terminated") and stream is not None:
        return _read_to_end(stream, limit)
    if chunked:
        raise _Reply(411, {"error": "length required"})
    return b""  # no Content-Length and nothing self-delimiting: PEP 3333 says there is no body


def _read_exact(stream: Any, length: int) -> bytes:
    if stream is None or length == 0:
        return b""
    parts: list[bytes] = []
    remaining = length
    while remaining > 0:
        piece = _read_piece(stream, min(remaining, _READ_CHUNK))
        if not piece:
            break
        parts.append(piece)
        remaining -= len(piece)
    return b"".join(parts)


def _read_to_end(stream: Any, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        piece = _read_piece(stream, _READ_CHUNK)
        if not piece:
            return b"".join(parts)
        total += len(piece)
        if total > limit:
            raise _Reply(413, {"error": "body too large"})
        parts.append(piece)


def _read_piece(stream: Any, size: int) -> bytes:
    """One read of the body; a malformed chunked encoding or a broken client connection is the client's 400."""
    try:
        return stream.read(size)
    except (ValueError, OSError):
        raise _Reply(400, {"error": "malformed body"}) from None


def _build_request(environ: dict[str, Any], method: str, path: str, body: bytes) -> WebhookRequest:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = str(value)
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = str(environ["CONTENT_LENGTH"])
    query = _parse_qs_utf8(str(environ.get("QUERY_STRING", "")))
    form: dict[str, list[str]] = {}
    if headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            form = {}
    return WebhookRequest(method=method, path=path, query=query, headers=headers, body=body, form=form)


def _parse_qs_utf8(query: str) -> dict[str, list[str]]:
    try:
        return parse_qs(query.encode("latin-1").decode("utf-8"), keep_blank_values=True)
    except (UnicodeEncodeError, UnicodeDecodeError, ValueError):
        return parse_qs(query, keep_blank_values=True, errors="replace")


def _page(title: str, message: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + "</title></head><body><h1>"
        + html.escape(title)
        + "</h1><p>"
        + html.escape(message)
        + "</p></body></html>"
    )


def _respond(
    start_response: StartResponse, status: int, body: dict[str, Any] | str, headers: list[tuple[str, str]]
) -> list[bytes]:
    if isinstance(body, str):
        data, content_type = body.encode("utf-8"), "text/html; charset=utf-8"
    else:
        data, content_type = json.dumps(body, sort_keys=True).encode(), "application/json"
    all_headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(data))),
        ("Cache-Control", "no-store"),
        *headers,
    ]
    start_response(f"{status} {_REASONS.get(status, 'Status')}", all_headers)
    return [data]


def _log_internal(what: str, exc: BaseException) -> None:
    log_internal(log, what, exc)
