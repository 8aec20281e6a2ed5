"""Voided and deleted QuickBooks payments taken back at the host (``PaymentReversed``), each linked invoice's share
exactly once, whether the webhook (classic or CloudEvents), a redelivery or reconciliation (CDC) says so; over real
HTTP: the emulator voids or deletes, signs and delivers, the core's dispatcher and outbox apply."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from qbo_helpers import CLIENT_ID, VERIFIER_TOKEN
from quickbooks import inbound, webhooks
from test_qbo_webhooks import FAST, Tenant, inbox

from integration_core import inbound as core_inbound
from integration_core.hub import Hub
from integration_core.models import Ignored, PaymentReversed
from integration_core.scheduler import drain_until_idle
from integration_core.server import RunningServer, running
from reference_host import ReferenceHost


@pytest.fixture
def billing(tmp_path: Path) -> ReferenceHost:
    return ReferenceHost(tmp_path / "billing.sqlite3")


@pytest.fixture
def server(ic_hub: Hub, billing: ReferenceHost) -> Iterator[RunningServer]:
    ic_hub.plugins.set_host(billing)
    with running(ic_hub) as srv:
        yield srv


def shares_back(billing: Any) -> list[tuple[str, Decimal, str]]:
    return sorted((r["invoice_id"], Decimal(r["amount"]), r["reason"]) for r in billing.reversals())


def paid_and_recorded(t: Tenant, emu: Any, hub: Any) -> dict[str, Any]:
    """A payment of 60.00 + 50.00 across both invoices, announced by the webhook and recorded by the host."""
    payment = t.pay_partially_across_both()
    assert [d.status for d in emu.deliver_webhooks()] == [200]
    drain_until_idle(hub, 30, settings=FAST)
    assert len(t.billing.payments()) == 2
    return payment


def expected(t: Tenant) -> list[tuple[str, Decimal, str]]:
    return sorted([(t.invoices[0].id, Decimal("60.00"), "deleted"), (t.invoices[1].id, Decimal("50.00"), "deleted")])


@pytest.mark.parametrize("fmt", ["classic", "cloudevents"])
@pytest.mark.parametrize("operation", ["void", "delete"])
def test_voided_or_deleted_payment_reverses_both_shares_once(ic_hub, qbo_emulator, billing, server, fmt,
                                                             operation) -> None:
    t = Tenant(ic_hub, qbo_emulator, billing, server, fmt=fmt)
    payment = paid_and_recorded(t, qbo_emulator, ic_hub)
    if operation == "void":
        qbo_emulator.void_payment(t.realm, payment["Id"])
    else:
        qbo_emulator.delete_payment(t.realm, payment["Id"])
    deliveries = qbo_emulator.deliver_webhooks()
    assert [d.status for d in deliveries] == [200]
    verb = {"void": ("Void", "voided"), "delete": ("Delete", "deleted")}[operation]
    assert verb[0 if fmt == "classic" else 1] in deliveries[0].body.decode()
    before = qbo_emulator.request_counts(t.realm)
    for _ in range(2):  # at-least-once delivery: the same notification again, harmless
        assert qbo_emulator.webhooks.post(t.url, deliveries[0].body, VERIFIER_TOKEN).status == 200
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert shares_back(billing) == expected(t)
    for inv in t.invoices:
        assert billing.invoice(inv.id)["status"] == "open"
    # the shares came from the mapping table: the voided or deleted payment was not read
    spent = qbo_emulator.request_counts(t.realm)
    assert spent.get("GET /payment/{id}", 0) == before.get("GET /payment/{id}", 0)
    reversed_rows = [e for e in inbox(ic_hub) if e.kind == "payment_reversed"]
    assert len(reversed_rows) == 2 and {e.status for e in reversed_rows} == {"applied"}


def test_void_then_delete_of_the_same_payment_reverses_once(ic_hub, qbo_emulator, billing, server) -> None:
    t = Tenant(ic_hub, qbo_emulator, billing, server, fmt="cloudevents")
    payment = paid_and_recorded(t, qbo_emulator, ic_hub)
    qbo_emulator.void_payment(t.realm, payment["Id"])
    qbo_emulator.deliver_webhooks()
    drain_until_idle(ic_hub, 30, settings=FAST)
    qbo_emulator.delete_payment(t.realm, payment["Id"])
    qbo_emulator.deliver_webhooks()
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert shares_back(billing) == expected(t)


@pytest.mark.parametrize("operation", ["void", "delete"])
def test_missed_reversal_webhook_is_caught_by_reconciliation(ic_hub, qbo_emulator, billing, server,
                                                             operation) -> None:
    t = Tenant(ic_hub, qbo_emulator, billing, server)
    payment = paid_and_recorded(t, qbo_emulator, ic_hub)
    ctx = ic_hub.context(t.conn.id)
    _, cursor = inbound.changes_since(ctx, None)
    (qbo_emulator.void_payment if operation == "void" else qbo_emulator.delete_payment)(t.realm, payment["Id"])
    held = list(qbo_emulator.webhooks.apps[CLIENT_ID].pending)
    assert held
    qbo_emulator.webhooks.drop_pending(CLIENT_ID)  # Intuit never delivers these
    events, cursor = inbound.changes_since(ctx, cursor)
    back = [e for e in events if isinstance(e, PaymentReversed)]
    assert sorted((e.remote_invoice_id, e.amount) for e in back) == sorted(
        [(t.remote[0], Decimal("60.00")), (t.remote[1], Decimal("50.00"))])
    core_inbound.apply(ic_hub, ic_hub.get_connection(t.conn.id), events)
    assert shares_back(billing) == expected(t)
    again, _ = inbound.changes_since(ctx, cursor)  # the overlapping next window: harmless
    core_inbound.apply(ic_hub, ic_hub.get_connection(t.conn.id), again)
    qbo_emulator.webhooks.apps[CLIENT_ID].pending.extend(held)  # the late webhook: harmless
    assert [d.status for d in qbo_emulator.deliver_webhooks()] == [200]
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert shares_back(billing) == expected(t)
    assert len(billing.payments()) == 2


def test_a_payment_voided_before_it_reached_the_host_changes_nothing(ic_hub, qbo_emulator, billing,
                                                                     server) -> None:
    t = Tenant(ic_hub, qbo_emulator, billing, server)
    payment = t.pay_partially_across_both()
    qbo_emulator.void_payment(t.realm, payment["Id"])  # both notifications arrive after the void
    assert [d.status for d in qbo_emulator.deliver_webhooks()] == [200]
    drain_until_idle(ic_hub, 30, settings=FAST)
    events, _ = inbound.changes_since(ic_hub.context(t.conn.id), None)
    core_inbound.apply(ic_hub, ic_hub.get_connection(t.conn.id), events)
    assert billing.payments() == [] and billing.reversals() == []
    for operation in ("Create", "Void"):  # what the fetch said (stored under the notice's own key)
        [said] = inbound.events_for(ic_hub.context(t.conn.id), [
            webhooks.Notification(t.realm, "Payment", payment["Id"], operation, "2026-01-01T00:00:00Z")])
        assert isinstance(said, Ignored) and "voided in QuickBooks never reached the host" in said.reason


def test_our_own_payment_voided_in_quickbooks_is_reversed_under_the_hosts_payment_id(ic_hub, qbo_emulator, billing,
                                                                                     server) -> None:
    t = Tenant(ic_hub, qbo_emulator, billing, server)
    ours = billing.add_payment("acme", "prod", t.invoices[0].id, "30.00", method="card")
    ic_hub.submit_payment("acme", "prod", ours)
    drain_until_idle(ic_hub, 30, settings=FAST)
    qbo_emulator.webhooks.drop_pending(CLIENT_ID)  # even without the echo of its creation
    [remote] = [p for p in qbo_emulator.records(t.realm, "Payment")]
    qbo_emulator.void_payment(t.realm, remote["Id"])
    qbo_emulator.deliver_webhooks()
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert [(r["payment_key"], Decimal(r["amount"])) for r in billing.reversals()] == [(ours.id, Decimal("30.00"))]
    assert billing.invoice(t.invoices[0].id)["status"] == "open"
