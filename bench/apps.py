"""WSGI apps and host hooks the dispatcher benchmark runs under gunicorn."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from integration_core.hookspecs import hookimpl


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The baseline: read the body, answer a small JSON document."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    body = b'{"status": "ok"}'
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class NullHost:
    """Host hooks that accept everything and store nothing (``IC_HOST=bench.apps:NullHost``)."""

    @hookimpl
    def record_payment(self, tenant_id, environment_id, invoice_id, amount, currency, paid_on, payment_key):  # type: ignore[no-untyped-def]
        return payment_key

    @hookimpl
    def void_invoice(self, tenant_id, environment_id, invoice_id):  # type: ignore[no-untyped-def]
        return None

    @hookimpl
    def find_customer_by_email(self, tenant_id, environment_id, email):  # type: ignore[no-untyped-def]
        return None

    @hookimpl
    def create_customer(self, tenant_id, environment_id, name, email):  # type: ignore[no-untyped-def]
        return f"host-{email or name}"
