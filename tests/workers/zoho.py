"""A Hub connection to an organization of the local Zoho Books emulator, authorized through the Hub's
own OAuth flow (the emulator's consent page redirects at once)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from integration_core.hub import Hub
from integration_core.models import Connection

CLIENT_ID = "1000.OUTBOUNDTEST"
CLIENT_SECRET = "outbound-client-secret"
REDIRECT_URI = "http://127.0.0.1:9/callback"
WEBHOOK_SECRET = "abcdefghijkl1234"


def zoho_connection(
    hub: Hub, emulator: Any, *, tenant: str = "t1", env: str = "prod", currency: str = "USD",
    org_settings: dict[str, Any] | None = None, **settings: str
) -> tuple[Connection, str]:
    """(connection, organization id). ``settings`` are extra provider settings, e.g. rate limits;
    ``org_settings`` the emulated organization's edition settings (e.g. ``{"edition": "in"}``)."""
    emulator.add_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    org_id = emulator.add_organization(name=f"Org {tenant}", currency_code=currency, **(org_settings or {}))
    conn = hub.add_connection(
        tenant_id=tenant, environment_id=env, provider="zoho_books", name=f"Zoho {tenant}",
        values={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "organization_id": org_id,
                "accounts_server": emulator.base_url, "webhook_secret": WEBHOOK_SECRET, **settings},
    )
    url = hub.start_authorization(conn.id, REDIRECT_URI)
    location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    conn = hub.complete_authorization(params.pop("state"), params.pop("code"), params)
    return conn, org_id


def by_reference(emulator: Any, org_id: str) -> dict[str, int]:
    """How many Zoho invoices carry each reference number."""
    counts: dict[str, int] = {}
    for inv in emulator.invoices(org_id):
        ref = str(inv.get("reference_number") or "")
        counts[ref] = counts.get(ref, 0) + 1
    return counts
