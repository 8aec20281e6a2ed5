"""A failed re-authorization leaves an active connection active, its grant untouched (issue 12, bug 1)."""

from __future__ import annotations

from typing import Any

import requests
import sqlalchemy as sa

from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.models import ConnectionStatus
from integration_core.server import running
from integration_core.store.schema import audit_log, connections
from tests.workers.zoho import REDIRECT_URI, zoho_connection


def stored(hub: Hub, connection_id: str) -> Any:
    with hub.engine.connect() as db:
        return db.execute(sa.select(connections).where(connections.c.id == connection_id)).one()


def test_a_failed_reauthorization_keeps_the_connection_active(hub: Hub, zoho_emulator: Any) -> None:
    conn, _ = zoho_connection(hub, zoho_emulator)
    assert conn.status == ConnectionStatus.ACTIVE
    before = stored(hub, conn.id)
    grant = hub.context(conn.id).secrets.get("refresh_token")
    hub.start_authorization(conn.id, REDIRECT_URI)
    with hub.engine.connect() as db:
        (state,) = db.execute(sa.text("SELECT state FROM oauth_states")).scalars().all()
    with running(hub) as srv:
        r = requests.get(srv.url + "/v1/oauth/callback", params={"state": state, "code": "bogus"}, timeout=10)
    assert r.status_code == 400
    assert "still active" in r.text and "previous authorization" in r.text
    after = hub.get_connection(conn.id)
    assert after.status == ConnectionStatus.ACTIVE
    assert hub.context(conn.id).secrets.get("refresh_token") == grant
    assert stored(hub, conn.id).settings == before.settings
    with hub.engine.connect() as db:
        actions = db.execute(sa.select(audit_log.c.action).where(audit_log.c.subject_id == conn.id)).scalars().all()
    assert "reauthorization_failed" in actions


def test_the_callback_page_does_not_echo_the_error_text(config: Config) -> None:
    hub = Hub(config)
    with running(hub) as srv:
        r = requests.get(srv.url + "/v1/oauth/callback", params={"error": "<b>Call +1 555 SCAM</b>"}, timeout=10)
        known = requests.get(srv.url + "/v1/oauth/callback", params={"error": "access_denied"}, timeout=10)
    assert r.status_code == 400 and "SCAM" not in r.text
    assert known.status_code == 400 and "access_denied" in known.text
    hub.engine.dispose()
