"""Shared helpers: a Zoho Books connection pointed at the local emulator, no database involved."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from integration_core.context import ProviderContext, Secrets
from integration_core.models import Connection

CLIENT_ID = "1000.TESTCLIENT"
CLIENT_SECRET = "test-client-secret"
REDIRECT_URI = "http://127.0.0.1:9/callback"
WEBHOOK_SECRET = "abcdefghijkl1234"


class SecretStore:
    """Stands in for the core's encrypted vault: every context of one connection reads and writes here."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)
        self.lock = threading.Lock()
        self.saves = 0

    def save(self, changes: dict[str, str | None]) -> dict[str, str]:
        """Merges the changed keys, as the Hub does under the connection's row lock."""
        with self.lock:
            merged = {**self.values, **changes}
            self.values = {k: v for k, v in merged.items() if v is not None}
            self.saves += 1
            return dict(self.values)

    def load(self) -> dict[str, str]:
        with self.lock:
            return dict(self.values)


class Zoho:
    """One emulated organization plus a connection to it; ``context()`` gives a fresh ProviderContext."""

    def __init__(self, emulator: Any, currency_code: str = "USD", **settings: Any) -> None:
        self.emulator = emulator
        emulator.add_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
        self.org_id = emulator.add_organization(name="Test Org", currency_code=currency_code)
        self.connection_id = "conn-" + uuid.uuid4().hex[:10]
        self.settings: dict[str, Any] = {
            "client_id": CLIENT_ID, "organization_id": self.org_id, "accounts_server": emulator.base_url,
            **settings,
        }
        self.store = SecretStore({"client_secret": CLIENT_SECRET, "webhook_secret": WEBHOOK_SECRET})

    def authorize(self, org_ids: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Tokens minted directly by the emulator (the browser dance is tested separately)."""
        tokens = self.emulator.issue_tokens(CLIENT_ID, *(org_ids if org_ids is not None else (self.org_id,)))
        self.store.save({**self.store.values, "access_token": tokens["access_token"],
                         "refresh_token": tokens["refresh_token"],
                         "access_token_expires_at": str(time.time() + float(tokens["expires_in"]))})
        self.settings["api_domain"] = self.emulator.base_url
        return tokens

    def save_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        self.settings = {**self.settings, **changes}
        return dict(self.settings)

    def context(self) -> ProviderContext:
        record = Connection(id=self.connection_id, tenant_id="t1", environment_id="live", provider="zoho_books",
                            name="Zoho", settings=dict(self.settings))
        secrets = Secrets(self.store.load(), save=self.store.save, load=self.store.load)
        return ProviderContext(record, secrets, save_settings=self.save_settings)

    def count(self, method: str, template: str) -> int:
        return self.emulator.request_count(self.org_id, method, template)

    def minted(self) -> int:
        """Access tokens minted by refresh for the stored refresh token."""
        rt = self.emulator.oauth.refresh_tokens[self.store.values["refresh_token"]]
        return len(rt.mints)


@pytest.fixture
def zoho_factory(zoho_emulator_factory: Callable[..., Any]) -> Callable[..., Zoho]:
    def make(emulator_options: dict[str, Any] | None = None, *, authorize: bool = True, **settings: Any) -> Zoho:
        zoho = Zoho(zoho_emulator_factory(**(emulator_options or {})), **settings)
        if authorize:
            zoho.authorize()
        return zoho

    return make


@pytest.fixture
def zoho(zoho_factory: Callable[..., Zoho]) -> Zoho:
    """An authorized connection to a fresh emulated USD organization."""
    return zoho_factory()
