"""Disabling a connection, or turning its outbound sync off, takes effect before the next push
(issue 12, bug 9): the drain checks the connection with every task, not once per batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from integration_core.hub import Hub
from integration_core.models import SyncSettings, TaskStatus
from integration_core.outbox import Outbound
from tests.workers.helpers import FAST, invoice, tasks
from tests.workers.zoho import zoho_connection


def stop_by_disable(hub: Hub, connection_id: str) -> None:
    hub.disable(connection_id)


def stop_by_sync_off(hub: Hub, connection_id: str) -> None:
    hub.update_connection(connection_id, sync=SyncSettings(invoices_outbound=False))


@pytest.mark.parametrize("stop", [stop_by_disable, stop_by_sync_off], ids=["disable", "no-invoices-outbound"])
def test_no_push_starts_after_the_operator_stops_the_connection(
    hub: Hub, zoho_emulator: Any, stop: Callable[[Hub, str], None]
) -> None:
    conn, org = zoho_connection(hub, zoho_emulator)
    for n in range(8):
        hub.submit_invoice("t1", "prod", invoice(n))
    zoho_emulator.set_latency(0.3)  # each push takes a few requests: the batch of 8 runs for seconds
    outbound = Outbound(hub, "w1", FAST)
    drained = threading.Thread(target=outbound.tick)
    drained.start()
    deadline = time.monotonic() + 30
    while not zoho_emulator.invoices(org) and time.monotonic() < deadline:
        time.sleep(0.02)
    stop(hub, conn.id)
    created_when_stopped = len(zoho_emulator.invoices(org))
    drained.join(timeout=60)
    zoho_emulator.set_latency(None)
    # at most the push already under way when the operator's command returned
    assert len(zoho_emulator.invoices(org)) <= created_when_stopped + 1
    assert sum(t.status == TaskStatus.PENDING for t in tasks(hub, conn.id)) >= 8 - created_when_stopped - 1
    # and later ticks push nothing either
    outbound.tick()
    assert len(zoho_emulator.invoices(org)) <= created_when_stopped + 1
