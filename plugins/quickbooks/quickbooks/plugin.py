"""The ``quickbooks`` provider: pluggy hook implementations only; the work lives in the sibling modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from integration_core.errors import ConfigurationError, WebhookRejected
from integration_core.hookspecs import hookimpl
from integration_core.models import (
    ConnectResult,
    Customer,
    Event,
    Invoice,
    ProviderInfo,
    RateLimit,
    RemoteInvoice,
    WebhookRequest,
)

from . import config, inbound, oauth, operations, webhooks

if TYPE_CHECKING:
    import click

    from integration_core.context import ProviderContext


@hookimpl
def provider_info() -> ProviderInfo:
    return config.provider_info()


@hookimpl
def validate_settings(values: dict[str, str]) -> dict[str, str]:
    return config.normalize_values(values)


@hookimpl
def rate_limit(connection: ProviderContext) -> RateLimit:
    """500 requests a minute and 10 in flight per company (QUICKBOOKS.md §3), unless the settings say less."""
    try:
        cfg = config.validate_settings(connection.settings, need_credentials=False)
    except ConfigurationError:
        return RateLimit(500, 60, 10)
    return RateLimit(cfg.rate_limit_per_minute, 60, cfg.rate_limit_concurrency)


@hookimpl
def authorization_url(connection: ProviderContext, redirect_uri: str, state: str) -> str | None:
    return oauth.authorization_url(connection, redirect_uri, state)


@hookimpl
def complete_authorization(connection: ProviderContext, code: str, redirect_uri: str, params: dict[str, str]) -> None:
    oauth.complete_authorization(connection, code, redirect_uri, params)


@hookimpl
def connect(connection: ProviderContext) -> ConnectResult:
    return operations.connect(connection)


@hookimpl
def disconnect(connection: ProviderContext) -> None:
    oauth.revoke(connection)


@hookimpl
def upsert_contact(connection: ProviderContext, customer: Customer) -> str:
    return operations.upsert_contact(connection, customer)


@hookimpl
def push_invoice(connection: ProviderContext, invoice: Invoice, remote_contact_id: str) -> RemoteInvoice:
    return operations.push_invoice(connection, invoice, remote_contact_id)


@hookimpl
def find_invoice(connection: ProviderContext, invoice: Invoice) -> RemoteInvoice | None:
    return operations.find_invoice(connection, invoice)


@hookimpl
def void_remote_invoice(connection: ProviderContext, remote_invoice_id: str) -> None:
    operations.void_remote_invoice(connection, remote_invoice_id)


@hookimpl
def verify_webhook(connection: ProviderContext, request: WebhookRequest) -> bool:
    return webhooks.verify(connection.secrets.get("webhook_verifier_token"), request)


@hookimpl
def parse_event(connection: ProviderContext, request: WebhookRequest) -> list[Event]:
    """Until the core fetches thin events through the outbox, the entities are fetched here."""
    notifications = webhooks.parse_notifications(request.body)
    if not notifications:
        raise WebhookRejected("QuickBooks webhook without events")
    return inbound.events_for(connection, notifications)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .commands import quickbooks_group

    cli.add_command(quickbooks_group)
