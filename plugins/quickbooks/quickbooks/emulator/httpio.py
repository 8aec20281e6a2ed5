"""Request/response types and the JSON wire format (money as JSON numbers, QUICKBOOKS.md §2): the core's
emulator types (``integration_core.emulation``), which QuickBooks uses as they are."""

from __future__ import annotations

from integration_core.emulation.wsgi import MAX_BODY, Request, Response, dumps, jsonable

__all__ = ["MAX_BODY", "Request", "Response", "dumps", "jsonable"]
