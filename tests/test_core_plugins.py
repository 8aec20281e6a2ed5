"""Plugin discovery and routing: a call for a connection reaches exactly that connection's provider."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from integration_core.errors import UnknownProviderError
from integration_core.hookspecs import hookimpl
from integration_core.models import Customer, ProviderInfo
from integration_core.plugins import Plugins

ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[str] = []

    @hookimpl
    def provider_info(self) -> ProviderInfo:
        return ProviderInfo(name=self.name, title=self.name, version="1")

    @hookimpl
    def upsert_contact(self, connection, customer):  # type: ignore[no-untyped-def]
        self.calls.append(customer.id)
        return f"{self.name}-{customer.id}"


def test_a_call_reaches_only_the_named_provider() -> None:
    plugins = Plugins(load_entry_points=False)
    first, second = Recorder("first"), Recorder("second")
    plugins.add_provider("first", first)
    plugins.add_provider("second", second)
    customer = Customer(id="c1", name="Ada")
    assert plugins.provider("second").upsert_contact(connection=None, customer=customer) == "second-c1"
    assert first.calls == [] and second.calls == ["c1"]
    assert plugins.provider("first").provider_info().name == "first"


def test_unknown_provider_lists_installed_ones() -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.add_provider("first", Recorder("first"))
    with pytest.raises(UnknownProviderError, match=r"unknown provider 'zz'; installed providers: first"):
        plugins.provider("zz")


def test_entry_points_find_built_in_and_installed_providers() -> None:
    names = Plugins().provider_names()
    assert {"ledger", "faulty"} <= set(names)
    out = subprocess.run([sys.executable, "-m", "integration_core", "providers"], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    assert "ledger\t" in out


def test_core_names_no_provider() -> None:
    """The core stays provider-agnostic: no file in integration_core/ names the first real provider."""
    hits = [p for p in (ROOT / "integration_core").rglob("*") if p.is_file() and p.suffix in {".py", ".mako", ".md"}
            and "zoho" in p.read_text(errors="ignore").lower()]
    assert hits == []


def test_cli_refuses_secrets_as_arguments(tmp_path: Path) -> None:
    env = {"IC_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "IC_KEY_FILE": str(tmp_path / "k"), "PATH": "/usr/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "integration_core", "connections", "add", "--tenant", "t", "--environment", "e",
         "--provider", "ledger", "--name", "n", "--set", "account=a", "--set", "api_key=LEAKED"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "api_key is a secret" in result.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "integration_core", "connections", "add", "--tenant", "t", "--environment", "e",
         "--provider", "ledger", "--name", "n", "--set", "account=a", "--secrets-stdin"],
        input="the-api-key\nwebhooksecret1\n", capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "created connection" in ok.stdout
    shown = subprocess.run([sys.executable, "-m", "integration_core", "connections", "list", "--json"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout
    assert "the-api-key" not in shown and "webhooksecret1" not in shown
