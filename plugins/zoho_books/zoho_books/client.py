"""HTTP to the Zoho Books API v3 and the mapping of its failures onto the core's typed errors.

Mapping (the class decides what the core does next):

* envelope ``code`` 0 → success; HTTP 2xx with another code → :class:`PermanentError`.
* 429: code 44 (per minute) → :class:`RateLimitedError` with ``retry_after`` from ``Retry-After`` or 60 s;
  45 (daily) → until the next UTC day; 1070 (concurrency) → 2 s.
* 401 (codes 14, 57) → refresh the token once and retry; a second 401 → :class:`AuthError`.
  6041 (user not in the organization) and 403 → :class:`AuthError`: the grant cannot reach the data.
* 5xx, timeouts, connection errors → :class:`TransientError`; for a POST the request may have been
  committed, so ``uncertain=True`` unless the connection was never made.
* other 4xx (validation, 404 code 1002) → :class:`PermanentError` with Zoho's message and code.

Messages carry the method, path and Zoho's message, never a token or secret.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import requests
import urllib3.exceptions

from integration_core.context import ProviderContext
from integration_core.errors import AuthError, PermanentError, RateLimitedError, TransientError

from . import oauth
from .config import Settings, validate_settings
from .payloads import dumps, loads

log = logging.getLogger(__name__)

RATE_LIMIT_MINUTE = 44
RATE_LIMIT_DAILY = 45
RATE_LIMIT_CONCURRENCY = 1070
UNAUTHORIZED_CODES = (14, 57)
ORG_NOT_ASSOCIATED = 6041
CONCURRENCY_RETRY_AFTER = 2.0
MINUTE_RETRY_AFTER = 60.0


def _never_sent(exc: BaseException) -> bool:
    """True when the failure happened before the request reached the server (safe to resend a write)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return True
        if isinstance(current, urllib3.exceptions.MaxRetryError) and current.reason is not None:
            current = current.reason
            continue
        nxt = current.__cause__ or current.__context__
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        current = nxt
    return False


def _seconds_until_next_utc_day(now: dt.datetime | None = None) -> float:
    now = now or dt.datetime.now(dt.UTC)
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(60.0, (tomorrow - now).total_seconds())


def _retry_after_header(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
        return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class ZohoClient:
    """One connection's view of the API: base URL, organization, token handling, error mapping."""

    def __init__(self, connection: ProviderContext, settings: Settings | None = None) -> None:
        self.connection = connection
        self.settings = settings or validate_settings(connection.settings)

    @property
    def base_url(self) -> str:
        return f"{self.connection.settings.get('api_domain') or self.settings.api_domain}".rstrip("/") + "/books/v3"

    # --- public helpers ---------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.request("POST", path, params=params, body=body)

    def put(self, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.request("PUT", path, params=params, body=body)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
                organization: bool = True) -> dict[str, Any]:
        """Send one call (refreshing the token once on 401) and return the success envelope."""
        query: dict[str, Any] = dict(params or {})
        if organization:
            query["organization_id"] = self.settings.organization_id
        token = oauth.access_token(self.connection, self.settings)
        response = self._send(method, path, query, body, token)
        if response.status_code == 401 and self._code(response) != ORG_NOT_ASSOCIATED:
            code = self._code(response)
            log.info("zoho_books %s %s: 401 (code %s), refreshing the access token once", method, path, code)
            token = oauth.refresh(self.connection, self.settings, rejected=token)
            response = self._send(method, path, query, body, token)
            if response.status_code == 401 and self._code(response) != ORG_NOT_ASSOCIATED:
                raise AuthError(f"Zoho Books refused the credentials for {method} {path} after a token refresh "
                                f"({self._message(self._envelope(response))}); authorize the connection again "
                                f"(it needs the scopes {', '.join(oauth.SCOPES)})", code=self._code(response))
        return self._check(method, path, response)

    # --- internals --------------------------------------------------------------------------------

    def _send(self, method: str, path: str, query: dict[str, Any], body: Any, token: str) -> requests.Response:
        headers = {"Authorization": f"Zoho-oauthtoken {token}", "Accept": "application/json"}
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json;charset=UTF-8"
            data = dumps(body).encode("utf-8")
        write = method.upper() != "GET"
        self.connection.note_request()  # counts against the organization's rate limit
        try:
            response = self.connection.http.request(
                method, self.base_url + path, params=query, data=data, headers=headers,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
            )
        except requests.RequestException as exc:
            sent = not _never_sent(exc)
            kind = "timed out" if isinstance(exc, requests.Timeout) else "failed"
            raise TransientError(
                f"Zoho Books {method} {path} {kind} ({type(exc).__name__})"
                + ("; it may have been applied" if write and sent else ""),
                uncertain=write and sent,
            ) from None
        log.debug("zoho_books %s %s -> %s", method, path, response.status_code)
        return response

    @staticmethod
    def _envelope(response: requests.Response) -> Any:
        try:
            return loads(response.content)
        except ValueError:
            return None

    @classmethod
    def _code(cls, response: requests.Response) -> int | None:
        envelope = cls._envelope(response)
        try:
            return int(envelope["code"]) if isinstance(envelope, dict) and envelope.get("code") is not None else None
        except (TypeError, ValueError):
            return None

    @staticmethod
    def _message(envelope: Any) -> str:
        if isinstance(envelope, dict) and envelope.get("message"):
            return str(envelope["message"])[:500]
        return "no message"

    def _check(self, method: str, path: str, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        write = method.upper() != "GET"
        envelope = self._envelope(response)
        code = self._code(response)
        message = self._message(envelope)
        where = f"Zoho Books {method} {path}"
        if 200 <= status < 300:
            if not isinstance(envelope, dict):
                raise TransientError(f"{where}: unreadable answer (HTTP {status})", uncertain=write)
            if code in (0, None):
                return envelope
            raise PermanentError(f"{where}: {message} (code {code})", code=code)
        if status == 429 or code in (RATE_LIMIT_MINUTE, RATE_LIMIT_DAILY, RATE_LIMIT_CONCURRENCY):
            header = _retry_after_header(response)
            if code == RATE_LIMIT_DAILY:
                retry_after = header if header is not None else _seconds_until_next_utc_day()
                what = "daily request limit"
            elif code == RATE_LIMIT_CONCURRENCY:
                retry_after = header if header is not None else CONCURRENCY_RETRY_AFTER
                what = "concurrent request limit"
            else:
                retry_after = header if header is not None else MINUTE_RETRY_AFTER
                what = "per-minute request limit"
            raise RateLimitedError(f"{where}: {what} reached ({message})", code=code or status,
                                   retry_after=retry_after)
        if status >= 500:
            raise TransientError(f"{where}: HTTP {status} ({message})" + ("; it may have been applied" if write
                                                                          else ""),
                                 code=code or status, uncertain=write)
        if status == 403 or code == ORG_NOT_ASSOCIATED:
            raise AuthError(f"{where}: {message} (code {code}); check organization_id "
                            f"{self.settings.organization_id} and authorize with a user of that organization",
                            code=code or status)
        if status == 401:  # only reached when called without the refresh path
            raise AuthError(f"{where}: {message}", code=code or status)
        if status == 408:
            raise TransientError(f"{where}: HTTP 408", code=status, uncertain=write)
        raise PermanentError(f"{where}: {message} (code {code}, HTTP {status})", code=code if code is not None
                             else status)
