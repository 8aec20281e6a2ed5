"""The console's pages (GET). Each reads through :mod:`.queries` with the operator's tenant scope, so a
record of another tenant is simply not found."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import IntegrationError
from ..store.schema import utcnow
from ..webhooks import webhook_url
from . import queries
from .http import Response

if TYPE_CHECKING:
    from .app import Ctx

OK_MESSAGES = {
    "retried": "Queued again. The next attempt first looks the invoice up at the provider, then creates it.",
    "retried_all": "Failed tasks of this connection queued again.",
    "enabled": "Connection enabled.",
    "disabled": "Connection disabled: nothing is pushed and its webhooks are refused; nothing queued is lost.",
    "event_retried": "Event applied again.",
}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _choice(value: str | None, allowed: tuple[str, ...] | list[str]) -> str | None:
    return value if value in allowed else None


def not_found(ctx: Ctx, what: str = "page") -> Response:
    return ctx.render("error.html", 404, title="Not found", message=f"No such {what} here.")


def _ok(ctx: Ctx) -> str | None:
    return OK_MESSAGES.get(ctx.req.query.get("ok", ""))


# --- overview ------------------------------------------------------------------------------------------


def overview(ctx: Ctx) -> Response:
    now = utcnow()
    rows = queries.overview(ctx.hub.engine, ctx.tenant, now)
    hours = queries.hourly(ctx.hub.engine, ctx.tenant, now)
    return ctx.render("overview.html", rows=rows, chart=_chart(hours), now=now)


def _chart(hours: list[dict[str, Any]], width: int = 720, height: int = 120) -> dict[str, Any]:
    """Bar geometry of the hourly chart, drawn as inline SVG by the template (no script)."""
    peak = max([h["synced"] + h["failed"] for h in hours] + [1])
    slot = width / max(len(hours), 1)
    bars = []
    for i, h in enumerate(hours):
        ok_h = h["synced"] / peak * (height - 14)
        bad_h = h["failed"] / peak * (height - 14)
        bars.append({
            "x": round(i * slot + 1, 1), "w": round(slot - 2, 1),
            "ok_y": round(height - ok_h, 1), "ok_h": round(ok_h, 1),
            "bad_y": round(height - ok_h - bad_h, 1), "bad_h": round(bad_h, 1),
            "label": h["hour"].strftime("%H:00"), "synced": h["synced"], "failed": h["failed"],
        })
    return {"bars": bars, "width": width, "height": height, "peak": peak,
            "synced": sum(h["synced"] for h in hours), "failed": sum(h["failed"] for h in hours)}


# --- connections ---------------------------------------------------------------------------------------


def connections(ctx: Ctx) -> Response:
    return ctx.render("connections.html", connections=queries.list_connections(ctx.hub.engine, ctx.tenant))


def connection(ctx: Ctx, connection_id: str, *, status: int = 200, error: str | None = None,
               authorize_url: str | None = None) -> Response:
    row = queries.get_connection(ctx.hub.engine, ctx.tenant, connection_id)
    if row is None:
        return not_found(ctx, "connection")

    fields: list[dict[str, Any]] = []
    oauth = False
    provider_error = None
    limit = None
    try:
        info = ctx.hub.provider_info(row.provider)
        oauth = bool(info.oauth)
        provider_ctx = ctx.hub.context(row.id)
        stored = set(provider_ctx.secrets.names())
        limit = _rate_limit(ctx.hub.provider(row.provider), provider_ctx)
        for f in info.fields:
            if f.secret:
                fields.append({"name": f.name, "secret": True, "set": f.name in stored, "help": f.help})
        declared = {f.name for f in info.fields}
        fields += [{"name": n, "secret": True, "set": True, "help": "kept by the provider"}
                   for n in sorted(stored - declared)]
    except IntegrationError as exc:
        provider_error = str(exc)
    summary = next((r for r in queries.overview(ctx.hub.engine, ctx.tenant, utcnow()) if r["connection"].id == row.id),
                   None)
    return ctx.render(
        "connection.html", status, c=row, secrets=fields, oauth=oauth, provider_error=provider_error,
        webhook_url=webhook_url(ctx.hub.config.public_url, row.provider, row.tenant_id, row.environment_id),
        summary=summary, history=queries.connection_history(ctx.hub.engine, row.id), error=error, ok=_ok(ctx),
        authorize_url=authorize_url, limit=limit,
    )


def _rate_limit(provider: Any, provider_ctx: Any) -> Any:
    """The provider's documented limit for this account (``rate_limit`` hook), or ``None``."""
    try:
        return provider.rate_limit(ctx=provider_ctx)
    except Exception:  # a provider without the hook, or a broken one: the page still renders
        return None


# --- outbox --------------------------------------------------------------------------------------------


def tasks(ctx: Ctx) -> Response:
    q = ctx.req.query
    conns = queries.list_connections(ctx.hub.engine, ctx.tenant)
    filters: dict[str, Any] = {
        "status": _choice(q.get("status"), queries.TASK_STATUSES),
        "connection_id": _choice(q.get("connection"), [c.id for c in conns]),
        "kind": (q.get("kind") or "")[:40] or None,
        "local_id": (q.get("local_id") or "").strip()[:200] or None,
    }
    rows = queries.list_tasks(ctx.hub.engine, ctx.tenant, before=_int(q.get("before")), **filters)
    more = len(rows) == queries.PAGE_SIZE
    return ctx.render("tasks.html", tasks=rows, connections=conns, filters=filters, statuses=queries.TASK_STATUSES,
                      kinds=queries.task_kinds(ctx.hub.engine), next_before=rows[-1].id if more else None, ok=_ok(ctx))


def task(ctx: Ctx, task_id: str, *, status: int = 200, error: str | None = None) -> Response:
    row = queries.get_task(ctx.hub.engine, ctx.tenant, int(task_id))
    if row is None:
        return not_found(ctx, "task")
    payload = row.payload if isinstance(row.payload, dict) else {}
    return ctx.render("task.html", status, t=row, invoice=payload, customer=payload.get("customer") or {},
                      history=queries.history(ctx.hub.engine, "task", row.id), error=error, ok=_ok(ctx),
                      retryable=row.status in ("failed", "dead", "paused"))


# --- inbox ---------------------------------------------------------------------------------------------


def events(ctx: Ctx) -> Response:
    q = ctx.req.query
    conns = queries.list_connections(ctx.hub.engine, ctx.tenant)
    filters: dict[str, Any] = {
        "status": _choice(q.get("status"), queries.EVENT_STATUSES),
        "connection_id": _choice(q.get("connection"), [c.id for c in conns]),
        "kind": (q.get("kind") or "")[:40] or None,
    }
    rows = queries.list_events(ctx.hub.engine, ctx.tenant, before=_int(q.get("before")), **filters)
    more = len(rows) == queries.PAGE_SIZE
    return ctx.render("events.html", events=rows, connections=conns, filters=filters,
                      statuses=queries.EVENT_STATUSES, kinds=queries.event_kinds(ctx.hub.engine),
                      next_before=rows[-1].id if more else None)


def event(ctx: Ctx, event_id: str, *, status: int = 200, error: str | None = None) -> Response:
    row = queries.get_event(ctx.hub.engine, ctx.tenant, int(event_id))
    if row is None:
        return not_found(ctx, "event")
    return ctx.render("event.html", status, ev=row, history=queries.history(ctx.hub.engine, "event", row.id),
                      error=error, ok=_ok(ctx), retryable=row.status in ("failed", "received"))


# --- search --------------------------------------------------------------------------------------------


def search(ctx: Ctx) -> Response:
    text = (ctx.req.query.get("q") or "").strip()[:200]
    found = queries.search(ctx.hub.engine, ctx.tenant, text)
    return ctx.render("search.html", q=text, found=found)
