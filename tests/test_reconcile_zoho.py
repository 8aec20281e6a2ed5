"""Zoho Books reconciliation end to end, over real HTTP: webhooks the emulator never delivered (a payment, a
void, a new customer) are caught by ``integration-core connections reconcile`` and by the Worker's scheduled
reconciliation, reach the reference host once, and the late webhooks are harmless duplicates."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from integration_core.cli import main
from integration_core.errors import TransientError
from integration_core.hub import Hub
from integration_core.ratelimit import granted_in
from integration_core.reconcile import reconcile
from integration_core.scheduler import Worker
from integration_core.server import running
from integration_core.store.schema import connections
from reference_host import ReferenceHost
from tests.workers.helpers import FAST
from tests.workers.zoho import zoho_connection

from .test_payments_inbound_zoho import World as WebhookWorld

pytest.importorskip("zoho_books")


class World(WebhookWorld):
    """The webhook test's world, plus what reconciliation is judged by."""

    def deliver(self, module: str, record: dict[str, Any]) -> dict[str, Any]:
        """The webhook Zoho would have sent, delivered late."""
        answer = self.post(module, record)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def requests_made(self) -> int:
        return sum(self.emulator.request_counts(self.org).values())

    def cursor(self) -> str | None:
        with self.hub.engine.connect() as db:
            return db.execute(sa.select(connections.c.reconcile_cursor)
                              .where(connections.c.id == self.conn.id)).scalar()


@pytest.fixture
def world(hub: Hub, zoho_emulator_factory: Any, tmp_path: Path) -> Iterator[World]:
    # The organization writes its times at UTC-8, as Zoho's examples do; no webhook subscription: every
    # change below is a webhook Zoho did not deliver.
    emulator = zoho_emulator_factory(retry_after=0, org_defaults={"time_offset": "-0800"})
    host = ReferenceHost(tmp_path / "billing.sqlite3")
    hub.plugins.set_host(host)
    conn, org = zoho_connection(hub, emulator)
    with running(hub, console=False) as srv:
        yield World(hub, emulator, host, conn, org, srv)


def test_missed_webhooks_are_caught_by_connections_reconcile_and_the_late_ones_are_duplicates(world: World) -> None:
    paid, paid_remote = world.invoice("100.00")
    voided, voided_remote = world.invoice("20.00")
    env = {"IC_DATABASE_URL": world.hub.config.database_url, "IC_KEY_FILE": world.hub.config.key_file,
           "IC_HOST": "reference_host:from_env", "REFERENCE_HOST_DB": str(world.host.path)}
    first = CliRunner().invoke(main, ["connections", "reconcile", world.conn.id], env=env)
    assert first.exit_code == 0, first.output
    assert world.host.payments() == []
    # In Zoho: a partial payment, a void and a new customer; none of their webhooks arrives.
    made, _ = world.emulator.record_payment(world.org, paid_remote, amount="30.00", date="2026-03-02")
    world.emulator.void_invoice(world.org, voided_remote)
    grace, _ = world.emulator.create_contact(world.org, "Grace Hopper", email="grace@example.com")
    assert world.host.payments() == [] and world.host.invoice(voided.id)["status"] != "void"

    result = CliRunner().invoke(main, ["connections", "reconcile", world.conn.id], env=env)
    assert result.exit_code == 0, result.output
    [payment] = world.host.payments(paid.id)
    assert Decimal(payment["amount"]) == Decimal("30.00") and payment["paid_on"] == "2026-03-02"
    assert world.host.invoice(paid.id)["status"] == "partially_paid"
    assert world.host.invoice(voided.id)["status"] == "void"
    assert [c["email"] for c in world.host.customers("t1") if c["name"] == "Grace Hopper"] == ["grace@example.com"]

    # Zoho delivers the webhooks after all: every one is a duplicate, nothing is recorded twice.
    late = [world.deliver("invoice", world.emulator.invoice_webhook(world.org, paid_remote)),
            world.deliver("payment", dict(made, organization_id=world.org)),
            world.deliver("invoice", world.emulator.invoice_webhook(world.org, voided_remote)),
            world.deliver("contact", world.emulator.contact_webhook(world.org, grace["contact_id"]))]
    assert [(a["duplicates"], a["applied"]) for a in late] == [(1, 0)] * 4
    assert len(world.host.payments(paid.id)) == 1
    assert len([c for c in world.host.customers("t1") if c["name"] == "Grace Hopper"]) == 1

    # Nothing changed since: the cursor moves on, nothing is applied, two list requests are made, and
    # both were counted in the connection's shared rate window (the plugin's client reports each one).
    cursor, before, granted = world.cursor(), world.requests_made(), granted_in(world.hub.engine, world.conn.id)
    quiet = reconcile(world.hub, world.conn.id)
    assert quiet.events == 0 and quiet.counts["applied"] == 0
    assert world.requests_made() - before == 2
    assert granted_in(world.hub.engine, world.conn.id) - granted == 2
    assert world.emulator.request_counts(world.org)["GET /invoices/{invoice_id}/payments"] == 1
    assert quiet.cursor and json.loads(quiet.cursor)["invoices"].endswith("-0800") and cursor


def test_a_missed_payment_is_caught_by_the_scheduled_reconciliation(world: World) -> None:
    inv, remote = world.invoice("80.00")
    world.emulator.record_payment(world.org, remote, date="2026-03-05")  # the whole balance; no webhook
    world.hub.config = attrs.evolve(world.hub.config, reconcile_interval=600.0)
    worker = Worker(world.hub, interval=0.2, settings=FAST).start()
    try:
        deadline = time.monotonic() + 8
        while not world.host.payments(inv.id) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    [payment] = world.host.payments(inv.id)
    assert Decimal(payment["amount"]) == Decimal("80.00")
    assert world.host.invoice(inv.id)["status"] == "paid"
    assert world.cursor()
    # the invoice webhook arrives late: a duplicate
    assert world.deliver("invoice", world.emulator.invoice_webhook(world.org, remote))["duplicates"] == 1
    assert len(world.host.payments(inv.id)) == 1


@pytest.mark.parametrize("fault", ["error", "rate_limit"])
def test_a_failing_fetch_ends_the_run_there_and_the_next_one_catches_up(world: World, fault: str) -> None:
    inv, remote = world.invoice("50.00")
    reconcile(world.hub, world.conn.id)
    world.emulator.record_payment(world.org, remote, amount="50.00")  # no webhook
    if fault == "error":  # the invoice's payments list fails once
        world.emulator.fail_next(1, 500, method="GET", path_prefix="/books/v3/invoices/")
    else:
        world.emulator.rate_limit_next(1, method="GET", path_prefix="/books/v3/invoices/")
    stopped = reconcile(world.hub, world.conn.id)
    assert stopped.events == 0 and world.host.payments(inv.id) == []
    again = reconcile(world.hub, world.conn.id)
    assert again.counts["applied"] == 1 and len(world.host.payments(inv.id)) == 1


def test_a_failed_list_keeps_the_cursor(world: World) -> None:
    inv, remote = world.invoice("50.00")
    reconcile(world.hub, world.conn.id)
    cursor = world.cursor()
    world.emulator.record_payment(world.org, remote, amount="50.00")
    world.emulator.fail_next(1, 500, method="GET", path_prefix="/books/v3/contacts")
    with pytest.raises(TransientError):
        reconcile(world.hub, world.conn.id)
    assert world.cursor() == cursor and world.host.payments(inv.id) == []
    assert reconcile(world.hub, world.conn.id).counts["applied"] == 1
