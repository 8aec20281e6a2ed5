"""HTTP to the QuickBooks Online Accounting API v3 and the mapping of its failures onto the core's errors.

* 200 → the JSON answer.
* 401 (code 3200, lowercase gateway shape) → refresh the token once and retry; again → :class:`AuthError`.
* 403 (code 3100) → :class:`AuthError`: the grant does not reach this company.
* 429 (code 3001, XML body) → :class:`RateLimitedError` (``Retry-After`` when sent, else
  ``throttle_retry_after``).
* 5xx, timeouts, connection errors → :class:`TransientError`; a write may have been applied
  (``uncertain``) unless the connection was never made. Writes carry a ``requestid``, so a retry of the
  same body is answered with the original result (QUICKBOOKS.md §2 "requestid").
* 400 ``Fault`` → :class:`QBOFault` (a :class:`PermanentError` with the code, message and detail).

Faults are read case-insensitively (``Fault``/``fault``) and from XML (§2 "Error envelope").
Messages name the method and path and Intuit's message, never a token.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import requests
import urllib3.exceptions

from integration_core.context import ProviderContext
from integration_core.errors import AuthError, PermanentError, RateLimitedError, TransientError

from . import oauth
from .config import MINOR_VERSION, Settings, validate_settings

log = logging.getLogger(__name__)
REQUEST_ID_NAMESPACE = uuid.UUID("5b0e4f2e-7d0c-4c55-9a53-3c3b1f0e9a51")


class QBOFault(PermanentError):
    """A validation fault; ``code`` is Intuit's code (a string of digits), ``detail`` its Detail text."""

    def __init__(self, message: str, *, code: str | int | None, detail: str = "", element: str = "") -> None:
        super().__init__(message, code=code)
        self.detail = detail
        self.element = element


def request_id(*parts: Any) -> str:
    """A stable ``requestid`` (36 characters; Intuit allows 50) for one logical write."""
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, json.dumps(parts, sort_keys=True, default=str)))


def quote(value: str) -> str:
    """A query string literal: single quotes, the apostrophe escaped with a backslash (§2 Query language)."""
    return "'" + value.replace("'", "\\'") + "'"


def queryable(value: str) -> bool:
    """False for characters QuickBooks' query lexer rejects or treats specially (§2: typographic quotes)."""
    return not any(ch in value for ch in "\u2018\u2019\u201c\u201d\\%") and all(ord(ch) >= 32 for ch in value)


def _never_sent(exc: BaseException) -> bool:
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


def parse_fault(response: requests.Response) -> tuple[str | None, str, str, str]:
    """(code, message, detail, element) from any of the three error shapes; code None when unreadable."""
    text = response.content.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        lower = {k.lower(): v for k, v in data.items()}
        fault = lower.get("fault")
        if isinstance(fault, dict):
            fault_l = {k.lower(): v for k, v in fault.items()}
            errors = fault_l.get("error")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                first = {k.lower(): v for k, v in errors[0].items()}
                return (str(first.get("code")) if first.get("code") is not None else None,
                        str(first.get("message") or "")[:300], str(first.get("detail") or "")[:500],
                        str(first.get("element") or ""))
        if "error" in lower:  # OAuth-style answer
            return None, str(lower.get("error")), str(lower.get("error_description") or ""), ""
    code = re.search(r'<Error[^>]*\bcode="(\d+)"', text)
    message = re.search(r"<Message>(.*?)</Message>", text, re.S)
    detail = re.search(r"<Detail>(.*?)</Detail>", text, re.S)
    return (code.group(1) if code else None, message.group(1)[:300] if message else "",
            detail.group(1)[:500] if detail else "", "")


class QBClient:
    """One connection's view of the API: the company URL, token handling, error mapping."""

    def __init__(self, ctx: ProviderContext, settings: Settings | None = None) -> None:
        self.ctx = ctx
        self.settings = settings or validate_settings(ctx.settings)
        if not self.settings.realm_id:
            raise AuthError("the QuickBooks connection has no company id (realm_id); authorize it")

    @property
    def realm_id(self) -> str:
        return self.settings.realm_id

    @property
    def company_url(self) -> str:
        return f"{self.settings.api_base}/v3/company/{self.realm_id}"

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any, params: Mapping[str, Any] | None = None, *,
             request_id: str | None = None) -> dict[str, Any]:
        return self.request("POST", path, params=params, body=body, request_id=request_id)

    def query(self, text: str) -> dict[str, Any]:
        """Run a query; the answer's ``QueryResponse`` (``{}`` when nothing matched)."""
        answer = self.get("/query", {"query": text})
        result = answer.get("QueryResponse")
        return result if isinstance(result, dict) else {}

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
                request_id: str | None = None) -> dict[str, Any]:
        query: dict[str, Any] = {**(params or {}), "minorversion": MINOR_VERSION}
        if request_id:
            query["requestid"] = request_id
        token = oauth.access_token(self.ctx, self.settings)
        response = self._send(method, path, query, body, token)
        if response.status_code == 401:
            code = parse_fault(response)[0]
            log.info("quickbooks %s %s: 401 (code %s), refreshing the access token once", method, path, code)
            token = oauth.refresh(self.ctx, self.settings, rejected=token)
            response = self._send(method, path, query, body, token)
            if response.status_code == 401:
                _, message, detail, _ = parse_fault(response)
                raise AuthError(f"QuickBooks refused the credentials for {method} {path} after a token refresh "
                                f"({detail or message}); authorize the connection again", code=code or 401)
        return self._check(method, path, response)

    def _send(self, method: str, path: str, query: dict[str, Any], body: Any, token: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body, default=_json_default).encode("utf-8")
        write = method.upper() != "GET"
        self.ctx.note_request()  # counts against the company's limit
        try:
            response = self.ctx.http.request(method, self.company_url + path, params=query, data=data,
                                             headers=headers,
                                             timeout=(self.settings.connect_timeout, self.settings.read_timeout))
        except requests.RequestException as exc:
            sent = not _never_sent(exc)
            kind = "timed out" if isinstance(exc, requests.Timeout) else "failed"
            raise TransientError(f"QuickBooks {method} {path} {kind} ({type(exc).__name__})"
                                 + ("; it may have been applied" if write and sent else ""),
                                 uncertain=write and sent) from None
        log.debug("quickbooks %s %s -> %s", method, path, response.status_code)
        return response

    def _check(self, method: str, path: str, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        write = method.upper() != "GET"
        where = f"QuickBooks {method} {path}"
        if status == 200:
            try:
                data = response.json(parse_float=Decimal)
            except ValueError:
                raise TransientError(f"{where}: unreadable answer", uncertain=write) from None
            if not isinstance(data, dict):
                raise TransientError(f"{where}: unexpected answer", uncertain=write)
            return data
        code, message, detail, element = parse_fault(response)
        text = "; ".join(p for p in (message, detail) if p) or f"HTTP {status}"
        if status == 429 or code == "3001":
            retry = response.headers.get("Retry-After")
            try:
                retry_after = float(retry) if retry else self.settings.throttle_retry_after
            except ValueError:
                retry_after = self.settings.throttle_retry_after
            raise RateLimitedError(f"{where}: throttled ({text})", code=code or 429, retry_after=retry_after)
        if status >= 500 or status == 408:
            raise TransientError(f"{where}: HTTP {status} ({text})" + ("; it may have been applied" if write else ""),
                                 code=code or status, uncertain=write)
        if status in (401, 403):
            raise AuthError(f"{where}: {text}; the grant does not reach company {self.realm_id}: authorize the "
                            f"connection again with a user of that company", code=code or status)
        raise QBOFault(f"{where}: {text} (code {code or status})", code=code or str(status), detail=detail,
                       element=element)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
