"""Commands for the outbound side: ``tasks``, ``status``, ``worker`` and ``invoices backfill``."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from ..backfill import backfill as run_backfill
from ..bootstrap import hub_from_env
from ..inbox_views import events_failed_without_host
from ..mapping import INVOICE, PAYMENT, VOID
from ..models import TaskStatus
from ..outbox import connection_summaries, get_task, list_tasks, retry_failed, retry_task, task_history
from ..scheduler import run_worker
from .app import main

STATUSES = [s.value for s in TaskStatus]
KINDS = [INVOICE, PAYMENT, VOID]


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return "-"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- tasks ------------------------------------------------------------------------------------------


@main.group()
def tasks() -> None:
    """Outbound tasks: one per invoice, payment or void and connection."""


@tasks.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--connection", "connection_id", help="Only this connection's tasks.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--kind", type=click.Choice(KINDS), help="Only tasks of this kind.")
@click.option("--json", "as_json", is_flag=True)
def tasks_list(status: str | None, connection_id: str | None, limit: int, kind: str | None, as_json: bool) -> None:
    """The newest tasks first: invoices, payments and voids (the KIND column)."""

    rows = list_tasks(hub_from_env(), status=status, connection_id=connection_id, limit=limit, entity_type=kind)
    if as_json:
        click.echo(json.dumps([_task_dict(t) for t in rows], indent=2, default=str))
        return
    if not rows:
        click.echo("no tasks")
        return
    click.echo(
        f"{'ID':>7}  {'KIND':<7}  {'STATUS':<9}  {'LOCAL ID':<20}  {'ATT':>3}  {'CONNECTION':<36}  {'UPDATED':<19}  "
        "LAST ERROR"
    )
    for t in rows:
        click.echo(
            f"{t.id:>7}  {t.entity_type:<7}  {t.status:<9}  {_short(t.local_id, 20):<20}  {t.attempts:>3}  "
            f"{t.connection_id:<36}  "
            f"{_when(t.updated_at):<19}  {_short(t.last_error, 50)}"
        )


def _task_dict(t: Any) -> dict[str, Any]:
    return {
        "id": t.id,
        "connection_id": t.connection_id,
        "entity_type": t.entity_type,
        "local_id": t.local_id,
        "status": t.status,
        "attempts": t.attempts,
        "submissions": t.submissions,
        "uncertain": t.uncertain,
        "next_attempt_at": t.next_attempt_at,
        "last_error": t.last_error,
        "remote_id": t.remote_id,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "completed_at": t.completed_at,
    }


@tasks.command("show")
@click.argument("task_id", type=int)
def tasks_show(task_id: int) -> None:
    """A task's invoice, payment or void summary, attempts, last error and full history."""

    hub = hub_from_env()
    t = get_task(hub, task_id)
    conn = hub.get_connection(t.connection_id)
    p = t.payload
    lines = p.get("lines") or []
    total = sum((_decimal(line.get("amount")) for line in lines), start=_decimal(0))
    customer = p.get("customer") or {}
    click.echo(f"task {t.id}: {t.entity_type} {t.local_id} → {conn.provider} {conn.name} ({conn.id})")
    click.echo(f"  status       {t.status}{' (outcome of an attempt uncertain)' if t.uncertain else ''}")
    if t.entity_type == PAYMENT:
        via = f" by {p.get('method')}" if p.get("method") else ""
        ref = f", reference {p.get('reference')}" if p.get("reference") else ""
        click.echo(f"  payment      {p.get('amount')} {p.get('currency')} on invoice {p.get('invoice_id')}, "
                   f"paid {p.get('paid_on')}{via}{ref}")
    elif t.entity_type == VOID:
        click.echo(f"  void         invoice {p.get('invoice_id')} (after any pending push of it)")
    else:
        click.echo(f"  invoice      {p.get('number')} for {customer.get('name')} <{customer.get('email') or '-'}>, "
                   f"{len(lines)} line(s), total {total} {p.get('currency')}, issued {p.get('issue_date')}")
    click.echo(f"  attempts     {t.attempts} (submitted {t.submissions} time(s))")
    click.echo(f"  next attempt {_when(t.next_attempt_at) if t.status == TaskStatus.PENDING else '-'}")
    click.echo(f"  remote id    {t.remote_id or '-'}")
    click.echo(f"  last error   {t.last_error or '-'}")
    click.echo("  history:")
    for row in task_history(hub, task_id):
        click.echo(f"    {_when(row.at)}  {row.action:<18}  {row.detail or ''}")


def _decimal(value: Any) -> Any:

    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


@tasks.command("retry")
@click.argument("task_id", type=int, required=False)
@click.option("--all-failed", is_flag=True, help="Every failed and dead task (of --connection, if given).")
@click.option("--connection", "connection_id")
def tasks_retry(task_id: int | None, all_failed: bool, connection_id: str | None) -> None:
    """Put a failed, dead or paused task back in the queue (after fixing its cause).

    The next attempt looks the invoice up at the provider before creating it.
    """

    if (task_id is None) == (not all_failed):
        raise click.UsageError("give a TASK_ID or --all-failed (not both)")
    if connection_id and task_id is not None:
        raise click.UsageError("--connection goes with --all-failed")
    hub = hub_from_env()
    if task_id is not None:
        task = retry_task(hub, task_id)
        click.echo(f"task {task.id} is pending again")
        return
    ids = retry_failed(hub, connection_id)
    click.echo(f"{len(ids)} task(s) pending again")


# --- status -----------------------------------------------------------------------------------------


@main.command("status")
@click.option("--json", "as_json", is_flag=True)
def status_cmd(as_json: bool) -> None:
    """One row per connection: task counts by status, last error, last success."""

    hub = hub_from_env()
    rows = connection_summaries(hub)
    if as_json:
        click.echo(json.dumps([_summary_dict(s) for s in rows], indent=2, default=str))
        return

    if not rows:
        click.echo("no connections")
        return
    header = (
        f"{'PROVIDER':<12} {'TENANT/ENV':<24} {'STATUS':<12} {'KIND':<7} {'PEND':>6} {'FLIGHT':>6} {'FAIL':>5} "
        f"{'DEAD':>5} {'PAUSE':>5} {'DONE':>6} {'LAST SUCCESS':<19}  LAST ERROR"
    )
    click.echo(header)
    for s in rows:
        # One line per task kind (invoices, payments, voids), the connection's columns on its first line.
        kinds = sorted(s.counts_by_kind.items(), key=lambda kv: KINDS.index(kv[0]) if kv[0] in KINDS else 99)
        for i, (kind, n) in enumerate(kinds or [("-", {})]):
            first = i == 0
            click.echo(
                f"{_short(s.provider, 12) if first else '':<12} "
                f"{_short(s.tenant_id + '/' + s.environment_id, 24) if first else '':<24} "
                f"{s.status if first else '':<12} {kind:<7} "
                f"{n.get('pending', 0):>6} {n.get('in_flight', 0):>6} {n.get('failed', 0):>5} {n.get('dead', 0):>5} "
                f"{n.get('paused', 0):>5} {n.get('done', 0):>6} {_when(s.last_success_at) if first else '':<19}  "
                f"{_short(s.last_error, 50) if first else ''}"
            )

    hostless = events_failed_without_host(hub)
    if hostless:
        click.secho(f"warning: {hostless} inbound event(s) failed because the serving process had no host "
                    "application (--host-app or IC_HOST); start `serve` with one, then `events retry`",
                    err=True, fg="yellow")

def _summary_dict(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "provider": s.provider,
        "tenant_id": s.tenant_id,
        "environment_id": s.environment_id,
        "name": s.name,
        "status": s.status,
        "tasks": {status: s.counts.get(status, 0) for status in STATUSES},
        "tasks_by_kind": {kind: {status: n.get(status, 0) for status in STATUSES}
                          for kind, n in s.counts_by_kind.items()},
        "next_due_at": s.next_due_at,
        "last_error": s.last_error,
        "last_success_at": s.last_success_at,
    }


# --- worker -----------------------------------------------------------------------------------------


@main.command("worker")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Concurrent drain loops in this process (each claims its own connections).")
def worker_cmd(threads: int) -> None:
    """Push the outbox until Ctrl-C. Run as many as you like against one PostgreSQL database.

    Tuning through the environment: IC_SCHEDULER_INTERVAL, IC_OUTBOUND_BATCH_SIZE,
    IC_OUTBOUND_MAX_CONNECTIONS, IC_OUTBOUND_LEASE_SECONDS, IC_OUTBOUND_MAX_ATTEMPTS,
    IC_OUTBOUND_BACKOFF_BASE, IC_OUTBOUND_BACKOFF_CAP.
    """

    run_worker(hub=hub_from_env(), threads=threads)


# --- invoices ---------------------------------------------------------------------------------------


@main.group()
def invoices() -> None:
    """Host invoices."""


@invoices.command("backfill")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--tenant", "tenant_id", required=True)
@click.option("--environment", "environment_id", required=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--allow-no-connection", is_flag=True, help="Exit 0 even when no connection of the tenant/environment syncs."
)
def invoices_backfill(path: str, tenant_id: str, environment_id: str, quiet: bool, allow_no_connection: bool) -> None:
    """Queue every invoice of a JSON Lines file (one invoice object per line; see docs/invoice-schema.md).

    Already queued or synced invoices are not queued again. Bad lines are listed with their number and
    reason; the others are still queued. Exit status 1 when any line was bad, or when no connection of
    the tenant and environment syncs invoices (nothing was queued) unless --allow-no-connection.
    """

    hub = hub_from_env()
    if path == "-":
        report = run_backfill(hub, click.get_binary_stream("stdin"), tenant_id, environment_id)  # type: ignore[operator]
    elif quiet:
        with open(path, "rb") as fh:
            report = run_backfill(hub, fh, tenant_id, environment_id)
    else:
        with open(path, "rb") as fh, click.progressbar(length=os.path.getsize(path), label="backfill") as bar:
            report = run_backfill(hub, fh, tenant_id, environment_id, progress=bar.update)
    for bad in report.bad[:1000]:
        click.echo(f"line {bad.line}: {bad.reason}", err=True)
    if len(report.bad) > 1000:
        click.echo(f"... and {len(report.bad) - 1000} more bad line(s)", err=True)
    click.echo(report.summary())
    if report.no_connection:
        click.echo(
            f"no connection of tenant {tenant_id!r} / environment {environment_id!r} syncs invoices: "
            f"{report.no_connection} invoice(s) not queued (see `connections list --tenant {tenant_id}`)",
            err=True,
        )
    if report.bad or (report.no_connection and not allow_no_connection):
        raise SystemExit(1)
