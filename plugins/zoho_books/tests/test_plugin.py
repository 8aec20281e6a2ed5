"""Provider info, settings validation, regions, rate limit and CLI registration (no server needed)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from zoho_books import plugin, regions
from zoho_books.config import validate_settings

from integration_core.context import ProviderContext, Secrets
from integration_core.errors import ConfigurationError
from integration_core.models import Connection, RateLimit
from integration_core.plugins import Plugins

BASE = {"client_id": "1000.ABC", "organization_id": "12345", "accounts_server": "eu"}


def ctx(**settings) -> ProviderContext:
    return ProviderContext(Connection(id="c1", tenant_id="t", environment_id="e", provider="zoho_books", name="z",
                                      settings=settings), Secrets({}))


def test_entry_point_and_info() -> None:
    plugins = Plugins()
    assert "zoho_books" in plugins.provider_names()
    info = plugins.provider("zoho_books").provider_info()
    assert info.name == "zoho_books" and info.title == "Zoho Books" and info.version == "0.1.0" and info.oauth
    fields = {f.name: f for f in info.fields}
    required = {name for name, f in fields.items() if f.required}
    assert required == {"client_id", "client_secret", "organization_id", "accounts_server", "webhook_secret"}
    assert {"use_local_invoice_numbers", "rate_limit_per_minute", "read_timeout", "api_domain"} <= set(fields)
    assert fields["client_secret"].secret and fields["webhook_secret"].secret and not fields["client_id"].secret
    assert "eu" in fields["accounts_server"].help and not fields["accounts_server"].choices


def test_rate_limit_default_and_override() -> None:
    declared = {"costs": plugin.CALL_COSTS, "metered": True}
    assert plugin.rate_limit(ctx(**BASE)) == RateLimit(100, 60, 10, **declared)
    assert plugin.rate_limit(ctx(**BASE, rate_limit_per_minute="50", rate_limit_concurrency=5)) == RateLimit(
        50, 60, 5, **declared
    )
    assert plugin.CALL_COSTS == {"find_invoice": 1, "upsert_contact": 2, "push_invoice": 1, "changes_since": 2}


@pytest.mark.parametrize(("value", "accounts", "api"), [
    ("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    ("CA", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    ("https://accounts.zohocloud.ca/", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    ("https://ACCOUNTS.zoho.com.au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    ("http://127.0.0.1:8999", "http://127.0.0.1:8999", "http://127.0.0.1:8999"),
])
def test_regions(value, accounts, api) -> None:
    cfg = validate_settings({**BASE, "accounts_server": value})
    assert (cfg.accounts_server, cfg.api_domain) == (accounts, api)


@pytest.mark.parametrize("value", ["mars", "https://evil.example.com", "ftp://accounts.zoho.com",
                                   "https://accounts.zoho.com/oauth"])
def test_bad_region(value) -> None:
    with pytest.raises(ConfigurationError, match="accounts_server"):
        validate_settings({**BASE, "accounts_server": value})


def test_settings_messages() -> None:
    with pytest.raises(ConfigurationError) as info:
        validate_settings({"accounts_server": "us"}, {"webhook_secret": "short"})
    text = str(info.value)
    assert "client_id is required" in text and "organization_id is required" in text
    assert "client_secret is required" in text and "12-50 characters" in text
    with pytest.raises(ConfigurationError, match="digits only"):
        validate_settings({**BASE, "organization_id": "abc"})
    with pytest.raises(ConfigurationError, match="read_timeout"):
        validate_settings({**BASE, "read_timeout": "soon"})
    cfg = validate_settings({**BASE, "use_local_invoice_numbers": "false"},
                            {"client_secret": "s", "webhook_secret": "abcdefghijkl1234"})
    assert cfg.use_local_invoice_numbers is False


def test_validate_settings_hook_normalizes() -> None:
    values = {**BASE, "accounts_server": "CA", "client_secret": " keep ", "webhook_secret": "abcdefghijkl1234"}
    out = Plugins().provider("zoho_books").validate_settings(values=values)
    assert out["accounts_server"] == "https://accounts.zohocloud.ca" and out["client_secret"] == " keep "
    with pytest.raises(ConfigurationError, match="12-50"):
        plugin.validate_settings({**values, "webhook_secret": "short"})


def test_api_domain_must_be_zoho() -> None:
    assert regions.validate_api_domain("https://www.zohoapis.ca/") == "https://www.zohoapis.ca"
    with pytest.raises(ConfigurationError):
        regions.validate_api_domain("https://attacker.example")
    with pytest.raises(ConfigurationError):
        validate_settings({**BASE, "api_domain": "https://attacker.example"})


def test_authorization_url() -> None:
    c = ctx(**BASE)
    c.secrets.update(client_secret="s")
    url = plugin.authorization_url(c, "https://app.test/cb", "st4te")
    assert url.startswith("https://accounts.zoho.eu/oauth/v2/auth?")
    for part in ("client_id=1000.ABC", "response_type=code", "access_type=offline", "prompt=consent",
                 "state=st4te", "redirect_uri=https%3A%2F%2Fapp.test%2Fcb",
                 "scope=ZohoBooks.contacts.ALL%2CZohoBooks.invoices.ALL%2CZohoBooks.customerpayments.ALL"
                 "%2CZohoBooks.settings.READ%2CZohoBooks.settings.CREATE"):
        assert part in url


def test_commands_registered() -> None:
    @click.group()
    def cli() -> None:
        pass

    Plugins().register_commands(cli)
    runner = CliRunner()
    result = runner.invoke(cli, ["zoho-books", "regions"])
    assert result.exit_code == 0, result.output
    assert "https://accounts.zohocloud.ca" in result.output and "https://www.zohoapis.ca" in result.output
    result = runner.invoke(cli, ["zoho-books", "--help"])
    assert "emulator" in result.output and "regions" in result.output
