"""Request/response types of the accounts, Books and control handlers: the core's emulator types
(``integration_core.emulation``) plus Zoho's ways of sending a body (``JSONString=`` as a form field)."""

from __future__ import annotations

import json
from typing import Any, Self
from urllib.parse import parse_qsl

from integration_core.emulation.wsgi import MAX_BODY, dumps, jsonable
from integration_core.emulation.wsgi import Request as _Request
from integration_core.emulation.wsgi import Response as _Response

from .errors import INVALID_JSON, ZohoError

__all__ = ["MAX_BODY", "Request", "Response", "dumps", "jsonable"]


class Request(_Request):
    def form(self) -> dict[str, str]:
        """Zoho's clients also post ``JSONString=...`` without a content type (the Books API docs' curl)."""
        if self.body and self.content_type == "" and b"=" in self.body and not self.body.lstrip().startswith(b"{"):
            return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        return super().form()

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


class Response(_Response):
    @classmethod
    def error(cls, err: ZohoError, headers: list[tuple[str, str]] | None = None) -> Self:
        return cls.json(err.status, err.body(), headers)
