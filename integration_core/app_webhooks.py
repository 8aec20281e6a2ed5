"""Provider-level webhooks: ``POST /v1/webhooks/<provider>``, one URL for every account of a provider's app.

Some providers post every account's events to one URL of the app, signed with an app-level secret. The order:

1. ``verify_app_webhook(app, request)`` with the provider-level secrets (``providers configure``): 401 when
   it is not authentic (nothing stored);
2. ``route_webhook(app, request)`` names the account keys the payload concerns (400 when malformed);
3. the connections of those accounts are found by ``connections.account_key`` (set from the provider's
   ``account_key`` hook whenever a connection's settings are written, and for connections without one when
   the Hub starts and before an account is recorded as unrouted); ``parse_event(ctx, request)`` gives each
   connection its events (a thin provider returns notices, fetched later by the outbox);
4. the events are stored and applied through the inbox, exactly as on the per-connection route;
5. an account with no enabled connection is acknowledged and recorded in ``unrouted_events`` as ignored, with
   the reason (a redelivery counts itself on that row): never an error, since the sender would only retry.

The answer: 200 with the inbox counts and ``unrouted``; 503 when a host hook failed (the provider redelivers);
500 for our own failure.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import audit, inbound
from .errors import WebhookRejected
from .models import EVENT_TYPES, ConnectionStatus, Event, WebhookRequest
from .plugins import ProviderHooks
from .redact import log_internal
from .store.schema import connections, unrouted_events, utcnow

if TYPE_CHECKING:
    from .context import ProviderContext
    from .hub import Hub

log = logging.getLogger(__name__)
_EVENT_TYPES = tuple(EVENT_TYPES.values())
Answer = tuple[int, dict[str, Any], list[tuple[str, str]]]


def deliver(hub: Hub, name: str, provider: ProviderHooks, request: WebhookRequest) -> Answer:
    app = hub.apps.context(name)
    try:
        authentic = provider.verify_app_webhook(app=app, request=request)
    except Exception as exc:
        log.info("provider-level webhook for %s: verification raised %s", name, exc.__class__.__name__)
        authentic = False
    if authentic is not True:
        return 401, {"error": "signature not valid"}, []
    try:
        routed = provider.route_webhook(app=app, request=request)
        if routed is None or isinstance(routed, str | bytes) or not all(isinstance(k, str) and k for k in routed):
            raise TypeError("route_webhook must return a list of account keys")
        keys = list(dict.fromkeys(routed))
    except Exception as exc:
        log.info("provider-level webhook for %s rejected by route_webhook (%s)", name, exc.__class__.__name__)
        return 400, {"error": "malformed webhook"}, []
    by_key = connections_of(hub, name, keys)
    parsed: list[tuple[ProviderContext, list[Event]]] = []
    for key in keys:
        for row in by_key.get(key, []):
            ctx = hub.context_from_row(row)
            try:
                parsed.append((ctx, parse_for(provider, ctx, request)))
            except Exception as exc:
                log.info("provider-level webhook for %s: parse_event for connection %s failed (%s)", name,
                         row.id, exc.__class__.__name__)
                return 400, {"error": "malformed webhook"}, []
    try:
        outcomes = [o for ctx, events in parsed for o in inbound.apply(hub, ctx.record, events)]
        unrouted = [_unrouted(hub, name, key, request) for key in keys if key not in by_key]
    except Exception as exc:
        log_internal(log, f"provider-level webhook for {name}", exc)
        return 500, {"error": "internal error"}, []
    summary = {**inbound.summarize(outcomes), "unrouted": len(unrouted)}
    if summary["failed"]:
        return 503, {"status": "retry", **summary}, [("Retry-After", "60")]
    return 200, {"status": "ok", **summary}, []


def parse_for(provider: ProviderHooks, ctx: ProviderContext, request: WebhookRequest) -> list[Event]:
    """``parse_event``'s answer, checked to be a list of normalized events (per-connection and per-app
    webhooks and replays alike); anything else is a ``WebhookRejected`` (400)."""
    parsed = provider.parse_event(ctx=ctx, request=request)
    if parsed is None or isinstance(parsed, str | bytes | dict):
        raise WebhookRejected("parse_event must return a list of events")
    events = list(parsed)
    if not all(isinstance(e, _EVENT_TYPES) for e in events):
        raise WebhookRejected("parse_event must return a list of events")
    return events


def connections_of(hub: Hub, name: str, keys: list[str]) -> dict[str, list[Any]]:
    """The enabled connections of each account key (several tenants may share one remote account).

    A key no connection has is looked for once more after the connections of the provider without an account
    key got theirs (``ProviderApps.backfill_account_keys``: created before keys were stored), so such a
    connection's event is routed, not recorded as unrouted. Routed deliveries never pay for this."""
    found = _find(hub, name, keys)
    if any(key not in found for key in keys) and hub.apps.backfill_account_keys(name):
        found = _find(hub, name, keys)
    return found


def _find(hub: Hub, name: str, keys: list[str]) -> dict[str, list[Any]]:
    if not keys:
        return {}
    c = connections.c
    with hub.engine.connect() as db:
        rows = db.execute(
            sa.select(connections)
            .where(c.provider == name, c.account_key.in_(keys), c.status != ConnectionStatus.DISABLED)
            .order_by(c.id)
        ).fetchall()
    out: dict[str, list[Any]] = {}
    for row in rows:
        out.setdefault(row.account_key, []).append(row)
    return out


def _unrouted(hub: Hub, name: str, key: str, request: WebhookRequest) -> int:
    """Record a delivery for an account no enabled connection has (once per body; redeliveries counted), with
    the request, so that it can be replayed (``unrouted.replay``) once the account's connection exists."""
    dedupe = f"{key}:{hashlib.sha256(request.body).hexdigest()}"
    reason = f"no enabled {name} connection for account {key}"
    now = utcnow()
    u = unrouted_events.c
    kept = stored_request(request)
    try:
        with hub.engine.begin() as db:
            event_id = db.execute(unrouted_events.insert().values(
                provider=name, account_key=key[:200], dedupe_key=dedupe, reason=reason, deliveries=1,
                received_at=now, last_delivery_at=now, body=request.body, request=kept,
            )).inserted_primary_key[0]  # type: ignore[index]
            audit.record(db, "event", f"unrouted:{event_id}", "ignored", reason)
        return int(event_id)
    except sa.exc.IntegrityError:
        with hub.engine.begin() as db:
            row = db.execute(sa.select(u.id, u.request).where(u.provider == name, u.dedupe_key == dedupe)).one()
            values: dict[str, Any] = {"deliveries": u.deliveries + 1, "last_delivery_at": now}
            if row.request is None:  # recorded by an older version: this redelivery makes it replayable
                values.update(body=request.body, request=kept)
            db.execute(unrouted_events.update().where(u.id == row.id).values(**values))
            return int(row.id)


_CREDENTIAL_HEADER = re.compile(r"(?i)authorization|cookie|token|secret|password|api[-_]?key|credential")


def stored_request(request: WebhookRequest) -> dict[str, Any]:
    """What is kept of a request besides its body: method, path, query and the headers, without any header
    that may carry a credential (a replay is not verified again: the delivery was verified when it came)."""
    return {"method": request.method, "path": request.path, "query": {k: list(v) for k, v in request.query.items()},
            "headers": {k: v for k, v in request.headers.items() if not _CREDENTIAL_HEADER.search(k)}}
