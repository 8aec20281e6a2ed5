"""``events unrouted ...``: provider-level deliveries for an account no enabled connection had (list, show,
replay once the connection exists, purge)."""

from __future__ import annotations

import datetime as dt
import json

import click

from .. import unrouted
from ..bootstrap import hub_from_env
from ..redact import redact
from .inbox import _hub_with_host, events
from .outbox import _short, _when


@events.group("unrouted")
def unrouted_group() -> None:
    """Provider-level webhook events for an account no enabled connection had: acknowledged, kept with their
    request, replayable once the account's connection exists."""


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


@unrouted_group.command("list")
@click.option("--provider", help="Only this provider's events.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
              help="First received at or after (UTC).")
@click.option("--reason", help="Only events whose reason contains this (case-insensitive).")
@click.option("--account", help="Only this account key.")
@click.option("--pending", is_flag=True, help="Only events never replayed.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True)
def unrouted_list(provider: str | None, since: dt.datetime | None, reason: str | None, account: str | None,
                  pending: bool, limit: int, as_json: bool) -> None:
    """Newest first: id, provider, account, deliveries, received, replayed, reason."""
    rows = unrouted.list_unrouted(hub_from_env(), provider=provider, since=_utc(since), reason=reason,
                                  account=account, pending=pending, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no unrouted events")
        return
    click.echo(f"{'ID':>7}  {'PROVIDER':<12}  {'ACCOUNT':<20}  {'DELIV':>5}  {'RECEIVED':<19}  "
               f"{'REPLAYED':<19}  REASON")
    for r in rows:
        replayed = _when(dt.datetime.fromisoformat(r["replayed_at"])) if r["replayed_at"] else (
            "-" if r["replayable"] else "(not replayable)")
        click.echo(f"{r['id']:>7}  {_short(r['provider'], 12):<12}  {_short(r['account_key'], 20):<20}  "
                   f"{r['deliveries']:>5}  {_when(dt.datetime.fromisoformat(r['received_at'])):<19}  {replayed:<19}  "
                   f"{_short(r['reason'], 60)}")


@unrouted_group.command("show")
@click.argument("event_id", type=int)
def unrouted_show(event_id: int) -> None:
    """The request as kept (payload, headers without credentials; anything token-like redacted), deliveries,
    reason and the audit history of one unrouted event."""
    click.echo(redact(json.dumps(unrouted.get_unrouted(hub_from_env(), event_id), indent=2)))


@unrouted_group.command("replay")
@click.argument("event_id", type=int)
@click.option("--host-app", help="Host hooks as module:attribute (default: IC_HOST).")
def unrouted_replay(event_id: int, host_app: str | None) -> None:
    """Route an unrouted event again, now that its account has an enabled connection: through the inbox with
    the same dedupe keys as a live delivery, so a second replay (or a redelivery) is a harmless duplicate."""
    summary = unrouted.replay(_hub_with_host(host_app), event_id)
    click.echo(f"unrouted event {event_id} replayed to {', '.join(summary['connections'])}: "
               f"{summary['events']} event(s), {summary['applied']} applied, {summary['ignored']} ignored, "
               f"{summary['failed']} failed, {summary['duplicates']} duplicate(s)")
    if summary["failed"]:
        click.echo("failed events wait in the inbox: see `events list --status failed`, then `events retry ID`",
                   err=True)
        raise SystemExit(1)


@unrouted_group.command("purge")
@click.option("--older-than", "days", required=True, type=click.FloatRange(min=0), metavar="DAYS",
              help="Delete the events last delivered more than DAYS days ago.")
@click.option("--provider", help="Only this provider's events.")
def unrouted_purge(days: float, provider: str | None) -> None:
    """Delete old unrouted events (their requests are kept until then)."""
    count = unrouted.purge(hub_from_env(), days, provider=provider)
    click.echo(f"purged {count} unrouted event(s)")
