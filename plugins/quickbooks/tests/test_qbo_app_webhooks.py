"""The core's provider-level webhook endpoint with QuickBooks, over real HTTP: ``POST /v1/webhooks/quickbooks``
for every company of the app, verified with the provider-level verifier token, routed by realm id, thin
notifications stored first and fetched later by the outbox (rate limit, retries), unknown companies
acknowledged and recorded as ignored, a missed webhook caught by scheduled reconciliation.

The connections here have no client id, client secret or verifier token of their own: they fall back to the
provider-level values set with ``hub.apps.configure`` (what ``providers configure quickbooks`` does).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
import requests
import sqlalchemy as sa
from click.testing import CliRunner
from qbo_helpers import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, VERIFIER_TOKEN, authorize
from quickbooks import webhooks

from integration_core.cli import main
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.models import Connection
from integration_core.outbox import Outbound, OutboundSettings
from integration_core.scheduler import Worker, drain_until_idle
from integration_core.server import RunningServer, running
from integration_core.store.schema import connections, inbox_events, outbox_tasks, provider_configs
from integration_core.unrouted import list_unrouted
from integration_core.vault import generate_key, read_key_file, write_key_file
from reference_host import ReferenceHost

FAST = OutboundSettings(backoff_base=0.001, backoff_cap=0.01, lease_seconds=5.0, park_seconds=0.2)


@pytest.fixture
def billing(tmp_path: Path) -> ReferenceHost:
    return ReferenceHost(tmp_path / "billing.sqlite3")


@pytest.fixture
def server(ic_hub: Hub, billing: ReferenceHost) -> Iterator[RunningServer]:
    ic_hub.plugins.set_host(billing)
    with running(ic_hub) as srv:
        yield srv


def app_connection(hub: Hub, emu: Any, tenant: str) -> tuple[Connection, str]:
    """A company and a connection to it that names only the emulator: the app's keys are provider-level."""
    emu.add_app(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    realm = emu.add_company()
    conn = hub.add_connection(tenant_id=tenant, environment_id="prod", provider="quickbooks",
                              name=f"QuickBooks {tenant}", values={"environment": emu.base_url})
    return authorize(hub, conn, emu, realm), realm


class App:
    """The Intuit app configured at provider level, two companies connected, invoices pushed in each."""

    def __init__(self, hub: Hub, emu: Any, billing: ReferenceHost, srv: RunningServer, fmt: str = "classic") -> None:
        self.hub, self.emu, self.billing = hub, emu, billing
        hub.apps.configure("quickbooks", {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                          "webhook_verifier_token": VERIFIER_TOKEN})
        self.url = f"{srv.url}/v1/webhooks/quickbooks"
        self.tenants: dict[str, tuple[Connection, str, list[Any], list[str]]] = {}
        for tenant in ("acme", "globex"):
            conn, realm = app_connection(hub, emu, tenant)
            customer = billing.add_customer(tenant, "prod", "Ada", f"ada@{tenant}.example")
            invoices = [billing.add_invoice(tenant, "prod", customer.id, [("Plan", a)]) for a in ("100.00", "50.00")]
            for inv in invoices:
                hub.submit_invoice(tenant, "prod", inv)
            self.tenants[tenant] = (conn, realm, invoices, [])
        drain_until_idle(hub, 30, settings=FAST)
        emu.configure_webhooks(CLIENT_ID, self.url, VERIFIER_TOKEN, fmt)
        assert all(d.status == 200 for d in emu.deliver_webhooks())  # our own creations: fetched, then ignored
        drain_until_idle(hub, 30, settings=FAST)
        for _, realm, invoices, remote in self.tenants.values():
            by_note = {r["PrivateNote"]: r["Id"] for r in emu.invoices(realm)}
            remote.extend(by_note[f"integration-core invoice {inv.id}"] for inv in invoices)

    def pay(self, tenant: str) -> dict[str, Any]:
        _, realm, _, remote = self.tenants[tenant]
        return self.emu.record_payment(realm, {remote[0]: "60.00", remote[1]: "50.00"})

    def expected(self, tenant: str) -> list[tuple[str, Decimal]]:
        invoices = self.tenants[tenant][2]
        return sorted([(invoices[0].id, Decimal("60")), (invoices[1].id, Decimal("50"))])


def paid(billing: ReferenceHost) -> list[tuple[str, Decimal]]:
    return sorted((p["invoice_id"], Decimal(p["amount"])) for p in billing.payments())


def rows(hub: Hub, table: sa.Table) -> list[Any]:
    with hub.engine.connect() as db:
        return list(db.execute(sa.select(table).order_by(table.c.id)))


def payment_body(realm: str, payment_id: str) -> bytes:
    return json.dumps({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": [
        {"name": "Payment", "id": payment_id, "operation": "Create", "lastUpdated": "2026-01-01T00:00:00Z"}]}}]}
    ).encode()


@pytest.mark.parametrize("fmt", ["classic", "cloudevents"])
def test_one_app_url_routes_each_company_to_its_connection_stored_first_fetched_later(ic_hub, qbo_emulator, billing,
                                                                                       server, fmt) -> None:
    app = App(ic_hub, qbo_emulator, billing, server, fmt)
    acme = app.tenants["acme"][0]
    with ic_hub.engine.connect() as db:
        keys = dict(db.execute(sa.select(connections.c.tenant_id, connections.c.account_key)).all())
    assert keys == {"acme": app.tenants["acme"][1], "globex": app.tenants["globex"][1]}
    app.pay("acme")
    deliveries = qbo_emulator.deliver_webhooks()
    assert [d.status for d in deliveries] == [200]
    # answered before anything was fetched: the notice is stored, the fetch queued in the outbox
    assert billing.payments() == []
    notices = [r for r in rows(ic_hub, inbox_events) if r.kind == "notice" and "payment" in r.dedupe_key]
    assert len(notices) == 1 and notices[0].connection_id == acme.id
    fetches = [t for t in rows(ic_hub, outbox_tasks) if t.entity_type == "fetch" and t.status == "pending"]
    assert fetches and {t.connection_id for t in fetches} == {acme.id}
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert paid(billing) == app.expected("acme")
    # at-least-once delivery: the same notification twice more changes nothing
    for _ in range(2):
        assert qbo_emulator.webhooks.post(app.url, deliveries[0].body, VERIFIER_TOKEN).status == 200
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert paid(billing) == app.expected("acme")
    assert billing.invoice(app.tenants["acme"][2][0].id)["status"] == "partially_paid"


def test_tampered_body_wrong_token_and_unsigned_are_refused_and_store_nothing(ic_hub, qbo_emulator, billing,
                                                                               server) -> None:
    app = App(ic_hub, qbo_emulator, billing, server)
    realm = app.tenants["globex"][1]
    payment = app.pay("globex")
    body = payment_body(realm, payment["Id"])
    signature = webhooks.signature(VERIFIER_TOKEN, body)
    before = (len(rows(ic_hub, inbox_events)), len(rows(ic_hub, outbox_tasks)))
    tampered = body.replace(payment["Id"].encode(), b"999")
    assert qbo_emulator.webhooks.post(app.url, tampered, VERIFIER_TOKEN, signature=signature).status == 401
    assert qbo_emulator.webhooks.post(app.url, body, "another-apps-token").status == 401
    unsigned = requests.post(app.url, data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert unsigned.status_code == 401
    assert (len(rows(ic_hub, inbox_events)), len(rows(ic_hub, outbox_tasks))) == before
    assert list_unrouted(ic_hub) == []
    assert requests.get(app.url, timeout=5).status_code == 405
    assert requests.post(f"{server.url}/v1/webhooks/ledger", data=body, timeout=5).status_code == 404
    answer = qbo_emulator.webhooks.post(app.url, body, VERIFIER_TOKEN)
    assert answer.status == 200
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert paid(billing) == app.expected("globex")


def test_an_unknown_company_is_acknowledged_and_recorded_as_ignored(ic_hub, qbo_emulator, billing, server) -> None:
    app = App(ic_hub, qbo_emulator, billing, server)
    body = json.dumps([{"specversion": "1.0", "id": "evt-1", "source": "intuit.x", "type": "qbo.payment.created.v1",
                        "time": "2026-01-01T00:00:00Z", "intuitentityid": "7", "intuitaccountid": "123456789",
                        "data": {}}]).encode()
    before = len(rows(ic_hub, inbox_events))
    for _ in range(2):
        answer = requests.post(app.url, data=body, timeout=5, headers={
            "Content-Type": "application/cloudevents-batch+json",
            "intuit-signature": webhooks.signature(VERIFIER_TOKEN, body)})
        assert answer.status_code == 200 and answer.json()["unrouted"] == 1 and answer.json()["events"] == 0
    unrouted = list_unrouted(ic_hub, provider="quickbooks")
    assert len(unrouted) == 1 and unrouted[0]["account_key"] == "123456789"
    assert "123456789" in unrouted[0]["reason"] and unrouted[0]["deliveries"] == 2
    assert len(rows(ic_hub, inbox_events)) == before
    # a disabled connection's company counts as unknown too
    ic_hub.disable(app.tenants["acme"][0].id)
    payment = app.pay("acme")
    assert qbo_emulator.webhooks.post(app.url, payment_body(app.tenants["acme"][1], payment["Id"]),
                                      VERIFIER_TOKEN).status == 200
    assert {u["account_key"] for u in list_unrouted(ic_hub)} == {"123456789", app.tenants["acme"][1]}


def test_a_failing_fetch_loses_nothing_and_is_retried_by_the_outbox(ic_hub, qbo_emulator, billing, server) -> None:
    app = App(ic_hub, qbo_emulator, billing, server)
    app.pay("acme")
    realm = app.tenants["acme"][1]
    qbo_emulator.fail_next(count=2, status=503, method="GET", path_prefix=f"/v3/company/{realm}/payment")
    assert [d.status for d in qbo_emulator.deliver_webhooks()] == [200]  # QuickBooks' failure never reaches here
    outbound = Outbound(ic_hub, settings=FAST)
    outbound.tick()
    fetch = [t for t in rows(ic_hub, outbox_tasks) if t.entity_type == "fetch" and "payment" in t.local_id]
    assert len(fetch) == 1 and fetch[0].status == "pending" and fetch[0].attempts == 1
    assert fetch[0].last_error
    assert billing.payments() == []
    drain_until_idle(ic_hub, 30, settings=FAST)
    fetch = [t for t in rows(ic_hub, outbox_tasks) if t.entity_type == "fetch" and "payment" in t.local_id]
    assert fetch[0].status == "done" and fetch[0].attempts == 3
    assert paid(billing) == app.expected("acme")


def test_cli_configures_provider_level_secrets_encrypted_and_rotated_with_the_keys(config: Config) -> None:
    env = {"IC_DATABASE_URL": config.database_url, "IC_KEY_FILE": config.key_file}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    refused = runner.invoke(main, ["providers", "configure", "quickbooks", "--set", "client_secret=x"], env=env)
    assert refused.exit_code != 0 and "secret" in refused.output
    unknown = runner.invoke(main, ["providers", "configure", "quickbooks", "--set", "nope=1", "--secrets-stdin"],
                            input="a\nb\n", env=env)
    assert unknown.exit_code != 0 and "nope" in unknown.output
    done = runner.invoke(main, ["providers", "configure", "quickbooks", "--set", f"client_id={CLIENT_ID}",
                                "--secrets-stdin"], input=f"{CLIENT_SECRET}\n{VERIFIER_TOKEN}\n", env=env)
    assert done.exit_code == 0, done.output
    shown = runner.invoke(main, ["providers", "show", "quickbooks"], env=env)
    assert json.loads(shown.output) == {"provider": "quickbooks", "settings": {"client_id": CLIENT_ID},
                                        "secrets": ["client_secret", "webhook_verifier_token"]}
    assert VERIFIER_TOKEN not in shown.output + done.output
    hub = Hub(config)
    with hub.engine.connect() as db:
        stored = db.execute(sa.select(provider_configs.c.secrets)).scalar_one()
    assert VERIFIER_TOKEN not in stored and CLIENT_SECRET not in stored
    assert hub.apps.context("quickbooks").secrets["webhook_verifier_token"] == VERIFIER_TOKEN
    old_keys = read_key_file(config.key_file)
    write_key_file(config.key_file, [generate_key(), *old_keys])
    rotated = Hub(config)
    assert not rotated.secrets_readable_by_primary_key()
    assert rotated.rotate_secrets() == 1
    write_key_file(config.key_file, read_key_file(config.key_file)[:1])  # the old key dropped
    assert Hub(config).apps.context("quickbooks").secrets["client_secret"] == CLIENT_SECRET


def test_a_missed_webhook_is_caught_by_scheduled_reconciliation_and_repeats_are_harmless(ic_hub, qbo_emulator,
                                                                                         billing, server) -> None:
    app = App(ic_hub, qbo_emulator, billing, server)
    acme = app.tenants["acme"][0]
    app.pay("acme")
    held = list(qbo_emulator.webhooks.apps[CLIENT_ID].pending)
    assert held
    qbo_emulator.webhooks.drop_pending(CLIENT_ID)  # Intuit never delivers these
    ic_hub.config = attrs.evolve(ic_hub.config, reconcile_interval=600.0)
    worker = Worker(ic_hub, interval=0.2, settings=FAST).start()
    try:
        deadline = time.monotonic() + 30
        while paid(billing) != app.expected("acme") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    assert paid(billing) == app.expected("acme")
    with ic_hub.engine.connect() as db:
        cursor = db.execute(sa.select(connections.c.reconcile_cursor).where(connections.c.id == acme.id)).scalar()
    assert cursor
    # run again by hand (the CLI): the same changes again, stored as duplicates, recorded once
    env = {"IC_DATABASE_URL": ic_hub.config.database_url, "IC_KEY_FILE": ic_hub.config.key_file}
    again = CliRunner().invoke(main, ["connections", "reconcile", acme.id], env=env)
    assert again.exit_code == 0, again.output
    assert paid(billing) == app.expected("acme")
    # the late webhook carries the same dedupe keys: fetched, and nothing is counted twice
    qbo_emulator.webhooks.apps[CLIENT_ID].pending.extend(held)
    assert {d.status for d in qbo_emulator.deliver_webhooks()} == {200}
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert paid(billing) == app.expected("acme")
    # a connection of a provider without changes_since is refused with a clear error
    other = ic_hub.add_connection(tenant_id="acme", environment_id="prod", provider="ledger", name="L",
                                  values={"account": "a", "api_key": "k", "webhook_secret": "whsec-long-enough"})
    refused = CliRunner().invoke(main, ["connections", "reconcile", other.id], env=env)
    assert refused.exit_code != 0 and "changes_since" in refused.output
