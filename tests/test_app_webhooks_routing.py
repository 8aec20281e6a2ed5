"""Provider-level routing of connections stored without an account key (as every connection created before
migration 0008 is): their webhooks are routed, not recorded as unrouted, over real HTTP to the dispatcher.

The key is computed through the provider's ``account_key`` hook (it needs the connection's settings, so the
migration cannot): when a Hub starts, and, for a process that did not (an embedder upgrading the schema
itself, a connection written by a process of an older version), by routing before it records an account as
unrouted. The test provider ``relay`` (``tests/providers/relay.py``) posts every account's events to one URL.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner

from integration_core.cli import main
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.plugins import EXTRA_PROVIDERS_ENV
from integration_core.server import running
from integration_core.store import create_engine_for, upgrade
from integration_core.store.schema import audit_log, connections, inbox_events, utcnow
from integration_core.unrouted import list_unrouted
from tests.providers import relay

from .test_inbound_support import RecordingHost

SIGNING_KEY = "relay-app-signing-key-1"


@pytest.fixture(autouse=True)
def relay_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """``relay`` installed for the Hubs built here and the CLI's (``IC_PROVIDERS``)."""
    current = os.environ.get(EXTRA_PROVIDERS_ENV, "")
    monkeypatch.setenv(EXTRA_PROVIDERS_ENV, ",".join(filter(None, [current, "relay=tests.providers.relay"])))


def cli_env(config: Config) -> dict[str, str]:
    return {"IC_DATABASE_URL": config.database_url, "IC_KEY_FILE": config.key_file}


def legacy_database(config: Config, *accounts: str | None) -> list[str]:
    """A database created at revision 0007 (no account keys yet) with one relay connection per account, then
    upgraded to the head as a deployment does: the connections' ids."""
    engine = create_engine_for(config.database_url)
    try:
        upgrade(engine, "0007")
        ids = []
        with engine.begin() as db:
            for n, account in enumerate(accounts):
                ids.append(str(uuid.uuid4()))
                now = utcnow()
                db.execute(connections.insert().values(
                    id=ids[-1], tenant_id=f"tenant{n}", environment_id="prod", provider="relay", name=f"Relay {n}",
                    settings={"account": account} if account else {}, status="active", created_at=now,
                    updated_at=now,
                ))
        upgrade(engine)
        with engine.connect() as db:
            assert db.execute(sa.select(sa.func.count()).where(connections.c.account_key.is_not(None))).scalar() == 0
    finally:
        engine.dispose()
    return ids


def account_keys(hub: Hub) -> dict[str, str | None]:
    with hub.engine.connect() as db:
        return {r.id: r.account_key for r in db.execute(sa.select(connections.c.id, connections.c.account_key))}


@pytest.fixture
def host() -> RecordingHost:
    return RecordingHost()


def started_hub(config: Config, host: RecordingHost, **kwargs: bool) -> Hub:
    hub = Hub(config, **kwargs)
    hub.plugins.set_host(host)
    hub.apps.configure("relay", {"signing_key": SIGNING_KEY})
    return hub


@pytest.fixture
def legacy(config: Config) -> list[str]:
    return legacy_database(config, "acct-1", "acct-2", None)


@pytest.fixture
def lazy_hub(config: Config, host: RecordingHost, legacy: list[str]) -> Iterator[Hub]:
    """A Hub that did not touch the schema at start (``auto_upgrade=False``), so it backfilled nothing."""
    hub = started_hub(config, host, auto_upgrade=False)
    yield hub
    hub.engine.dispose()


def post(url: str, *events: dict[str, str]) -> requests.Response:
    body, headers = relay.delivery(SIGNING_KEY, *events)
    return requests.post(f"{url}/v1/webhooks/relay", data=body, headers=headers, timeout=10)


def test_routing_backfills_a_connection_without_account_key(lazy_hub: Hub, host: RecordingHost,
                                                             legacy: list[str]) -> None:
    assert set(account_keys(lazy_hub).values()) == {None}
    with running(lazy_hub, console=False) as srv:
        answer = post(srv.url, {"account": "acct-1", "id": "C1", "name": "Ada", "email": "ada@example.com"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["applied"] == 1 and answer.json()["unrouted"] == 0
        # Every connection of the provider whose settings name its account got its key, under the row lock.
        assert account_keys(lazy_hub) == {legacy[0]: "acct-1", legacy[1]: "acct-2", legacy[2]: None}
        # The second account's delivery is routed at once; a redelivery of the first is a duplicate.
        answer = post(srv.url, {"account": "acct-2", "id": "C2", "name": "Bob", "email": "bob@example.com"})
        assert answer.json()["applied"] == 1 and answer.json()["unrouted"] == 0
        answer = post(srv.url, {"account": "acct-1", "id": "C1", "name": "Ada", "email": "ada@example.com"})
        assert answer.json()["duplicates"] == 1
        # An account no connection has is still recorded as unrouted (the keyless connection is not it).
        answer = post(srv.url, {"account": "acct-9", "id": "C9", "name": "Eve", "email": "eve@example.com"})
        assert answer.status_code == 200 and answer.json()["unrouted"] == 1 and answer.json()["events"] == 0
    assert sorted((c["tenant"], c["name"]) for c in host.customers.values()) == [("tenant0", "Ada"),
                                                                                 ("tenant1", "Bob")]
    assert [u["account_key"] for u in list_unrouted(lazy_hub, provider="relay")] == ["acct-9"]
    with lazy_hub.engine.connect() as db:
        routed = db.execute(sa.select(inbox_events.c.connection_id, inbox_events.c.dedupe_key)
                            .order_by(inbox_events.c.id)).fetchall()
        actions = db.execute(sa.select(audit_log.c.subject_id).where(audit_log.c.action == "account_key")).scalars()
        assert sorted(actions) == sorted(legacy[:2])
    assert [tuple(r) for r in routed] == [(legacy[0], "customer:C1"), (legacy[1], "customer:C2")]


def test_a_starting_hub_backfills_and_the_cli_reports(config: Config, host: RecordingHost, legacy: list[str]) -> None:
    hub = started_hub(config, host)
    try:
        assert account_keys(hub) == {legacy[0]: "acct-1", legacy[1]: "acct-2", legacy[2]: None}
        assert hub.apps.keys_backfilled == 2
        with running(hub, console=False) as srv:
            answer = post(srv.url, {"account": "acct-2", "id": "C2", "name": "Bob", "email": None})
        assert answer.status_code == 200 and answer.json()["applied"] == 1 and answer.json()["unrouted"] == 0
        # A connection written without its key later (a process of an older version) is set by the command.
        with hub.engine.begin() as db:
            db.execute(connections.update().where(connections.c.id == legacy[0]).values(account_key=None))
    finally:
        hub.engine.dispose()
    out = CliRunner().invoke(main, ["connections", "account-keys", "--provider", "relay"], env=cli_env(config))
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert lines[0] == "account keys set: 1"
    assert lines[1:] == [f"no account key yet: {legacy[2]}\trelay\ttenant2/prod\tactive"]
    out = CliRunner().invoke(main, ["connections", "account-keys", "--provider", "nosuch"], env=cli_env(config))
    assert out.exit_code == 1 and "nosuch" in out.output


def test_processes_backfilling_at_once_set_each_key_once(config: Config, legacy: list[str]) -> None:
    """Four Hubs (engines of their own, as processes have) backfill together: every key is written once."""
    hubs = [Hub(config, auto_upgrade=False) for _ in range(4)]
    counts: list[int] = []
    errors: list[BaseException] = []

    def run(hub: Hub) -> None:
        try:
            counts.append(hub.apps.backfill_account_keys())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(h,)) for h in hubs]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for h in hubs:
            h.engine.dispose()
    assert errors == [] and len(counts) == 4 and sum(counts) == 2
    hub = Hub(config, auto_upgrade=False)
    try:
        assert account_keys(hub) == {legacy[0]: "acct-1", legacy[1]: "acct-2", legacy[2]: None}
        with hub.engine.connect() as db:
            written = db.execute(sa.select(sa.func.count()).where(audit_log.c.action == "account_key")).scalar()
        assert written == 2
    finally:
        hub.engine.dispose()
