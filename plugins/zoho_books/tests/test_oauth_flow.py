"""OAuth against the emulated accounts server: authorize, exchange, refresh (proactive, on 401, collapsed)."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from zoho_books import plugin

from conftest import CLIENT_ID, REDIRECT_URI, Zoho
from integration_core.errors import AuthError, RateLimitedError


def test_authorize_exchange_and_call(zoho_factory) -> None:
    zoho: Zoho = zoho_factory(authorize=False)
    ctx = zoho.context()
    url = plugin.authorization_url(ctx, REDIRECT_URI, "st-1")
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert params["state"] == "st-1"
    plugin.complete_authorization(ctx, params["code"], REDIRECT_URI, params)
    assert zoho.store.values["refresh_token"] and zoho.store.values["access_token"]
    assert float(zoho.store.values["access_token_expires_at"]) > time.time() + 3000
    assert zoho.settings["api_domain"] == zoho.emulator.base_url  # from the token response
    result = plugin.connect(zoho.context())
    assert result.account_name == "Test Org" and result.base_currency == "USD"
    # the code is single-use: a replay is refused with a clear AuthError
    with pytest.raises(AuthError, match="invalid_code"):
        plugin.complete_authorization(zoho.context(), params["code"], REDIRECT_URI, params)


def test_wrong_client_secret_is_auth_error(zoho_factory) -> None:
    zoho: Zoho = zoho_factory(authorize=False)
    zoho.store.values["client_secret"] = "s3cr3t-XYZZY"
    with pytest.raises(AuthError, match="invalid_client") as info:
        plugin.complete_authorization(zoho.context(), "1000.nope", REDIRECT_URI, {})
    assert "XYZZY" not in str(info.value)


def test_foreign_accounts_server_in_redirect_is_ignored(zoho_factory) -> None:
    zoho: Zoho = zoho_factory(authorize=False)
    url = plugin.authorization_url(zoho.context(), REDIRECT_URI, "s")
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    params["accounts-server"] = "https://attacker.example"
    plugin.complete_authorization(zoho.context(), params["code"], REDIRECT_URI, params)
    assert zoho.settings["accounts_server"] == zoho.emulator.base_url


def test_refresh_before_expiry(zoho: Zoho) -> None:
    old = zoho.store.values["access_token"]
    zoho.store.values["access_token_expires_at"] = str(time.time() + 60)  # inside the 5-minute margin
    plugin.connect(zoho.context())
    assert zoho.store.values["access_token"] != old
    assert zoho.minted() == 1


def test_refresh_once_on_401(zoho: Zoho) -> None:
    zoho.emulator.expire_tokens()  # Zoho says 57 although our clock says the token is fresh
    before = zoho.count("GET", "/organizations/{organization_id}")
    plugin.connect(zoho.context())
    assert zoho.minted() == 1
    assert zoho.count("GET", "/organizations/{organization_id}") == before + 2


def test_revoked_grant_is_auth_error(zoho: Zoho) -> None:
    plugin.disconnect(zoho.context())
    assert "refresh_token" not in zoho.store.values
    rt = next(iter(zoho.emulator.oauth.refresh_tokens.values()))
    assert rt.revoked
    zoho.store.values.update(refresh_token=rt.token, access_token="1000.stale", access_token_expires_at="0")
    with pytest.raises(AuthError, match="authorize"):
        plugin.connect(zoho.context())


def test_missing_scope_is_auth_error_after_one_refresh(zoho: Zoho) -> None:
    tokens = zoho.emulator.issue_tokens(CLIENT_ID, zoho.org_id, scopes=["ZohoBooks.contacts.ALL"])
    zoho.store.values.update(access_token=tokens["access_token"], refresh_token=tokens["refresh_token"])
    with pytest.raises(AuthError, match="after a token refresh"):
        plugin.connect(zoho.context())


def test_throttled_refresh_is_rate_limited(zoho_factory) -> None:
    zoho: Zoho = zoho_factory({"refresh_limit": 1})
    zoho.emulator.expire_tokens()
    plugin.connect(zoho.context())  # the one allowed refresh
    zoho.emulator.expire_tokens()
    with pytest.raises(RateLimitedError) as info:
        plugin.connect(zoho.context())
    assert info.value.retry_after == 300


def test_concurrent_refreshes_collapse(zoho: Zoho) -> None:
    zoho.store.values["access_token_expires_at"] = "0"
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def work() -> None:
        ctx = zoho.context()  # each thread its own context, as the core would build
        barrier.wait()
        try:
            plugin.connect(ctx)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert zoho.minted() == 1


def test_concurrent_401s_collapse(zoho: Zoho) -> None:
    zoho.emulator.expire_tokens()
    barrier = threading.Barrier(12)
    errors: list[BaseException] = []

    def work() -> None:
        ctx = zoho.context()
        barrier.wait()
        try:
            plugin.connect(ctx)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert zoho.minted() == 1
