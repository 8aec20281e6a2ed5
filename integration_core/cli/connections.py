"""Creating and inspecting connections. Secrets come from prompts, stdin or ``IC_SECRET_*`` variables,
never from arguments (which end up in shell history and ``ps``)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from ..bootstrap import hub_from_env
from ..models import SyncSettings
from ..plugins import Plugins
from ..reconcile import reconcile
from ..validation import segment_error
from .app import main

# --- connections ------------------------------------------------------------------------------------


@main.group()
def connections() -> None:
    """Create and inspect connections."""


def _read_secret(name: str, help_text: str, use_stdin: bool) -> str:
    env_name = "IC_SECRET_" + name.upper()
    if os.environ.get(env_name):
        return os.environ[env_name]
    if use_stdin:
        line = sys.stdin.readline()
        if not line:
            raise click.ClickException(f"stdin ended before {name} was given")
        return line.rstrip("\n")
    return click.prompt(f"{name} ({help_text})", hide_input=True)


def _collect_values(provider: str, given: tuple[str, ...], use_stdin: bool, *, only_given: bool = False) -> dict:
    info = Plugins().provider(provider).provider_info()
    fields = {f.name: f for f in info.fields}
    values: dict[str, str] = {}
    for item in given:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        key, value = item.split("=", 1)
        if key in fields and fields[key].secret:
            raise click.BadParameter(
                f"{key} is a secret: give it at the prompt, on stdin (--secrets-stdin) or as IC_SECRET_{key.upper()}",
                param_hint="--set",
            )
        values[key] = value
    if only_given:
        return values
    for f in info.fields:
        if f.name in values:
            continue
        if f.secret:
            values[f.name] = _read_secret(f.name, f.help, use_stdin)
        elif f.required and f.default is None:
            values[f.name] = click.prompt(f"{f.name} ({f.help})")
    return values


def _segment(ctx: click.Context, param: click.Parameter, value: str) -> str:
    problem = segment_error(value)
    if problem:
        raise click.BadParameter(f"{problem}, got {value!r}"[:300])
    return value


@connections.command("add")
@click.option("--tenant", "tenant_id", required=True, callback=_segment)
@click.option("--environment", "environment_id", required=True, callback=_segment)
@click.option("--provider", required=True)
@click.option("--name", required=True)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="A non-secret setting.")
@click.option("--secrets-stdin", is_flag=True, help="Read secret fields from stdin, one per line, in field order.")
@click.option("--no-invoices-outbound", is_flag=True, help="Do not push invoices for this connection.")
@click.option("--no-customers-inbound", is_flag=True, help="Do not take customers created remotely.")
def connections_add(
    tenant_id: str,
    environment_id: str,
    provider: str,
    name: str,
    settings: tuple[str, ...],
    secrets_stdin: bool,
    no_invoices_outbound: bool,
    no_customers_inbound: bool,
) -> None:
    """Create a connection; secret fields are prompted for (hidden) or read from stdin / IC_SECRET_*."""
    hub = hub_from_env()
    values = _collect_values(provider, settings, secrets_stdin)
    conn = hub.add_connection(
        tenant_id=tenant_id,
        environment_id=environment_id,
        provider=provider,
        name=name,
        values=values,
        sync=SyncSettings(invoices_outbound=not no_invoices_outbound, customers_inbound=not no_customers_inbound),
    )
    click.echo(f"created connection {conn.id} ({conn.status})")


@connections.command("update")
@click.argument("connection_id")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE")
@click.option("--secret", "secret_names", multiple=True, metavar="NAME", help="A secret field to change (prompted).")
@click.option("--secrets-stdin", is_flag=True)
@click.option("--invoices-outbound/--no-invoices-outbound", default=None)
@click.option("--customers-inbound/--no-customers-inbound", default=None)
def connections_update(
    connection_id: str,
    settings: tuple[str, ...],
    secret_names: tuple[str, ...],
    secrets_stdin: bool,
    invoices_outbound: bool | None,
    customers_inbound: bool | None,
) -> None:
    """Change settings, a secret (e.g. a new webhook secret) or the sync directions."""
    hub = hub_from_env()
    conn = hub.get_connection(connection_id)
    values = _collect_values(conn.provider, settings, secrets_stdin, only_given=True)
    info = hub.provider_info(conn.provider)
    helps = {f.name: f.help for f in info.fields if f.secret}
    for secret_name in secret_names:
        if secret_name not in helps:
            raise click.BadParameter(f"{secret_name} is not a secret field of {conn.provider}", param_hint="--secret")
        values[secret_name] = _read_secret(secret_name, helps[secret_name], secrets_stdin)
    sync = None
    if invoices_outbound is not None or customers_inbound is not None:
        sync = SyncSettings(
            invoices_outbound=conn.sync.invoices_outbound if invoices_outbound is None else invoices_outbound,
            customers_inbound=conn.sync.customers_inbound if customers_inbound is None else customers_inbound,
        )
    hub.update_connection(connection_id, values=values or None, sync=sync)
    click.echo(f"updated connection {connection_id}")


@connections.command("list")
@click.option("--tenant", "tenant_id")
@click.option("--json", "as_json", is_flag=True)
def connections_list(tenant_id: str | None, as_json: bool) -> None:
    """One line per connection."""
    hub = hub_from_env()
    rows = hub.list_connections(tenant_id=tenant_id)
    if as_json:
        click.echo(json.dumps([_conn_dict(c) for c in rows], indent=2))
        return
    for c in rows:
        click.echo(f"{c.id}\t{c.provider}\t{c.tenant_id}/{c.environment_id}\t{c.status}\t{c.name}")


def _conn_dict(c: Any) -> dict[str, Any]:
    return {
        "id": c.id,
        "tenant_id": c.tenant_id,
        "environment_id": c.environment_id,
        "provider": c.provider,
        "name": c.name,
        "status": c.status,
        "settings": dict(c.settings),
        "invoices_outbound": c.sync.invoices_outbound,
        "customers_inbound": c.sync.customers_inbound,
    }


@connections.command("show")
@click.argument("connection_id")
def connections_show(connection_id: str) -> None:
    """Settings (secrets by name only), status and sync directions."""
    hub = hub_from_env()
    conn = hub.get_connection(connection_id)
    data = _conn_dict(conn)
    data["secrets"] = hub.context(conn).secrets.names()
    click.echo(json.dumps(data, indent=2))


@connections.command("disable")
@click.argument("connection_id")
def connections_disable(connection_id: str) -> None:
    """Stop pushing and refuse webhooks for this connection (nothing queued is lost)."""
    hub_from_env().disable(connection_id)
    click.echo(f"disabled {connection_id}")


@connections.command("enable")
@click.argument("connection_id")
def connections_enable(connection_id: str) -> None:
    """Enable again; an OAuth connection is checked with the provider first."""
    status = hub_from_env().enable(connection_id)
    click.echo(f"enabled {connection_id}: {status}")


@connections.command("disconnect")
@click.argument("connection_id")
def connections_disconnect(connection_id: str) -> None:
    """Revoke the grant at the provider; queued work waits until the connection is authorized again."""
    hub_from_env().disconnect(connection_id)
    click.echo(f"disconnected {connection_id}")


@connections.command("authorize-url")
@click.argument("connection_id")
@click.option("--redirect-uri", help="Default: <public url>/v1/oauth/callback")
def connections_authorize_url(connection_id: str, redirect_uri: str | None) -> None:
    """Print the URL where the account owner grants access (OAuth providers)."""
    hub = hub_from_env()
    redirect = redirect_uri or hub.config.public_url.rstrip("/") + "/v1/oauth/callback"
    click.echo(hub.start_authorization(connection_id, redirect))


@connections.command("reconcile")
@click.argument("connection_id")
def connections_reconcile(connection_id: str) -> None:
    """Ask the provider for every change since the last reconciliation and feed it through the inbox now."""
    result = reconcile(hub_from_env(), connection_id)
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items() if v and k != "events") or "nothing new"
    click.echo(f"reconciled {connection_id}: {result.events} event(s) ({counts}); cursor {result.cursor}")


@connections.command("check")
@click.argument("connection_id")
def connections_check(connection_id: str) -> None:
    """Call the provider and report the account found (name, base currency)."""
    result = hub_from_env().check_connection(connection_id)
    click.echo(f"ok: {result.account_name} (base currency {result.base_currency})")


@connections.command("account-keys")
@click.option("--provider", help="Only this provider's connections.")
def connections_account_keys(provider: str | None) -> None:
    """Set the account key (the remote account a provider-level webhook names) of connections stored without
    one, e.g. before the upgrade that added it; list those whose settings do not name their account yet.

    Every start of a process (serve, worker, any command) does this too, and provider-level routing does it
    before it records an event as unrouted: this command shows the result."""
    hub = hub_from_env()
    if provider is not None:
        hub.provider_info(provider)  # an unknown provider lists the installed ones
    hub.apps.backfill_account_keys(provider)
    click.echo(f"account keys set: {hub.apps.keys_backfilled}")
    for row in hub.apps.without_account_key(provider):
        click.echo(f"no account key yet: {row.id}\t{row.provider}\t{row.tenant_id}/{row.environment_id}\t{row.status}")
