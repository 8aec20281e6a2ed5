"""Hook specifications, one class per role.

* :class:`ProviderSpec`: implemented by an accounting-provider plugin (entry-point group
  ``integration_core.providers``). The core calls them for one connection at a time and routes each
  call to exactly that connection's provider: every provider has a plugin manager of its own, so an
  implementation is only ever called for its own provider. Every hook that works on a connection gets
  ``ctx``: the :class:`~integration_core.context.ProviderContext` of that connection (settings,
  decrypted secrets, the shared HTTP session, a per-connection cache). Providers keep no durable state
  of their own; they return values and raise the typed errors of :mod:`integration_core.errors`.
* :class:`HostSpec`: implemented by the billing application (the "host"): how inbound events reach its
  customers, invoices and payments. Only the object given as the host is ever called for them.
* :class:`CommandSpec`: implemented by any plugin that adds commands to the command line.

Every provider and host hook is ``firstresult``: one implementation answers, and its return value is the
result. ``None`` from a ``firstresult`` hook means "no implementation answered"; where ``None`` is also a
meaningful answer the hook says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import datetime as dt
    from decimal import Decimal

    import click

    from .context import AppContext, ProviderContext
    from .models import (
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

PROJECT = "integration_core"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class ProviderSpec:
    """Hooks of an accounting provider. Each runs for the one connection ``ctx`` names."""

    @hookspec(firstresult=True)
    def provider_info(self) -> ProviderInfo:
        """Name, title, version and the settings fields a connection of this provider needs.

        Required. Called without a connection (listing providers, validating ``connections add``)."""

    @hookspec(firstresult=True)
    def validate_settings(self, values: dict[str, str]) -> dict[str, str] | None:
        """Check and normalize the values of a new or changed connection (settings and secrets together).

        :param values: every declared field, already defaulted and checked against the field choices.
        :return: the normalized values, or ``None`` to keep ``values`` as they are.
        :raises ConfigurationError: with a message that tells the operator what to fix."""

    @hookspec(firstresult=True)
    def rate_limit(self, ctx: ProviderContext) -> RateLimit | None:
        """The documented request limit of this connection's remote account; the core stays under it.

        :return: ``None`` for no limit."""

    @hookspec(firstresult=True)
    def authorization_url(self, ctx: ProviderContext, redirect_uri: str, state: str) -> str | None:
        """The URL where the account owner grants access.

        :param redirect_uri: where the provider must send the owner back (the core's OAuth callback).
        :param state: the single-use value that ties the callback to this connection; send it unchanged.
        :return: ``None`` when the provider needs no OAuth."""

    @hookspec(firstresult=True)
    def complete_authorization(
        self, ctx: ProviderContext, code: str, redirect_uri: str, params: dict[str, str]
    ) -> None:
        """Exchange an authorization ``code`` for tokens and store them with ``ctx.secrets.update``.

        :param params: every other query parameter of the callback (a region, an account id, ...).
        :raises AuthError: when the provider refuses the code."""

    @hookspec(firstresult=True)
    def connect(self, ctx: ProviderContext) -> ConnectResult:
        """Check that the connection works (credentials, account) and say what was found.

        :raises AuthError: the grant is gone (the connection then needs re-authorization)."""

    @hookspec(firstresult=True)
    def disconnect(self, ctx: ProviderContext) -> None:
        """Revoke the connection's grant at the provider, when it has one (best effort)."""

    @hookspec(firstresult=True)
    def upsert_contact(self, ctx: ProviderContext, customer: Customer, currency: str) -> str:
        """Create or match the remote contact for ``customer`` that holds its invoices in ``currency``
        (match by email first).

        :param currency: the invoice's currency. Remote contacts often hold one currency, so the core maps
            contacts per (customer, currency) and asks once per pair; a provider whose contacts have no
            currency may leave the argument out of its implementation.
        :return: the remote contact id; the core stores the mapping and does not ask again."""

    @hookspec(firstresult=True)
    def update_contact(
        self, ctx: ProviderContext, customer: Customer, remote_contact_id: str, currency: str
    ) -> None:
        """Bring the linked remote contact up to date: ``customer``'s name, email, address, tax data or
        metadata changed since they were last sent (the core keeps a fingerprint). Optional: without it
        the core only remembers the new data."""

    @hookspec(firstresult=True)
    def push_invoice(
        self, ctx: ProviderContext, invoice: Invoice, remote_contact_id: str
    ) -> RemoteInvoice:
        """Create the remote invoice for ``invoice`` on the contact ``remote_contact_id``.

        It must carry a stable reference to ``invoice.id`` so that :meth:`find_invoice` can find it after
        a lost response. Raise ``TransientError`` / ``RateLimitedError`` to be retried, ``PermanentError``
        when the data cannot be accepted, ``AuthError`` when the grant is gone."""

    @hookspec(firstresult=True)
    def find_invoice(self, ctx: ProviderContext, invoice: Invoice) -> RemoteInvoice | None:
        """Look a previously pushed invoice up by its stable reference (the lost-response check).

        Called before every retried or uncertain push. :return: ``None`` when there is none."""

    @hookspec(firstresult=True)
    def void_remote_invoice(self, ctx: ProviderContext, remote_invoice_id: str) -> None:
        """Void the invoice ``remote_invoice_id`` at the provider; voiding a void invoice is no error."""

    @hookspec(firstresult=True)
    def push_payment(
        self, ctx: ProviderContext, payment: Payment, invoice: Invoice, remote_invoice_id: str
    ) -> RemotePayment:
        """Record ``payment`` at the provider, applied to the remote invoice ``remote_invoice_id``.

        ``invoice`` is the local invoice the payment is for, as it was pushed (its customer and currency).
        The remote payment must carry a stable reference to ``payment.id`` so that :meth:`find_payment`
        can find it after a lost response. Raise ``PermanentError`` when the provider refuses the payment
        for good (more than the invoice's balance, another currency than the invoice's, a void invoice),
        with a message that says what to fix; ``TransientError`` / ``RateLimitedError`` to be retried;
        ``AuthError`` when the grant is gone."""

    @hookspec(firstresult=True)
    def find_payment(
        self, ctx: ProviderContext, payment: Payment, remote_invoice_id: str
    ) -> RemotePayment | None:
        """Look a previously pushed payment up by its stable reference (the lost-response check).

        Called before every retried or uncertain push of a payment. :return: ``None`` when there is none."""

    @hookspec(firstresult=True)
    def verify_webhook(self, ctx: ProviderContext, request: WebhookRequest) -> bool:
        """Whether ``request`` is authentically from the provider for this connection.

        Compare signatures in constant time. :return: ``False`` answers 401 and stores nothing."""

    @hookspec(firstresult=True)
    def parse_event(self, ctx: ProviderContext, request: WebhookRequest) -> list[Event]:
        """Turn a verified webhook into normalized events (an empty list when nothing concerns the core).

        :raises WebhookRejected: when the payload is malformed (answered 400, nothing stored).

        A provider whose webhooks are thin (ids only) returns :class:`~integration_core.models.Notice` events:
        the inbox stores them and the outbox fetches them later through :meth:`fetch_events`."""

    @hookspec(firstresult=True)
    def fetch_events(self, ctx: ProviderContext, notices: list[dict[str, Any]]) -> list[Event]:
        """Fetch what thin notices name and return the normalized events (run by the outbox, task kind
        ``fetch``, under the connection's rate limit and retries; never inside a webhook answer).

        :param notices: the ``data`` of the :class:`~integration_core.models.Notice` events ``parse_event``
            returned. Raise ``TransientError`` / ``RateLimitedError`` to be retried: the notice is kept."""

    @hookspec(firstresult=True)
    def changes_since(self, ctx: ProviderContext, cursor: str | None) -> tuple[list[Event], str | None]:
        """Reconciliation: the events of everything changed since ``cursor`` (``None``: the first run; the
        provider chooses how far back) and the cursor for the next run. The events carry the same dedupe keys
        as the webhook path, so a duplicate is harmless and a missed webhook is caught up. The core stores the
        cursor only after every event was stored. Optional: without it a connection is not reconciled."""

    @hookspec(firstresult=True)
    def account_key(self, settings: dict[str, Any]) -> str | None:
        """The remote account (e.g. a company id) a connection with these settings belongs to: how a
        provider-level webhook that names the account finds the connection. ``None``: not known (yet).
        Called whenever a connection's settings are written."""

    @hookspec(firstresult=True)
    def verify_app_webhook(self, app: AppContext, request: WebhookRequest) -> bool:
        """Whether a delivery to the provider-level endpoint ``POST /v1/webhooks/<provider>`` is authentic,
        checked with the provider-level secrets (``app.secrets``). :return: ``False`` answers 401."""

    @hookspec(firstresult=True)
    def route_webhook(self, app: AppContext, request: WebhookRequest) -> list[str]:
        """The account keys (see :meth:`account_key`) a verified provider-level delivery concerns. The core
        then calls :meth:`parse_event` once for each connection of those accounts; an account with no
        connection is acknowledged and recorded as ignored.

        :raises WebhookRejected: when the payload is malformed (answered 400, nothing stored)."""


class HostSpec:
    """Hooks of the billing application. Only the registered host object is called for them."""

    @hookspec(firstresult=True)
    def record_payment(
        self,
        tenant_id: str,
        environment_id: str,
        invoice_id: str,
        amount: Decimal,
        currency: str | None,
        paid_on: dt.date,
        payment_key: str,
    ) -> Any:
        """Record a payment against the host invoice ``invoice_id`` and update its status.

        :param payment_key: unique per remote payment; the core applies each once, and a host may use it
            as its own idempotency key too. The return value is ignored."""

    @hookspec(firstresult=True)
    def void_invoice(self, tenant_id: str, environment_id: str, invoice_id: str) -> Any:
        """Mark the host invoice ``invoice_id`` void. The return value is ignored."""

    @hookspec(firstresult=True)
    def reverse_payment(
        self,
        tenant_id: str,
        environment_id: str,
        invoice_id: str,
        payment_key: str,
        amount: Decimal,
        reason: str,
        reversal_key: str,
    ) -> Any:
        """Take back (part of) a payment that was deleted or refunded at the provider.

        :param payment_key: the key the payment was recorded under: the ``payment_key`` of the earlier
            ``record_payment`` call, or the host's own payment id for a payment the host submitted.
        :param amount: how much is taken back (the whole payment when it was deleted).
        :param reason: ``"deleted"`` or ``"refunded"``.
        :param reversal_key: unique per reversal; the core applies each once, and a host may use it as its
            own idempotency key too. The return value is ignored."""

    @hookspec(firstresult=True)
    def find_customer_by_email(self, tenant_id: str, environment_id: str, email: str) -> str | None:
        """The id of the host customer with this email, or ``None`` when there is none."""

    @hookspec(firstresult=True)
    def create_customer(self, tenant_id: str, environment_id: str, name: str, email: str | None) -> str:
        """Create a host customer from a remote one; return its id."""


class CommandSpec:
    """Hooks any plugin (provider or not) may implement."""

    @hookspec
    def register_commands(self, cli: click.Group) -> None:
        """Add commands to the ``integration-core`` command line (as llm and datasette plugins do).

        Every implementation is called (not ``firstresult``)."""


def hook_names(spec: type) -> tuple[str, ...]:
    """The hooks a spec class declares, in declaration order."""
    return tuple(name for name, value in vars(spec).items() if hasattr(value, f"{PROJECT}_spec"))


PROVIDER_HOOKS = hook_names(ProviderSpec)
HOST_HOOKS = hook_names(HostSpec)
COMMAND_HOOKS = hook_names(CommandSpec)
