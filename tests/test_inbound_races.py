"""inbound.apply directly: duplicate deliveries racing on separate engines (as separate workers would)."""

from __future__ import annotations

import threading
from decimal import Decimal

import sqlalchemy as sa

from integration_core import inbound
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.models import CustomerCreated, Ignored, InvoicePaid
from integration_core.store.schema import inbox_events

from .test_inbound_support import RecordingHost, ledger_connection


def test_racing_workers_apply_a_payment_once(hub: Hub, config: Config) -> None:
    host = RecordingHost()
    setup = ledger_connection(hub, "acme", "prod")
    workers = [Hub(config, host=host, auto_upgrade=False) for _ in range(6)]
    event = InvoicePaid(dedupe_key="payment:P-1", remote_invoice_id=setup.remote_invoice, amount="120.00",
                        currency="USD", paid_on="2026-01-15")
    barrier = threading.Barrier(len(workers) * 2)
    outcomes: list[inbound.EventOutcome] = []
    errors: list[BaseException] = []

    def run(worker: Hub) -> None:
        try:
            barrier.wait()
            outcomes.extend(inbound.apply(worker, setup.conn, [event]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert host.payment_calls == 1
    assert sorted(o.duplicate for o in outcomes) == [False] + [True] * 11
    assert {o.status for o in outcomes} == {"applied"}
    with hub.engine.connect() as db:
        (row,) = db.execute(sa.select(inbox_events)).fetchall()
    assert row.deliveries == 12
    for w in workers:
        w.engine.dispose()


def test_one_delivery_with_several_events_and_summary(hub: Hub) -> None:
    host = RecordingHost()
    hub.plugins.set_host(host)
    setup = ledger_connection(hub, "acme", "prod")
    events = [
        InvoicePaid(dedupe_key="p1", remote_invoice_id=setup.remote_invoice, amount=Decimal("1"), currency=None,
                    paid_on="2026-01-01"),
        InvoicePaid(dedupe_key="p2", remote_invoice_id="nobody", amount=Decimal("1"), currency=None,
                    paid_on="2026-01-01"),
        CustomerCreated(dedupe_key="c1", remote_customer_id="R1", name="Ada", email=None),
        Ignored(dedupe_key="x1", reason="an estimate was edited"),
        Ignored(dedupe_key="x1", reason="an estimate was edited"),
    ]
    outcomes = inbound.apply(hub, setup.conn, events)
    assert [o.status for o in outcomes] == ["applied", "ignored", "applied", "ignored", "ignored"]
    assert inbound.summarize(outcomes) == {"events": 5, "applied": 2, "ignored": 2, "failed": 0, "duplicates": 1}
    assert host.customers["cust-1"]["email"] is None
    # the same remote customer again is already linked
    again = inbound.apply(hub, setup.conn, [CustomerCreated(dedupe_key="c1-bis", remote_customer_id="R1",
                                                            name="Ada", email=None)])
    assert again[0].status == "ignored" and "already linked" in (again[0].reason or "")
