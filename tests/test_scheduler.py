"""The background worker (APScheduler) and ``drain_until_idle``."""

from __future__ import annotations

import pytest

from integration_core.hub import Hub
from integration_core.models import TaskStatus
from integration_core.outbox import Outbound, pending_work
from integration_core.providers import ledger as ledger_mod
from integration_core.scheduler import Worker, drain_until_idle, start_scheduler
from integration_core.testing import wait_until
from tests.providers import faulty
from tests.workers.helpers import FAST, add_connection, invoice, tasks


def test_worker_pushes_in_background(hub: Hub) -> None:
    conn, account = add_connection(hub)
    worker = Worker(hub, interval=0.05, settings=FAST, threads=2).start()
    try:
        for i in range(25):
            hub.submit_invoice("t1", "prod", invoice(i))
        assert wait_until(lambda: pending_work(hub) == 0, timeout=20)
    finally:
        worker.stop()
    assert len(ledger_mod.ledger(account).invoices) == 25
    assert {t.status for t in tasks(hub, conn.id)} == {TaskStatus.DONE}
    assert worker.totals.done == 25
    assert len({o.worker_id for o in worker.outbounds}) == 2


def test_start_scheduler_for_serve(hub: Hub) -> None:
    _, account = add_connection(hub)
    hub.submit_invoice("t1", "prod", invoice(1))
    worker = start_scheduler(hub, interval=0.05, settings=FAST)
    try:
        assert wait_until(lambda: len(ledger_mod.ledger(account).invoices) == 1, timeout=20)
    finally:
        worker.stop()
    assert worker.worker_id.count(":") == 2  # hostname:pid:random


def test_drain_until_idle_waits_out_retries(hub: Hub) -> None:
    _, account = add_connection(hub, "faulty")
    faulty.inject(account, "transient", "lost", op="push_invoice")
    try:
        for i in range(3):
            hub.submit_invoice("t1", "prod", invoice(i))
        stats = drain_until_idle(hub, 20, settings=FAST)
    finally:
        faulty.calm(account)
    assert stats.done == 3 and stats.retrying == 2
    assert len(ledger_mod.ledger(account).invoices) == 3


def test_drain_until_idle_times_out(hub: Hub) -> None:
    add_connection(hub)
    hub.submit_invoice("t1", "prod", invoice(1))
    busy = Outbound(hub, "other", FAST)
    assert busy.claim(10)  # another worker holds the lease and never releases it
    with pytest.raises(TimeoutError, match="1 task"):
        drain_until_idle(hub, 0.3, settings=FAST)
