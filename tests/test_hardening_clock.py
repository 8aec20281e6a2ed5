"""A worker whose clock runs ahead by more than the lease never takes over a push in flight
(issue 12, bug 8). The skewed worker is the real ``Outbound`` with its wall clock offset by 20 s
(lease 10 s), as ``faketime`` would make it."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import attrs

from integration_core import audit
from integration_core.hub import Hub
from integration_core.models import TaskStatus
from integration_core.outbox import Outbound
from integration_core.store.schema import utcnow
from tests.workers.helpers import FAST, invoice, tasks
from tests.workers.zoho import by_reference, zoho_connection

LEASE = attrs.evolve(FAST, lease_seconds=10.0)


def test_a_worker_twenty_seconds_ahead_does_not_duplicate_an_invoice(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator)
    n = 3
    for i in range(n):
        hub.submit_invoice("t1", "prod", invoice(i))
    zoho_emulator.set_latency(0.8)  # every request is slow: the first push is in flight for seconds
    honest = Outbound(hub, "honest", LEASE)
    ahead = Outbound(hub, "ahead", LEASE, clock=lambda: utcnow() + dt.timedelta(seconds=20))
    first = threading.Thread(target=honest.tick)
    first.start()
    deadline = time.monotonic() + 20
    while not any(t.status == TaskStatus.IN_FLIGHT for t in tasks(hub, conn.id)) and time.monotonic() < deadline:
        time.sleep(0.02)
    # While the honest worker pushes, the skewed one ticks again and again.
    while first.is_alive():
        ahead.tick()
        time.sleep(0.1)
    first.join()
    zoho_emulator.set_latency(None)
    for _ in range(50):  # then both drain what is left
        honest.tick()
        ahead.tick()
        if all(t.status == TaskStatus.DONE for t in tasks(hub, conn.id)):
            break
        time.sleep(0.05)
    with hub.engine.connect() as db:
        details = [r.detail or "" for t in tasks(hub, conn.id) for r in audit.history(db, "task", t.id)]
    assert not any("abandoned" in d for d in details), details  # the live push was never taken over
    refs = by_reference(zoho_emulator, org)
    assert len(refs) == n and set(refs.values()) == {1}, refs  # one remote invoice per invoice, never two
    assert all(t.status == TaskStatus.DONE for t in tasks(hub, conn.id))
