"""The WSGI dispatcher: webhooks in, the OAuth callback, and a health check. Stdlib only, no framework.

A thin adapter over :mod:`integration_core.webhook_entry` (``Hub.handle_webhook``), which the recipes
for Django, Flask and FastAPI in ``docs/embedding.md`` call too: this module only routes ``PATH_INFO``
and reads the body from ``wsgi.input``.

Routes (relative to wherever the app is mounted; ``PATH_INFO`` only):

* ``POST /v1/webhooks/<provider>/<tenant_id>/<environment_id>`` → verify, parse, store and apply.
* ``POST /v1/webhooks/<provider>`` → the provider-level endpoint (one URL for every account of an app):
  verified with the provider-level secrets, routed to connections by the payload
  (:mod:`integration_core.app_webhooks`).
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

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from .bootstrap import hub_from_env
from .redact import log_internal
from .validation import segment_error
from .webhook_entry import WEBHOOK_PREFIX, Refused, WebhookResponse, respond
from .webhook_entry import webhook_path as webhook_path

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)

CALLBACK_PATH = "/v1/oauth/callback"
HEALTH_PATH = "/healthz"
_READ_CHUNK = 64 * 1024

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_Reply = Refused  # a body reader's early answer (400, 411, 413)


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
            response = self._route(environ)
        except Refused as reply:
            response = respond(reply.status, reply.body, reply.headers)
        except Exception as exc:  # last line of defence: never a traceback in a response
            _log_internal("request", exc)
            response = respond(500, {"error": "internal error"})
        start_response(response.status_line, [*response.headers[:1], ("Content-Length", str(len(response.body))),
                                              *response.headers[1:]])
        return [response.body]

    def _route(self, environ: dict[str, Any]) -> WebhookResponse:
        try:
            path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise Refused(404, {"error": "not found"}) from None
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if path.startswith(WEBHOOK_PREFIX):
            parts = path[len(WEBHOOK_PREFIX) :].split("/")
            if len(parts) not in (1, 3) or any(segment_error(p) for p in parts):
                raise Refused(404, {"error": "not found"})
            tenant, env = (parts[1], parts[2]) if len(parts) == 3 else (None, None)  # 1: provider-level
            return self.hub.entry.handle(  # the body is read once the connection is known
                parts[0], tenant, env, method=method, headers=_headers(environ),
                query=str(environ.get("QUERY_STRING", "")), body=lambda limit: _read_body(environ, limit), path=path,
            )
        if path == CALLBACK_PATH:
            if method not in ("GET", "HEAD"):
                raise Refused(405, {"error": "method not allowed"}, [("Allow", "GET")])
            return self.hub.entry.oauth_callback(_wsgi_query(environ))
        if path == HEALTH_PATH:
            if method not in ("GET", "HEAD"):
                raise Refused(405, {"error": "method not allowed"}, [("Allow", "GET")])
            return self.hub.entry.health()
        raise Refused(404, {"error": "not found"})


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
    if remaining:  # the client went away before sending what it announced: never process a partial body
        raise _Reply(400, {"error": "body shorter than content-length"})
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


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = str(value)
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = str(environ["CONTENT_LENGTH"])
    return headers


def _wsgi_query(environ: dict[str, Any]) -> dict[str, list[str]]:
    """The callback's parameters as before: ``parse_qs`` of the raw ``QUERY_STRING``."""
    return parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)


def _log_internal(what: str, exc: BaseException) -> None:
    log_internal(log, what, exc)
