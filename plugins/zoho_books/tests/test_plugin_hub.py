"""The provider driven by the core's Hub (SQLite store, encrypted secrets) against the emulator."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

from conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, WEBHOOK_SECRET
from integration_core.models import ConnectionStatus


def test_hub_connection_oauth_and_check(ic_hub, zoho_emulator) -> None:
    zoho_emulator.add_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    org_id = zoho_emulator.add_organization(name="Hub Org", currency_code="EUR")
    conn = ic_hub.add_connection(
        tenant_id="t1", environment_id="live", provider="zoho_books", name="Zoho",
        values={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "organization_id": org_id,
                "accounts_server": zoho_emulator.base_url + "/", "webhook_secret": WEBHOOK_SECRET},
    )
    assert conn.status == ConnectionStatus.PENDING_AUTH
    assert conn.settings["accounts_server"] == zoho_emulator.base_url
    assert "client_secret" not in conn.settings
    url = ic_hub.start_authorization(conn.id, REDIRECT_URI)
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    done = ic_hub.complete_authorization(params.pop("state"), params.pop("code"), params)
    assert done.status == ConnectionStatus.ACTIVE
    assert done.settings["api_domain"] == zoho_emulator.base_url
    result = ic_hub.check_connection(conn.id)
    assert result.account_name == "Hub Org" and result.base_currency == "EUR"
    zoho_emulator.expire_tokens()  # refresh through the Hub's secrets store
    assert ic_hub.check_connection(conn.id).base_currency == "EUR"


def test_hub_update_after_authorization(ic_hub, zoho_emulator) -> None:
    zoho_emulator.add_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    org_id = zoho_emulator.add_organization(name="Hub Org")
    conn = ic_hub.add_connection(
        tenant_id="t1", environment_id="live", provider="zoho_books", name="Zoho",
        values={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "organization_id": org_id,
                "accounts_server": zoho_emulator.base_url, "webhook_secret": WEBHOOK_SECRET},
    )
    url = ic_hub.start_authorization(conn.id, REDIRECT_URI)
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    ic_hub.complete_authorization(params.pop("state"), params.pop("code"), params)
    ic_hub.update_connection(conn.id, values={"webhook_secret": "ZYXWVUTSRQPO9876"})
    assert ic_hub.check_connection(conn.id).account_name == "Hub Org"


def test_disable_enable_and_disconnect_through_the_hub(ic_hub, zoho_emulator) -> None:
    zoho_emulator.add_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    org_id = zoho_emulator.add_organization(name="Hub Org")
    conn = ic_hub.add_connection(
        tenant_id="t1", environment_id="live", provider="zoho_books", name="Zoho",
        values={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "organization_id": org_id,
                "accounts_server": zoho_emulator.base_url, "webhook_secret": WEBHOOK_SECRET},
    )
    assert ic_hub.enable(conn.id) == ConnectionStatus.NEEDS_REAUTH  # never authorized: not active
    url = ic_hub.start_authorization(conn.id, REDIRECT_URI)
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    ic_hub.complete_authorization(params.pop("state"), params.pop("code"), params)
    refresh_token = ic_hub.context(conn.id).secrets["refresh_token"]

    ic_hub.disable(conn.id)
    assert ic_hub.enable(conn.id) == ConnectionStatus.ACTIVE  # the grant still works

    ic_hub.disconnect(conn.id)
    assert ic_hub.get_connection(conn.id).status == ConnectionStatus.PENDING_AUTH
    assert zoho_emulator.oauth.refresh_tokens[refresh_token].revoked
    assert "refresh_token" not in ic_hub.context(conn.id).secrets
    assert ic_hub.context(conn.id).secrets["client_secret"] == CLIENT_SECRET  # credentials are kept
    assert ic_hub.enable(conn.id) == ConnectionStatus.NEEDS_REAUTH
