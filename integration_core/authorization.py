"""OAuth: the account owner grants access, the provider's callback completes the connection.

A single-use ``state`` (stored with the redirect URI, valid for 15 minutes) ties each callback to the
connection that started it, so a callback can neither be replayed nor aimed at another connection.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import audit
from .context import ProviderContext
from .errors import ConfigurationError, IntegrationError, ProviderError
from .models import Connection, ConnectionStatus
from .outbox.ops import resume_paused
from .store.schema import oauth_states, utcnow

if TYPE_CHECKING:
    from .hub import Hub

STATE_TTL_SECONDS = 15 * 60


def start(hub: Hub, connection_id: str, redirect_uri: str) -> str:
    """The URL to send the account owner to, with a new single-use state."""
    conn = hub.get_connection(connection_id)
    state = secrets.token_urlsafe(24)
    url = hub.provider(conn.provider).authorization_url(ctx=hub.context(conn), redirect_uri=redirect_uri, state=state)
    if url is None:
        raise ConfigurationError(f"provider {conn.provider} needs no authorization")
    with hub.engine.begin() as db:
        db.execute(
            oauth_states.insert().values(
                state=state, connection_id=connection_id, redirect_uri=redirect_uri, created_at=utcnow()
            )
        )
        audit.record(db, "connection", connection_id, "authorization_started", connection_id=connection_id)
    return url


def complete(hub: Hub, state: str, code: str, params: Mapping[str, str] | None = None) -> Connection:
    """Consume ``state``, exchange ``code`` through the provider, check the grant: the connection is active."""
    with hub.engine.begin() as db:
        row = db.execute(sa.select(oauth_states).where(oauth_states.c.state == state)).first()
        if row is None:
            raise ConfigurationError("unknown or already used authorization state")
        db.execute(oauth_states.delete().where(oauth_states.c.state == state))
    age = (utcnow() - row.created_at).total_seconds()
    if age > STATE_TTL_SECONDS:
        raise ConfigurationError("the authorization request expired; start it again")
    conn = hub.get_connection(row.connection_id)
    ctx = hub.context(conn)
    # the grant as it was: what this flow changes is put back if it fails
    saved = ({k: ctx.secrets.get(k) for k in ctx.secrets.names()}, dict(ctx.settings))
    provider = hub.provider(conn.provider)
    try:
        provider.complete_authorization(ctx=ctx, code=code, redirect_uri=row.redirect_uri, params=dict(params or {}))
        result = provider.connect(ctx=ctx)
    except IntegrationError as exc:
        _failed(hub, conn, ctx, saved, exc)
        if conn.status == ConnectionStatus.ACTIVE:  # same error class, the outcome said (callback page)
            text = f"{exc}. The connection is still active with its previous authorization."
            exc.args = (text,)
            if isinstance(exc, ProviderError):
                exc.message = text
        raise
    with hub.engine.begin() as db:
        hub.set_status(conn.id, ConnectionStatus.ACTIVE, db=db)
        audit.record(db, "connection", conn.id, "authorized", result.account_name, connection_id=conn.id)
    resume_paused(hub, conn.id)
    return hub.get_connection(conn.id)


def _failed(hub: Hub, conn: Connection, ctx: ProviderContext, saved: tuple[dict[str, Any], dict[str, Any]],
            exc: IntegrationError) -> None:
    """A failed (re-)authorization changes nothing but the record of it: the secrets and settings this flow
    wrote are put back as they were (only those keys, merged under the row lock, so a token a worker
    refreshed meanwhile is kept), and an active connection stays active (its old grant still works)."""
    secrets, settings = saved
    if ctx.secrets.written:
        hub._save_secrets(conn.id, {k: secrets.get(k) for k in ctx.secrets.written})
    if ctx.settings_written:
        hub._save_settings(conn.id, {k: settings.get(k) for k in ctx.settings_written})
    reason = f"authorization failed: {exc}"
    with hub.engine.begin() as db:
        if conn.status == ConnectionStatus.ACTIVE:
            audit.record(db, "connection", conn.id, "reauthorization_failed", reason, connection_id=conn.id)
        elif conn.status == ConnectionStatus.PENDING_AUTH:
            hub.set_status(conn.id, ConnectionStatus.PENDING_AUTH, reason, db=db)
        else:  # needs_reauth or disabled: stays so, with the reason
            hub.set_status(conn.id, conn.status, reason, db=db)
