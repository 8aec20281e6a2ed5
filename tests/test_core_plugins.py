"""Plugin discovery and routing: a call for a connection reaches exactly that connection's provider."""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from integration_core.errors import ConfigurationError, UnknownProviderError
from integration_core.hookspecs import HOST_HOOKS, PROVIDER_HOOKS, hookimpl
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
    def upsert_contact(self, ctx, customer):  # type: ignore[no-untyped-def]
        self.calls.append(customer.id)
        return f"{self.name}-{customer.id}"


def test_a_call_reaches_only_the_named_provider() -> None:
    plugins = Plugins(load_entry_points=False)
    first, second = Recorder("first"), Recorder("second")
    plugins.add_provider("first", first)
    plugins.add_provider("second", second)
    customer = Customer(id="c1", name="Ada")
    assert plugins.provider("second").upsert_contact(ctx=None, customer=customer, currency="USD") == "second-c1"
    assert first.calls == [] and second.calls == ["c1"]
    assert plugins.provider("first").provider_info().name == "first"


class HostLike(Recorder):
    """A provider that happens to implement a host hook too: it must never be called as the host."""

    @hookimpl
    def record_payment(self, tenant_id, environment_id, invoice_id, amount, currency, paid_on, payment_key):  # type: ignore[no-untyped-def]
        self.calls.append(f"host:{invoice_id}")
        return "provider-answered"


class Host:
    def __init__(self) -> None:
        self.paid: list[str] = []

    @hookimpl
    def record_payment(self, tenant_id, environment_id, invoice_id, amount, currency, paid_on, payment_key):  # type: ignore[no-untyped-def]
        self.paid.append(invoice_id)
        return "host-answered"


@pytest.mark.parametrize("order", list(itertools.permutations("abc")))
@pytest.mark.parametrize("call_between", [False, True])
def test_every_registration_order_routes_each_call_to_its_own_provider(
    order: tuple[str, ...], call_between: bool
) -> None:
    """Register a, b and c in every order, with calls before and after each registration: each call
    reaches exactly its provider (the first round's exclusion lists answered with a later provider)."""
    plugins = Plugins(load_entry_points=False)
    recorders: dict[str, Recorder] = {}
    customer = Customer(id="c1", name="Ada")
    for name in order:
        recorders[name] = Recorder(name)
        plugins.add_provider(name, recorders[name])
        if call_between:
            for known in recorders:
                assert plugins.provider(known).provider_info().name == known
                contact = plugins.provider(known).upsert_contact(ctx=None, customer=customer, currency="USD")
                assert contact == f"{known}-c1"
    for name in "abc":
        before = {n: list(r.calls) for n, r in recorders.items()}
        assert plugins.provider(name).provider_info().name == name
        assert plugins.provider(name).upsert_contact(ctx=None, customer=customer, currency="USD") == f"{name}-c1"
        after = {n: list(r.calls) for n, r in recorders.items()}
        assert {n for n in after if after[n] != before[n]} == {name}


def test_a_single_provider_does_not_answer_for_a_later_one() -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.add_provider("a", Recorder("a"))
    assert plugins.provider("a").provider_info().name == "a"
    plugins.add_provider("c", Recorder("c"))
    assert plugins.provider("a").provider_info().name == "a"
    assert plugins.provider("c").provider_info().name == "c"


def test_a_provider_implementing_a_host_hook_is_never_the_host() -> None:
    plugins = Plugins(load_entry_points=False)
    sneaky = HostLike("sneaky")
    plugins.add_provider("sneaky", sneaky)
    kwargs = dict(tenant_id="t", environment_id="e", invoice_id="inv-1", amount=Decimal("1"), currency="USD",
                  paid_on=dt.date(2026, 1, 1), payment_key="k")
    assert plugins.host.record_payment(**kwargs) is None  # no host yet: nobody answers
    assert not plugins.has_host_hook("record_payment")
    host = Host()
    plugins.set_host(host)
    assert plugins.host.record_payment(**kwargs) == "host-answered"
    assert host.paid == ["inv-1"] and sneaky.calls == []
    plugins.add_provider("later", HostLike("later"))
    assert plugins.host.record_payment(**kwargs) == "host-answered"
    assert sneaky.calls == []


def test_provider_hooks_are_derived_from_the_specs() -> None:
    assert "push_invoice" in PROVIDER_HOOKS and "record_payment" not in PROVIDER_HOOKS
    assert "record_payment" in HOST_HOOKS and "register_commands" not in PROVIDER_HOOKS
    with pytest.raises(AttributeError, match="not a provider hook"):
        plugins = Plugins(load_entry_points=False)
        plugins.add_provider("a", Recorder("a"))
        plugins.provider("a").record_payment  # noqa: B018


def test_a_provider_name_is_registered_once() -> None:
    plugins = Plugins(load_entry_points=False)
    plugins.add_provider("a", Recorder("a"))
    with pytest.raises(ConfigurationError, match="already registered"):
        plugins.add_provider("a", Recorder("a2"))


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
    # only `db upgrade` creates a database
    subprocess.run([sys.executable, "-m", "integration_core", "db", "upgrade"], env=env, cwd=tmp_path, check=True,
                   capture_output=True)
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
