"""A token refresh never reverts an operator's secret change made during it (issue 12, bug 7).

The token request is held open by the Zoho emulator's latency while the operator changes the webhook
secret and a setting; the refresh then writes only the keys it means to change, under the row lock.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from integration_core.hub import Hub
from tests.workers.zoho import zoho_connection


def test_a_refresh_during_an_operator_update_keeps_both(hub: Hub, zoho_emulator: Any) -> None:
    conn, _ = zoho_connection(hub, zoho_emulator)
    before = hub.context(conn.id).secrets.get("access_token")
    zoho_emulator.expire_tokens()
    zoho_emulator.set_latency(1.5)  # every request, the token request included, now takes 1.5 s
    errors: list[BaseException] = []

    def refresh() -> None:
        try:
            hub.check_connection(conn.id)  # refreshes the expired access token, then reads the organization
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=refresh)
    worker.start()
    time.sleep(0.5)  # the token request is in flight
    hub.update_connection(conn.id, values={"webhook_secret": "operatorchanged123"}, name="Renamed")
    worker.join(timeout=30)
    zoho_emulator.set_latency(None)
    assert not errors, errors
    secrets = hub.context(conn.id).secrets
    assert secrets.get("webhook_secret") == "operatorchanged123"  # the operator's change survived
    assert secrets.get("access_token") not in (None, before)  # and so did the refresh
    assert hub.get_connection(conn.id).name == "Renamed"


def test_secrets_update_merges_with_what_is_stored(hub: Hub, zoho_emulator: Any) -> None:
    conn, _ = zoho_connection(hub, zoho_emulator)
    stale = hub.context(conn.id)  # loaded before the operator's change
    hub.update_connection(conn.id, values={"webhook_secret": "operatorchanged123"})
    stale.secrets.update(access_token="tok-new", refresh_token=None)
    stale.update_settings(api_domain="https://example.invalid")
    fresh = hub.context(conn.id)
    assert fresh.secrets.get("webhook_secret") == "operatorchanged123"
    assert fresh.secrets.get("access_token") == "tok-new" and "refresh_token" not in fresh.secrets
    assert stale.secrets.get("webhook_secret") == "operatorchanged123"  # the writer sees the merged set
    assert fresh.settings["api_domain"] == "https://example.invalid"
