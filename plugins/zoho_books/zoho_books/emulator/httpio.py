"""Small request/response types shared by the accounts, Books and control handlers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from .errors import INVALID_JSON, ZohoError

MAX_BODY = 5 * 1024 * 1024
REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 302: "Found", 400: "Bad Request", 401: "Unauthorized",
    404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent  # 'n', 'N' or 'F' for NaN and infinity
        whole = isinstance(exponent, int) and exponent >= 0 and value == value.to_integral_value()
        return int(value) if whole else float(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(payload: Any) -> bytes:
    """JSON with Decimal money rendered as JSON numbers, as Zoho does."""
    return json.dumps(payload, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode()


def jsonable(payload: Any) -> Any:
    """The same value after a round trip through the wire format (Decimals become numbers)."""
    return json.loads(dumps(payload))


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    environ: dict[str, Any] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def form(self) -> dict[str, str]:
        if self.content_type == "application/x-www-form-urlencoded" or (
            self.body and self.content_type == "" and b"=" in self.body and not self.body.lstrip().startswith(b"{")
        ):
            return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        return {}

    def payload(self) -> dict[str, Any]:
        """Books request body: raw JSON, or Zoho's `JSONString=` form field (body or query)."""
        raw: str | bytes | None
        form = self.form()
        if "JSONString" in form:
            raw = form["JSONString"]
        elif self.body.strip() and not form:
            raw = self.body
        elif "JSONString" in self.query:
            raw = self.query["JSONString"]
        else:
            raw = None
        if raw is None:
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ZohoError(400, INVALID_JSON, "Invalid value passed for JSONString") from None
        if not isinstance(data, dict):
            raise ZohoError(400, INVALID_JSON, "Invalid value passed for JSONString")
        return data


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    lost: bool = False  # close the socket instead of answering normally
    partial: bool = True  # when lost: send the head and half the body first

    @classmethod
    def json(cls, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, dumps(payload), [("Content-Type", "application/json;charset=UTF-8"), *(headers or [])])

    @classmethod
    def error(cls, err: ZohoError, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls.json(err.status, err.body(), headers)

    def status_line(self) -> str:
        return f"{self.status} {REASONS.get(self.status, 'Unknown')}"
