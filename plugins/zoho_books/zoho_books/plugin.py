"""The ``zoho_books`` provider: pluggy hook implementations only; the work lives in the sibling modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from integration_core.errors import ConfigurationError
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

from . import config, oauth, operations, payments, reconcile, webhooks

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
def rate_limit(ctx: ProviderContext) -> RateLimit:
    """100 requests a minute and 10 in flight per organization (paid plans), unless the settings say less."""
    try:
        cfg = config.validate_settings(ctx.settings, need_credentials=False)
    except ConfigurationError:
        return RateLimit(100, 60, 10, costs=CALL_COSTS, metered=True)
    return RateLimit(cfg.rate_limit_per_minute, 60, cfg.rate_limit_concurrency, costs=CALL_COSTS, metered=True)


# Requests per hook call in the usual case: a contact is searched by e-mail and created when missing; an
# invoice is one POST (its first foreign-currency invoice also reads the currency list, cached after); a
# reconciliation run reads the changed invoices and the new customers (one page each) plus the payments of
# each newly paid invoice. The client reports every request (ctx.note_request), so a call that needs more is
# still counted.
CALL_COSTS = {"find_invoice": 1, "upsert_contact": 2, "push_invoice": 1, "changes_since": 2}


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
def upsert_contact(ctx: ProviderContext, customer: Customer, currency: str) -> str:
    return operations.upsert_contact(ctx, customer, currency)


@hookimpl
def update_contact(ctx: ProviderContext, customer: Customer, remote_contact_id: str, currency: str) -> None:
    operations.update_contact(ctx, customer, remote_contact_id, currency)


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
def verify_webhook(ctx: ProviderContext, request: WebhookRequest) -> bool:
    return webhooks.verify(ctx.secrets.get("webhook_secret"), request)


@hookimpl
def parse_event(ctx: ProviderContext, request: WebhookRequest) -> list[Event]:
    return webhooks.parse(request, str(ctx.settings.get("organization_id") or "") or None)


@hookimpl
def changes_since(ctx: ProviderContext, cursor: str | None) -> tuple[list[Event], str | None]:
    return reconcile.changes_since(ctx, cursor)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .commands import zoho_books_group

    cli.add_command(zoho_books_group)
