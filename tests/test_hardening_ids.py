"""One rule for tenant and environment ids, applied by the CLI, the Hub and the dispatcher (issue 12, bug 4)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from integration_core.cli import main
from integration_core.config import Config
from integration_core.errors import ConfigurationError
from integration_core.hub import Hub
from integration_core.server import running
from integration_core.validation import segment_error
from integration_core.webhooks import webhook_url
from tests.workers.helpers import ledger_values

BAD = ["acme\nprod", "a" * 201, "acme\u202eevil", "tenant one", "..", "acme/x", "", "caf\u00e9"]
GOOD = ["acme", "tenant-b", "t_1.prod", "org:42", "a" * 200]


@pytest.mark.parametrize("tenant", BAD)
def test_the_hub_refuses_ids_the_dispatcher_cannot_route(hub: Hub, tenant: str) -> None:
    with pytest.raises(ConfigurationError, match="tenant_id"):
        hub.add_connection(tenant_id=tenant, environment_id="prod", provider="ledger", name="x",
                           values=ledger_values("a"))
    with pytest.raises(ConfigurationError, match="environment_id"):
        hub.add_connection(tenant_id="acme", environment_id=tenant, provider="ledger", name="x",
                           values=ledger_values("a"))


def test_the_cli_refuses_them_in_one_line(config: Config) -> None:
    env = {"IC_DATABASE_URL": config.database_url, "IC_KEY_FILE": config.key_file, "IC_SECRET_API_KEY": "k",
           "IC_SECRET_WEBHOOK_SECRET": "whsecabcdefxyz"}
    args = ["connections", "add", "--tenant", "acme\u202eevil", "--environment", "prod", "--provider", "ledger",
            "--name", "x", "--set", "account=a"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code != 0
    assert "tenant" in result.output and "Traceback" not in result.output


def test_every_id_the_hub_accepts_is_routed_by_the_dispatcher(config: Config) -> None:
    import requests

    hub = Hub(config)
    for n, tenant in enumerate(GOOD):
        assert segment_error(tenant) is None
        conn = hub.add_connection(tenant_id=tenant, environment_id=f"env{n}", provider="ledger", name="x",
                                  values=ledger_values(f"acct{n}"))
        with running(hub) as srv:
            url = webhook_url(srv.url, "ledger", conn.tenant_id, conn.environment_id)
            r = requests.post(url, data=b"{}", timeout=10)
        assert r.status_code == 401, (tenant, r.status_code)  # found, then the unsigned body is refused
    hub.engine.dispose()
