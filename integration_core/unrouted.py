"""Operator views and actions on ``unrouted_events``: provider-level deliveries for an account no enabled
connection had (``app_webhooks``), kept with their request.

* :func:`list_unrouted` / :func:`get_unrouted`: newest first, filtered; one with its payload and audit history;
* :func:`replay`: once the account's connection exists (or is enabled again), the stored request goes through
  the same path as a live delivery (``parse_event`` per connection of the account, then the inbox with the
  provider's dedupe keys), so replaying twice, or replaying what the provider also redelivered, is harmless.
  The delivery was verified when it came; a replay is not verified again (credential headers are not kept);
* :func:`purge`: rows older than a number of days (the request bodies of accounts nobody connects).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import audit, inbound
from .app_webhooks import connections_of, parse_for
from .errors import ConfigurationError, NotFoundError, WebhookRejected
from .store.schema import unrouted_events, utcnow
from .webhook_entry import build_request

if TYPE_CHECKING:
    from .hub import Hub

u = unrouted_events.c
SUMMARY_COLUMNS = (u.id, u.provider, u.account_key, u.dedupe_key, u.reason, u.deliveries, u.received_at,
                   u.last_delivery_at, u.replayed_at, (u.body.is_not(None)).label("replayable"))


def list_unrouted(hub: Hub, *, provider: str | None = None, since: dt.datetime | None = None,
                  reason: str | None = None, account: str | None = None, pending: bool = False,
                  limit: int = 200) -> list[dict[str, Any]]:
    """Newest first. ``since``: first received at or after; ``reason``: a case-insensitive part of it;
    ``pending``: never replayed."""
    query = sa.select(*SUMMARY_COLUMNS).order_by(u.id.desc()).limit(limit)
    if provider:
        query = query.where(u.provider == provider)
    if since is not None:
        query = query.where(u.received_at >= since)
    if reason:
        query = query.where(sa.func.lower(u.reason).contains(reason.lower(), autoescape=True))
    if account:
        query = query.where(u.account_key == account)
    if pending:
        query = query.where(u.replayed_at.is_(None))
    with hub.engine.connect() as db:
        return [_summary(r) for r in db.execute(query)]


def get_unrouted(hub: Hub, event_id: int) -> dict[str, Any]:
    """One unrouted event: its summary, the request as kept (the body as JSON when it is JSON, else text) and
    its audit history. What may hold a credential is the caller's to redact before showing it."""
    with hub.engine.connect() as db:
        row = db.execute(sa.select(*SUMMARY_COLUMNS, u.body, u.request).where(u.id == event_id)).first()
        if row is None:
            raise NotFoundError(f"no unrouted event {event_id}")
        data = _summary(row)
        data["request"] = row.request
        data["payload"] = None if row.body is None else _payload(bytes(row.body))
        data["history"] = [{"at": h.at.isoformat(), "action": h.action, "detail": h.detail}
                           for h in audit.history(db, "event", f"unrouted:{event_id}")]
    return data


def replay(hub: Hub, event_id: int) -> dict[str, Any]:
    """Route a stored unrouted delivery again, to the enabled connections its account has now: the inbox
    counts, and the connections it reached. ``NotFoundError`` while the account still has none."""
    with hub.engine.connect() as db:
        row = db.execute(sa.select(unrouted_events).where(u.id == event_id)).first()
    if row is None:
        raise NotFoundError(f"no unrouted event {event_id}")
    if row.body is None or row.request is None:
        raise ConfigurationError(
            f"unrouted event {event_id} was recorded before requests were kept and cannot be replayed: "
            "`connections reconcile ID` catches up what it named"
        )
    provider = hub.provider(row.provider)
    kept = row.request
    request = build_request(str(kept.get("method") or "POST"), str(kept.get("path") or ""),
                            dict(kept.get("headers") or {}), dict(kept.get("query") or {}), bytes(row.body))
    rows = connections_of(hub, row.provider, [row.account_key]).get(row.account_key, [])
    if not rows:
        raise NotFoundError(f"still no enabled {row.provider} connection for account {row.account_key}: "
                            "create (or enable) it first")
    outcomes = []
    for conn_row in rows:
        ctx = hub.context_from_row(conn_row)
        try:
            events = parse_for(provider, ctx, request)
        except Exception as exc:
            raise WebhookRejected(f"the provider could not parse unrouted event {event_id} for connection "
                                  f"{conn_row.id} ({exc.__class__.__name__})") from None
        outcomes.extend(inbound.apply(hub, ctx.record, events))
    reached = [str(r.id) for r in rows]
    summary: dict[str, Any] = {**inbound.summarize(outcomes), "connections": reached}
    detail = (f"to {', '.join(reached)}: {summary['events']} event(s), {summary['applied']} applied, "
              f"{summary['ignored']} ignored, {summary['failed']} failed, {summary['duplicates']} duplicate(s)")
    with hub.engine.begin() as db:
        db.execute(unrouted_events.update().where(u.id == event_id).values(replayed_at=utcnow()))
        audit.record(db, "event", f"unrouted:{event_id}", "replayed", detail)
    return summary


def purge(hub: Hub, older_than_days: float, *, provider: str | None = None) -> int:
    """Delete the unrouted events last delivered more than ``older_than_days`` ago; how many."""
    if older_than_days < 0:
        raise ConfigurationError("older_than_days must not be negative")
    cutoff = utcnow() - dt.timedelta(days=older_than_days)
    query = unrouted_events.delete().where(u.last_delivery_at < cutoff)
    if provider:
        query = query.where(u.provider == provider)
    with hub.engine.begin() as db:
        count = int(db.execute(query).rowcount or 0)
        audit.record(db, "event", None, "unrouted_purged",
                     f"{count} unrouted event(s) last delivered before {cutoff.isoformat(timespec='seconds')}"
                     + (f" ({provider})" if provider else ""))
    return count


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "provider": row.provider, "account_key": row.account_key, "dedupe_key": row.dedupe_key,
        "reason": row.reason, "deliveries": row.deliveries, "replayable": bool(row.replayable),
        "received_at": _iso(row.received_at), "last_delivery_at": _iso(row.last_delivery_at),
        "replayed_at": _iso(row.replayed_at),
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _payload(body: bytes) -> Any:
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
