"""A test provider: a fault-injecting ledger, the same in-memory remote as ``ledger``, with failures on demand.

Queue faults per account with :func:`inject` (``"transient"``, ``"rate_limited"``, ``"auth"``,
``"permanent"``, ``"lost"``: the write is committed and then the response is "lost"), or set a seeded
random fault rate with :func:`storm`. Faults apply to the write/lookup hooks the outbound path calls.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from integration_core.context import ProviderContext
from integration_core.errors import AuthError, PermanentError, RateLimitedError, TransientError
from integration_core.hookspecs import hookimpl
from integration_core.models import (
    ConnectResult,
    Customer,
    Event,
    Invoice,
    ProviderInfo,
    RateLimit,
    RemoteInvoice,
    SettingField,
    WebhookRequest,
)
from integration_core.providers import ledger as _ledger

T = TypeVar("T")
FAULT_KINDS = ("transient", "rate_limited", "auth", "permanent", "lost")

_QUEUES: dict[str, deque[tuple[str, str | None]]] = {}
_STORMS: dict[str, tuple[random.Random, dict[str, float]]] = {}
_LOCK = threading.Lock()


def inject(account: str, *faults: str, op: str | None = None) -> None:
    """Queue faults for the next calls on ``account`` (optionally only for hook ``op``)."""
    for fault in faults:
        if fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULT_KINDS}")
    with _LOCK:
        _QUEUES.setdefault(account, deque()).extend((f, op) for f in faults)


def storm(account: str, *, seed: int, **rates: float) -> None:
    """Random faults: ``storm("acct", seed=1, transient=0.1, lost=0.05)``."""
    with _LOCK:
        _STORMS[account] = (random.Random(seed), rates)


def calm(account: str | None = None) -> None:
    with _LOCK:
        for table in (_QUEUES, _STORMS):
            if account is None:
                table.clear()
            else:
                table.pop(account, None)


def _next_fault(account: str, op: str) -> str | None:
    with _LOCK:
        queue = _QUEUES.get(account)
        if queue:
            for i, (fault, only) in enumerate(queue):
                if only in (None, op):
                    del queue[i]
                    return fault
        if account in _STORMS:
            rng, rates = _STORMS[account]
            roll = rng.random()
            for fault, rate in rates.items():
                if roll < rate:
                    return fault
                roll -= rate
    return None


def _call(ctx: ProviderContext, op: str, action: Callable[[], T]) -> T:
    fault = _next_fault(str(ctx.settings["account"]), op)
    if fault == "transient":
        raise TransientError(f"injected transient failure in {op}", code=503)
    if fault == "rate_limited":
        raise RateLimitedError(f"injected rate limit in {op}", code=429, retry_after=0.2)
    if fault == "auth":
        raise AuthError(f"injected auth failure in {op}: refresh token revoked")
    if fault == "permanent":
        raise PermanentError(f"injected validation error in {op}", code=400)
    result = action()
    if fault == "lost":
        raise TransientError(f"injected lost response in {op} (the write was committed)", uncertain=True)
    return result


@hookimpl
def provider_info() -> ProviderInfo:
    info = _ledger.provider_info()
    # Its connections may leave webhook_secret to the provider-level value (``providers configure faulty``).
    fields = tuple(attrs.evolve(f, required=False) if f.name == "webhook_secret" else f for f in info.fields)
    app_fields = (SettingField("webhook_secret", "default webhook secret of every faulty connection", secret=True,
                               required=False),)
    return ProviderInfo(name="faulty", title="Fault-injecting ledger (stub)", version=info.version, fields=fields,
                        app_fields=app_fields)


@hookimpl
def validate_settings(values: dict[str, str]) -> dict[str, str]:
    return _ledger.validate_settings(values)


@hookimpl
def rate_limit(ctx: ProviderContext) -> RateLimit:
    return _ledger.rate_limit(ctx)


@hookimpl
def authorization_url(ctx: ProviderContext, redirect_uri: str, state: str) -> str | None:
    return None


@hookimpl
def connect(ctx: ProviderContext) -> ConnectResult:
    return _call(ctx, "connect", lambda: _ledger.connect(ctx))


@hookimpl
def upsert_contact(ctx: ProviderContext, customer: Customer) -> str:
    return _call(ctx, "upsert_contact", lambda: _ledger.upsert_contact(ctx, customer))


@hookimpl
def push_invoice(ctx: ProviderContext, invoice: Invoice, remote_contact_id: str) -> RemoteInvoice:
    return _call(ctx, "push_invoice", lambda: _ledger.push_invoice(ctx, invoice, remote_contact_id))


@hookimpl
def find_invoice(ctx: ProviderContext, invoice: Invoice) -> RemoteInvoice | None:
    return _call(ctx, "find_invoice", lambda: _ledger.find_invoice(ctx, invoice))


@hookimpl
def void_remote_invoice(ctx: ProviderContext, remote_invoice_id: str) -> None:
    _call(ctx, "void_remote_invoice", lambda: _ledger.void_remote_invoice(ctx, remote_invoice_id))


@hookimpl
def verify_webhook(ctx: ProviderContext, request: WebhookRequest) -> bool:
    return _ledger.verify_webhook(ctx, request)


@hookimpl
def parse_event(ctx: ProviderContext, request: WebhookRequest) -> list[Event]:
    return _ledger.parse_event(ctx, request)


def __getattr__(name: str) -> Any:  # pragma: no cover - convenience for tests: faulty.ledger(...)
    if name in ("ledger", "LEDGERS", "sign"):
        return getattr(_ledger, name)
    raise AttributeError(name)
