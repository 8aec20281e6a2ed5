"""Hook specifications.

Two families of hooks:

* **Provider hooks** are implemented by accounting-provider plugins (found through the entry-point
  group ``integration_core.providers``). The core calls them for one connection at a time and routes
  each call to exactly that connection's provider, so a provider never sees another's connections.
  Every provider hook gets ``connection``: a :class:`~integration_core.context.ProviderContext` with the
  connection's settings, its decrypted secrets (write back with ``connection.secrets.update``), a
  shared ``requests.Session`` and a per-connection cache. Providers keep no durable state of their own;
  they return values and raise the typed errors of :mod:`integration_core.errors`.
* **Host hooks** are implemented by the billing application (the "host"): how inbound events reach
  its customers, invoices and payments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import datetime as dt
    from decimal import Decimal

    import click

    from .context import ProviderContext
    from .models import ConnectResult, Customer, Event, Invoice, ProviderInfo, RateLimit, RemoteInvoice, WebhookRequest

hookspec = pluggy.HookspecMarker("integration_core")
hookimpl = pluggy.HookimplMarker("integration_core")


# --- provider hooks ---------------------------------------------------------------------------------


@hookspec(firstresult=True)
def provider_info() -> ProviderInfo:
    """Name, title, version and the settings fields a connection of this provider needs."""


@hookspec(firstresult=True)
def validate_settings(values: dict[str, str]) -> dict[str, str]:
    """Check and normalize the values of a new or changed connection (settings and secrets together);
    raise ``ConfigurationError`` with a message that tells the operator what to fix."""


@hookspec(firstresult=True)
def rate_limit(connection: ProviderContext) -> RateLimit:
    """The documented request limit of this connection's remote account (the core stays under it)."""


@hookspec(firstresult=True)
def authorization_url(connection: ProviderContext, redirect_uri: str, state: str) -> str | None:
    """The URL where the account owner grants access; ``None`` when the provider needs no OAuth."""


@hookspec(firstresult=True)
def complete_authorization(connection: ProviderContext, code: str, redirect_uri: str, params: dict[str, str]) -> None:
    """Exchange an authorization ``code`` for tokens and store them in ``connection.secrets``."""


@hookspec(firstresult=True)
def connect(connection: ProviderContext) -> ConnectResult:
    """Check that the connection works (credentials, account) and say what was found."""


@hookspec(firstresult=True)
def disconnect(connection: ProviderContext) -> None:
    """Revoke the connection's grant at the provider, when it has one."""


@hookspec(firstresult=True)
def upsert_contact(connection: ProviderContext, customer: Customer) -> str:
    """Create or match the remote contact for ``customer`` (match by email first); return its remote id."""


@hookspec(firstresult=True)
def push_invoice(connection: ProviderContext, invoice: Invoice, remote_contact_id: str) -> RemoteInvoice:
    """Create the remote invoice. It must carry a stable reference to ``invoice.id`` for ``find_invoice``."""


@hookspec(firstresult=True)
def find_invoice(connection: ProviderContext, invoice: Invoice) -> RemoteInvoice | None:
    """Look a previously pushed invoice up by its stable reference (the lost-response check)."""


@hookspec(firstresult=True)
def void_remote_invoice(connection: ProviderContext, remote_invoice_id: str) -> None:
    """Void an invoice at the provider."""


@hookspec(firstresult=True)
def verify_webhook(connection: ProviderContext, request: WebhookRequest) -> bool:
    """True when ``request`` is authentically from the provider for this connection (constant-time)."""


@hookspec(firstresult=True)
def parse_event(connection: ProviderContext, request: WebhookRequest) -> list[Event]:
    """Turn a verified webhook into normalized events; raise ``WebhookRejected`` when malformed."""


# --- hooks any plugin may implement -----------------------------------------------------------------


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``integration-core`` command line (as llm and datasette plugins do)."""


# --- host hooks -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def record_payment(
    tenant_id: str,
    environment_id: str,
    invoice_id: str,
    amount: Decimal,
    currency: str | None,
    paid_on: dt.date,
    payment_key: str,
) -> Any:
    """Record a payment against the host invoice and update its status. ``payment_key`` is unique per
    remote payment: the core applies each once, and a host may also use it as its own idempotency key."""


@hookspec(firstresult=True)
def void_invoice(tenant_id: str, environment_id: str, invoice_id: str) -> Any:
    """Mark the host invoice void."""


@hookspec(firstresult=True)
def find_customer_by_email(tenant_id: str, environment_id: str, email: str) -> str | None:
    """The id of the host customer with this email, or ``None``."""


@hookspec(firstresult=True)
def create_customer(tenant_id: str, environment_id: str, name: str, email: str | None) -> str:
    """Create a host customer from a remote one; return its id."""
