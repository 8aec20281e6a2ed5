"""Commands for the inbound side: the inbox (``events``), webhook URLs, and ``serve``."""

from __future__ import annotations

import json
import os

import click

from .. import inbound
from ..bootstrap import HOST_ENV, hub_from_env
from ..hub import Hub
from ..models import EventStatus
from ..server import NO_HOST_WARNING, serve
from ..webhooks import webhook_url
from .app import main
from .connections import connections


def _hub_with_host(host_app: str | None) -> Hub:
    """A Hub from ``IC_*``; host hooks from ``--host-app``/``IC_HOST`` (``module:attr``) when given."""
    try:
        return hub_from_env(host_app)
    except (ImportError, AttributeError, ValueError) as exc:
        spec = host_app or os.environ.get(HOST_ENV)
        raise click.ClickException(f"cannot load host application {spec!r}: {exc}") from None


# --- events -----------------------------------------------------------------------------------------


@main.group()
def events() -> None:
    """Inbound webhook events (the inbox): what arrived, what it did, and why."""


@events.command("list")
@click.option("--connection", "connection_id", help="Only this connection's events.")
@click.option("--status", type=click.Choice([s.value for s in EventStatus]))
@click.option("--limit", default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def events_list(connection_id: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """Newest first: id, status, kind, deliveries, dedupe key, reason."""

    rows = inbound.list_events(hub_from_env(), connection_id=connection_id, status=status, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        reason = f"\t{r['reason']}" if r["reason"] else ""
        click.echo(f"{r['id']}\t{r['status']}\t{r['kind']}\tx{r['deliveries']}\t{r['dedupe_key']}{reason}")


@events.command("show")
@click.argument("event_id", type=int)
def events_show(event_id: int) -> None:
    """Payload, status, reason, deliveries and the audit history of one event."""

    click.echo(json.dumps(inbound.get_event(hub_from_env(), event_id), indent=2))


@events.command("retry")
@click.argument("event_id", type=int)
@click.option("--host-app", help="Host hooks as module:attribute (default: IC_HOST).")
def events_retry(event_id: int, host_app: str | None) -> None:
    """Apply a failed event again (after fixing the host); applied or ignored events are left alone."""

    outcome = inbound.retry(_hub_with_host(host_app), event_id)
    if outcome.duplicate:
        click.echo(f"event {event_id} is already {outcome.status}; nothing to do")
        return
    suffix = f": {outcome.reason}" if outcome.reason else ""
    click.echo(f"event {event_id} {outcome.status}{suffix}")
    if outcome.status == EventStatus.FAILED:
        raise SystemExit(1)


# --- webhook URL ------------------------------------------------------------------------------------


@connections.command("webhook-url")
@click.argument("connection_id")
def connections_webhook_url(connection_id: str) -> None:
    """The URL to enter in the provider's webhook settings (base from IC_PUBLIC_URL)."""

    hub = hub_from_env()
    conn = hub.get_connection(connection_id)
    click.echo(webhook_url(hub.config.public_url, conn.provider, conn.tenant_id, conn.environment_id))


# --- serve ------------------------------------------------------------------------------------------


@main.command("serve")
@click.option("--host", "bind_host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True)
@click.option("--host-app", help="Host hooks as module:attribute (default: IC_HOST).")
@click.option("--no-scheduler", is_flag=True, help="Serve webhooks only; do not push the outbox.")
@click.option("--no-console", is_flag=True, help="Do not serve the operator console under /console.")
def serve_cmd(bind_host: str, port: int, host_app: str | None, no_scheduler: bool, no_console: bool) -> None:
    """Run the webhook dispatcher, the OAuth callback, the operator console (/console) and the outbound
    scheduler until interrupted."""
    hub = _hub_with_host(host_app)
    console = "" if no_console else f", console at http://{bind_host}:{port}/console/"
    click.echo(f"serving on http://{bind_host}:{port} (public URL {hub.config.public_url}){console}", err=True)
    if not hub.plugins.has_host_hook("record_payment"):
        click.secho(NO_HOST_WARNING, err=True, fg="red", bold=True)
    serve(hub, bind_host, port, scheduler=not no_scheduler, console=not no_console)
