"""Shared helpers of the QuickBooks tests: an app and company in the emulator, raw API calls, and a Hub
connection authorized through the Hub's own OAuth flow (the emulator's consent redirects at once)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from integration_core.hub import Hub
from integration_core.models import Connection

CLIENT_ID = "ABtestClientIdOfTheIntegrationCoreQuickBooksApp00"
CLIENT_SECRET = "test-client-secret"
REDIRECT_URI = "http://127.0.0.1:9/callback"
VERIFIER_TOKEN = "verifier-token-of-the-test-app"


class Api:
    """Raw calls to one emulated company with a token minted by the emulator."""

    def __init__(self, emu: Any, realm: str, client_id: str = CLIENT_ID) -> None:
        self.emu = emu
        self.realm = realm
        self.tokens = emu.issue_tokens(client_id, realm)
        self.session = requests.Session()

    def url(self, path: str) -> str:
        return f"{self.emu.base_url}/v3/company/{self.realm}{path}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}", "Accept": "application/json"}

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.url(path), params={"minorversion": 75, **params}, headers=self.headers(),
                                timeout=10)

    def post(self, path: str, body: Any, **params: Any) -> requests.Response:
        return self.session.post(self.url(path), params={"minorversion": 75, **params}, json=body,
                                 headers=self.headers(), timeout=10)

    def query(self, text: str) -> requests.Response:
        return self.get("/query", query=text)


def company(emu: Any, **config: Any) -> tuple[str, Api]:
    emu.add_app(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    realm = emu.add_company(**config)
    return realm, Api(emu, realm)


def fault(response: requests.Response) -> tuple[str, str]:
    err = response.json()["Fault"]["Error"][0]
    return err["code"], err["Detail"]


def authorize(hub: Hub, conn: Connection, emu: Any, realm: str | None = None) -> Connection:
    emu.next_consent(realm)
    url = hub.start_authorization(conn.id, REDIRECT_URI)
    location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    return hub.complete_authorization(params.pop("state"), params.pop("code", ""), params)


def qbo_connection(hub: Hub, emu: Any, *, tenant: str = "t1", env: str = "prod",
                   company_config: dict[str, Any] | None = None, **settings: str) -> tuple[Connection, str]:
    """(connection, realm id) of a fresh emulated company, authorized through the Hub."""
    emu.add_app(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    realm = emu.add_company(**(company_config or {}))
    conn = hub.add_connection(
        tenant_id=tenant, environment_id=env, provider="quickbooks", name=f"QuickBooks {tenant}",
        values={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "environment": emu.base_url,
                "webhook_verifier_token": VERIFIER_TOKEN, **settings},
    )
    return authorize(hub, conn, emu, realm), realm
