"""``integration-core events unrouted list/show/replay/purge`` through the real CLI entry, with provider-level
deliveries posted over real HTTP to the dispatcher (the test provider ``relay``, ``tests/providers/relay.py``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner, Result

from integration_core.cli import main
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.server import running
from integration_core.store.schema import inbox_events, unrouted_events, utcnow
from tests.providers import relay

from .test_app_webhooks_routing import SIGNING_KEY, cli_env, relay_installed  # noqa: F401  (autouse fixture)
from .test_inbound_support import RecordingHost

CLI_HOST = RecordingHost()  # the host the CLI's own Hub loads (--host-app tests.test_unrouted_cli:CLI_HOST)
ADA = {"account": "acct-new", "id": "C1", "name": "Ada", "email": "ada@example.com"}
BOB = {"account": "acct-other", "id": "C2", "name": "Bob", "email": "bob@example.com"}


@pytest.fixture
def relay_hub(config: Config) -> Iterator[Hub]:
    hub = Hub(config)
    hub.apps.configure("relay", {"signing_key": SIGNING_KEY})
    yield hub
    hub.engine.dispose()


def post(url: str, *events: dict[str, str], extra: dict[str, str] | None = None) -> requests.Response:
    body = json.dumps({"events": list(events), "access_token": "leaked-token-value"}).encode()
    headers = {"Content-Type": "application/json", relay.SIGNATURE_HEADER: relay.sign(SIGNING_KEY, body),
               **(extra or {})}
    return requests.post(f"{url}/v1/webhooks/relay", data=body, headers=headers, timeout=10)


def cli(config: Config, *args: str) -> Result:
    return CliRunner().invoke(main, ["events", "unrouted", *args], env=cli_env(config))


def test_unrouted_list_show_replay_purge(relay_hub: Hub, config: Config) -> None:
    global CLI_HOST
    CLI_HOST = RecordingHost()
    with running(relay_hub, console=False) as srv:
        for _ in range(2):  # a redelivery counts itself on the same row
            answer = post(srv.url, ADA, extra={"Authorization": "Basic c2VjcmV0OnNlY3JldA=="})
            assert answer.status_code == 200 and answer.json()["unrouted"] == 1
        assert post(srv.url, BOB).json()["unrouted"] == 1

    out = cli(config, "list")
    assert out.exit_code == 0, out.output
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["ID", "PROVIDER", "ACCOUNT", "DELIV"] and len(lines) == 3
    assert lines[1].split()[1:4] == ["relay", "acct-other", "1"] and lines[2].split()[1:4] == ["relay", "acct-new", "2"]
    rows = json.loads(cli(config, "list", "--provider", "relay", "--account", "acct-new", "--json").stdout)
    assert [(r["account_key"], r["deliveries"], r["replayable"], r["replayed_at"]) for r in rows] == [
        ("acct-new", 2, True, None)]
    ada_id = rows[0]["id"]
    assert [r["account_key"] for r in json.loads(cli(config, "list", "--reason", "ACCT-OTHER", "--json").stdout)] \
        == ["acct-other"]
    tomorrow = (utcnow() + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    assert cli(config, "list", "--since", tomorrow).stdout.strip() == "no unrouted events"
    assert len(json.loads(cli(config, "list", "--since", "2020-01-01", "--json").stdout)) == 2

    shown = cli(config, "show", str(ada_id))
    assert shown.exit_code == 0, shown.output
    assert "leaked-token-value" not in shown.stdout and "c2VjcmV0" not in shown.stdout
    data = json.loads(shown.stdout)
    assert data["payload"]["events"] == [ADA] and data["payload"]["access_token"] == "[redacted]"
    assert "authorization" not in data["request"]["headers"] and data["request"]["method"] == "POST"
    assert [h["action"] for h in data["history"]] == ["ignored"]
    assert cli(config, "show", "999999").exit_code == 1

    # No connection for the account yet: a clear error, nothing stored.
    failed = cli(config, "replay", str(ada_id))
    assert failed.exit_code == 1 and "still no enabled relay connection for account acct-new" in failed.stderr
    conn = relay_hub.add_connection(tenant_id="acme", environment_id="prod", provider="relay", name="Relay acme",
                                    values={"account": "acct-new"})
    host_app = ["--host-app", "tests.test_unrouted_cli:CLI_HOST"]
    replayed = cli(config, "replay", str(ada_id), *host_app)
    assert replayed.exit_code == 0, replayed.output
    assert f"replayed to {conn.id}: 1 event(s), 1 applied" in replayed.stdout
    again = cli(config, "replay", str(ada_id), *host_app)  # the same dedupe keys: a harmless duplicate
    assert again.exit_code == 0 and "0 applied, 0 ignored, 0 failed, 1 duplicate(s)" in again.stdout
    assert [(c["tenant"], c["name"]) for c in CLI_HOST.customers.values()] == [("acme", "Ada")]
    with relay_hub.engine.connect() as db:
        inbox = db.execute(sa.select(inbox_events.c.connection_id, inbox_events.c.dedupe_key,
                                     inbox_events.c.deliveries)).fetchall()
    assert [tuple(r) for r in inbox] == [(conn.id, "customer:C1", 2)]
    assert [r["account_key"] for r in json.loads(cli(config, "list", "--pending", "--json").stdout)] == ["acct-other"]
    history = json.loads(cli(config, "show", str(ada_id)).stdout)["history"]
    assert [h["action"] for h in history] == ["ignored", "replayed", "replayed"]

    # Retention: only rows last delivered before the cutoff go.
    assert cli(config, "purge", "--older-than", "1").stdout.strip() == "purged 0 unrouted event(s)"
    with relay_hub.engine.begin() as db:
        db.execute(unrouted_events.update().where(unrouted_events.c.id == ada_id)
                   .values(last_delivery_at=utcnow() - dt.timedelta(days=3)))
    assert cli(config, "purge", "--older-than", "2").stdout.strip() == "purged 1 unrouted event(s)"
    assert [r["account_key"] for r in json.loads(cli(config, "list", "--json").stdout)] == ["acct-other"]
    assert cli(config, "purge").exit_code == 2  # --older-than is required


def test_rows_of_older_versions_are_not_replayable_until_redelivered(relay_hub: Hub, config: Config) -> None:
    body = json.dumps({"events": [ADA], "access_token": "leaked-token-value"}).encode()
    now = utcnow()
    with relay_hub.engine.begin() as db:  # as recorded before requests were kept
        legacy_id = db.execute(unrouted_events.insert().values(
            provider="relay", account_key="acct-new", dedupe_key=f"acct-new:{hashlib.sha256(body).hexdigest()}",
            reason="no enabled relay connection for account acct-new", deliveries=1, received_at=now,
            last_delivery_at=now)).inserted_primary_key[0]
    relay_hub.add_connection(tenant_id="acme", environment_id="prod", provider="relay", name="Relay acme",
                             values={"account": "acct-other"})
    assert "(not replayable)" in cli(config, "list").stdout
    refused = cli(config, "replay", str(legacy_id))
    assert refused.exit_code == 1 and "cannot be replayed" in refused.stderr
    with running(relay_hub, console=False) as srv:
        assert post(srv.url, ADA).json()["unrouted"] == 1  # the same body: the same row, now with its request
    (row,) = json.loads(cli(config, "list", "--json").stdout)
    assert row["id"] == legacy_id and row["deliveries"] == 2 and row["replayable"] is True
