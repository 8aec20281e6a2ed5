"""The console's actions (POST): the Hub's own operator actions, after the same tenant check as the
pages. The app has checked the CSRF token and runs each action as the signed-in operator, so the audit
rows these actions write say who did it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import inbound, outbox
from ..errors import IntegrationError
from ..models import TaskStatus
from ..webhooks import callback_url
from . import queries, views
from .http import Response

if TYPE_CHECKING:
    from .app import Ctx

log = logging.getLogger(__name__)


def retry_task(ctx: Ctx, task_id: str) -> Response:
    """Retry one failed, dead or paused task (``integration-core tasks retry ID``)."""
    if queries.get_task(ctx.hub.engine, ctx.tenant, int(task_id)) is None:
        return views.not_found(ctx, "task")
    try:
        outbox.retry_task(ctx.hub, int(task_id))
    except IntegrationError as exc:
        return views.task(ctx, task_id, status=409, error=str(exc))
    return Response.redirect(ctx.url(f"/tasks/{int(task_id)}", ok="retried"))


def retry_event(ctx: Ctx, event_id: str) -> Response:
    """Apply a failed inbox event again (``integration-core events retry ID``)."""
    if queries.get_event(ctx.hub.engine, ctx.tenant, int(event_id)) is None:
        return views.not_found(ctx, "event")
    try:
        inbound.retry(ctx.hub, int(event_id))
    except IntegrationError as exc:
        return views.event(ctx, event_id, status=409, error=str(exc))
    return Response.redirect(ctx.url(f"/events/{int(event_id)}", ok="event_retried"))


def connection_action(ctx: Ctx, connection_id: str, action: str) -> Response:
    """enable, disable, authorize (a new consent URL) or retry-failed, for one visible connection."""
    row = queries.get_connection(ctx.hub.engine, ctx.tenant, connection_id)
    if row is None:
        return views.not_found(ctx, "connection")
    hub = ctx.hub
    try:
        if action == "enable":
            hub.enable(row.id)
            return Response.redirect(ctx.url(f"/connections/{row.id}", ok="enabled"))
        if action == "disable":
            hub.disable(row.id)
            return Response.redirect(ctx.url(f"/connections/{row.id}", ok="disabled"))
        if action == "retry-failed":
            outbox.retry_failed(hub, row.id)
            return Response.redirect(
                ctx.url("/tasks", connection=row.id, status=TaskStatus.PENDING, ok="retried_all")
            )

        consent = hub.start_authorization(row.id, callback_url(hub.config.public_url))
        return views.connection(ctx, row.id, authorize_url=consent)
    except IntegrationError as exc:
        return views.connection(ctx, row.id, status=409, error=str(exc))
