"""Every failure class of the Books API, provoked on the emulator, mapped to the core's typed errors."""

from __future__ import annotations

import socket
import threading

import pytest
from zoho_books.client import ZohoClient

from conftest import Zoho
from integration_core.errors import AuthError, PermanentError, RateLimitedError, TransientError


def client(zoho: Zoho, **overrides) -> ZohoClient:
    zoho.settings.update(overrides)
    return ZohoClient(zoho.context())


def test_success_sends_org_and_token(zoho: Zoho) -> None:
    body = client(zoho).get("/settings/currencies")
    assert body["code"] == 0 and body["currencies"][0]["currency_code"] == "USD"
    assert zoho.count("GET", "/settings/currencies") == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_read_is_transient_not_uncertain(zoho: Zoho, status: int) -> None:
    zoho.emulator.fail_next(status=status)
    with pytest.raises(TransientError) as info:
        client(zoho).get("/contacts")
    assert not isinstance(info.value, RateLimitedError)
    assert info.value.uncertain is False and info.value.code == 1000


def test_5xx_write_is_uncertain(zoho: Zoho) -> None:
    zoho.emulator.fail_next(method="POST")
    with pytest.raises(TransientError) as info:
        client(zoho).post("/contacts", {"contact_name": "A"})
    assert info.value.uncertain is True


def test_429_minute_window(zoho: Zoho) -> None:
    zoho.emulator.rate_limit_next()
    with pytest.raises(RateLimitedError) as info:
        client(zoho).get("/contacts")
    assert info.value.code == 44 and info.value.retry_after == 60


def test_429_honours_retry_after_header(zoho_factory) -> None:
    zoho: Zoho = zoho_factory({"retry_after": 7})
    zoho.emulator.rate_limit_next()
    with pytest.raises(RateLimitedError) as info:
        client(zoho).get("/contacts")
    assert info.value.retry_after == 7


def test_real_minute_limit(zoho_factory) -> None:
    zoho: Zoho = zoho_factory({"rate_limit_per_minute": 3})
    c = client(zoho)
    for _ in range(3):
        c.get("/contacts")
    with pytest.raises(RateLimitedError) as info:
        c.get("/contacts")
    assert info.value.code == 44 and 0 < info.value.retry_after <= 60


def test_daily_limit_waits_for_next_day(zoho_factory) -> None:
    zoho: Zoho = zoho_factory({"daily_limit": 1})
    c = client(zoho)
    c.get("/contacts")
    with pytest.raises(RateLimitedError) as info:
        c.get("/contacts")
    assert info.value.code == 45 and info.value.retry_after >= 60


def test_concurrency_limit_is_short(zoho_factory) -> None:
    zoho: Zoho = zoho_factory({"max_concurrent": 1})
    zoho.emulator.set_latency(0.5)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client(zoho).get("/contacts")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    limited = [e for e in errors if isinstance(e, RateLimitedError)]
    assert limited and all(e.code == 1070 and e.retry_after <= 5 for e in limited)


def test_lost_response_on_write_is_uncertain(zoho: Zoho) -> None:
    zoho.emulator.lose_next_response(method="POST")
    with pytest.raises(TransientError) as info:
        client(zoho).post("/contacts", {"contact_name": "Lost Ltd"})
    assert info.value.uncertain is True
    assert [c["contact_name"] for c in zoho.emulator.contacts(zoho.org_id)] == ["Lost Ltd"]  # it was committed


def test_error_after_commit_is_uncertain(zoho: Zoho) -> None:
    zoho.emulator.lose_next_response(method="POST", as_error=True)
    with pytest.raises(TransientError) as info:
        client(zoho).post("/contacts", {"contact_name": "Half Ltd"})
    assert info.value.uncertain is True


def test_read_timeout(zoho: Zoho) -> None:
    zoho.emulator.set_latency(1.0)
    with pytest.raises(TransientError) as info:
        client(zoho, read_timeout=0.2).post("/contacts", {"contact_name": "Slow Ltd"})
    assert info.value.uncertain is True and "timed out" in info.value.message
    with pytest.raises(TransientError) as info:
        client(zoho, read_timeout=0.2).get("/contacts")
    assert info.value.uncertain is False


def test_connection_refused_is_certain(zoho: Zoho) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    zoho.settings["api_domain"] = f"http://127.0.0.1:{port}"
    with pytest.raises(TransientError) as info:
        client(zoho).post("/contacts", {"contact_name": "Nobody"})
    assert info.value.uncertain is False


def test_validation_is_permanent_with_zoho_message(zoho: Zoho) -> None:
    with pytest.raises(PermanentError) as info:
        client(zoho).post("/invoices", {"line_items": []})
    assert info.value.code not in (None, 0) and "Zoho Books POST /invoices" in info.value.message


def test_not_found_is_permanent(zoho: Zoho) -> None:
    with pytest.raises(PermanentError) as info:
        client(zoho).get("/invoices/123456")
    assert info.value.code == 1002 and "does not exist" in info.value.message


def test_other_organization_is_auth_error_without_refresh(zoho: Zoho) -> None:
    other = zoho.emulator.add_organization(name="Other")
    with pytest.raises(AuthError) as info:
        client(zoho, organization_id=other).get("/contacts")
    assert info.value.code == 6041
    assert zoho.minted() == 0


def test_messages_never_contain_tokens(zoho: Zoho) -> None:
    token = zoho.store.values["access_token"]
    zoho.emulator.expire_tokens()
    zoho.emulator.oauth.refresh_tokens[zoho.store.values["refresh_token"]].revoked = True
    with pytest.raises(AuthError) as info:
        client(zoho).get("/contacts")
    text = str(info.value)
    assert token not in text and zoho.store.values["refresh_token"] not in text and "test-client-secret" not in text
