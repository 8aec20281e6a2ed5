"""The ``quickbooks`` provider: pluggy hook implementations only; the work lives in the sibling modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from integration_core.errors import ConfigurationError, WebhookRejected
from integration_core.hookspecs import hookimpl
from integration_core.models import (
    ConnectResult,
    Customer,
    Event,
    Invoice,
    Payment,
    ProviderInfo,
    RateLimit,
    RemoteInvoice,
    RemotePayment,
    WebhookRequest,
)

from . import config, inbound, oauth, operations, payments, webhooks

if TYPE_CHECKING:
    import click

    from integration_core.context import AppContext, ProviderContext


@hookimpl
def provider_info() -> ProviderInfo:
    return config.provider_info()


@hookimpl
def validate_settings(values: dict[str, str]) -> dict[str, str]:
    return config.normalize_values(values)


@hookimpl
def rate_limit(ctx: ProviderContext) -> RateLimit:
    """500 requests a minute and 10 in flight per company (QUICKBOOKS.md §3), unless the settings say less."""
    try:
        cfg = config.validate_settings(ctx.settings, need_credentials=False)
    except ConfigurationError:
        return RateLimit(500, 60, 10, costs=CALL_COSTS, metered=True)
    return RateLimit(cfg.rate_limit_per_minute, 60, cfg.rate_limit_concurrency, costs=CALL_COSTS, metered=True)


# Requests per hook call in the usual case: a customer is queried by e-mail and created when missing; an
# invoice is one POST once the company's preferences, item and account are cached. The client reports
# every request (ctx.note_request), so the first invoice of a connection (up to 8) is counted as made.
CALL_COSTS = {"find_invoice": 1, "upsert_contact": 2, "push_invoice": 1}


@hookimpl
def authorization_url(ctx: ProviderContext, redirect_uri: str, state: str) -> str | None:
    return oauth.authorization_url(ctx, redirect_uri, state)


@hookimpl
def complete_authorization(ctx: ProviderContext, code: str, redirect_uri: str, params: dict[str, str]) -> None:
    oauth.complete_authorization(ctx, code, redirect_uri, params)


@hookimpl
def connect(ctx: ProviderContext) -> ConnectResult:
    return operations.connect(ctx)


@hookimpl
def disconnect(ctx: ProviderContext) -> None:
    oauth.revoke(ctx)


@hookimpl
def upsert_contact(ctx: ProviderContext, customer: Customer) -> str:
    return operations.upsert_contact(ctx, customer)


@hookimpl
def push_invoice(ctx: ProviderContext, invoice: Invoice, remote_contact_id: str) -> RemoteInvoice:
    return operations.push_invoice(ctx, invoice, remote_contact_id)


@hookimpl
def find_invoice(ctx: ProviderContext, invoice: Invoice) -> RemoteInvoice | None:
    return operations.find_invoice(ctx, invoice)


@hookimpl
def void_remote_invoice(ctx: ProviderContext, remote_invoice_id: str) -> None:
    operations.void_remote_invoice(ctx, remote_invoice_id)


@hookimpl
def push_payment(ctx: ProviderContext, payment: Payment, invoice: Invoice, remote_invoice_id: str) -> RemotePayment:
    return payments.push_payment(ctx, payment, invoice, remote_invoice_id)


@hookimpl
def find_payment(ctx: ProviderContext, payment: Payment, remote_invoice_id: str) -> RemotePayment | None:
    return payments.find_payment(ctx, payment, remote_invoice_id)


@hookimpl
def account_key(settings: dict[str, Any]) -> str | None:
    """A connection's company: its ``realm_id`` (learned at authorization), as webhooks name it."""
    realm = str(settings.get("realm_id") or "").strip()
    return realm or None


@hookimpl
def verify_webhook(ctx: ProviderContext, request: WebhookRequest) -> bool:
    return webhooks.verify(ctx.secrets.get("webhook_verifier_token"), request)


@hookimpl
def verify_app_webhook(app: AppContext, request: WebhookRequest) -> bool:
    """``POST /v1/webhooks/quickbooks``: signed with the app's verifier token (QUICKBOOKS.md §7)."""
    return webhooks.verify(app.secrets.get("webhook_verifier_token"), request)


@hookimpl
def route_webhook(app: AppContext, request: WebhookRequest) -> list[str]:
    """The companies (realm ids) a delivery names; the core finds their connections by ``account_key``."""
    notifications = webhooks.parse_notifications(request.body)
    if not notifications:
        raise WebhookRejected("QuickBooks webhook without events")
    return list(dict.fromkeys(n.realm_id for n in notifications))


@hookimpl
def parse_event(ctx: ProviderContext, request: WebhookRequest) -> list[Event]:
    """Thin notices (stored first, fetched later by the outbox through ``fetch_events``)."""
    notifications = webhooks.parse_notifications(request.body)
    if not notifications:
        raise WebhookRejected("QuickBooks webhook without events")
    return inbound.notices_for(ctx, notifications)


@hookimpl
def fetch_events(ctx: ProviderContext, notices: list[dict[str, Any]]) -> list[Event]:
    return inbound.events_for(ctx, [webhooks.Notification(**n) for n in notices])


@hookimpl
def changes_since(ctx: ProviderContext, cursor: str | None) -> tuple[list[Event], str | None]:
    return inbound.changes_since(ctx, cursor)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .commands import quickbooks_group

    cli.add_command(quickbooks_group)
