"""Proof with two providers at once: two tenants, one on Zoho Books and one on QuickBooks Online, pushed by
one outbox while both emulators inject the same random faults (5xx before the write, 429, answers lost or
dropped after the commit, 500 after the commit, latency windows above the read timeout). Afterwards each
side holds every invoice exactly once, linked to the task that pushed it."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

import pytest
from qbo_helpers import qbo_connection

from integration_core import mapping
from integration_core.hub import Hub
from integration_core.models import Invoice, TaskStatus
from integration_core.outbox import Outbound, pending_work
from tests.proof.storm import READ_TIMEOUT, STORM_RATES, STORM_SETTINGS, LatencyWindows
from tests.proof.zoho import mappings, task_counts, zoho_connection

pytest.importorskip("zoho_books")

PER_SIDE = 150
CUSTOMERS = 40


def make(tenant: str, n: int) -> Invoice:
    c = n % CUSTOMERS
    return Invoice.from_dict({
        "id": f"{tenant}-inv-{n}", "number": f"{tenant.upper()}-{n}", "currency": "EUR" if n % 6 == 0 else "USD",
        "customer": {"id": f"{tenant}-cust-{c}", "name": f"Customer {c}", "email": f"c{c}@{tenant}.example"},
        "issue_date": "2026-01-10", "lines": [{"description": "Plan", "amount": f"{10 + n}.50"}],
    })


@pytest.mark.slow
def test_fault_storm_on_zoho_and_quickbooks_at_once_pushes_each_invoice_once(
        ic_hub: Hub, zoho_emulator_factory, qbo_emulator_factory) -> None:
    started = time.monotonic()
    zoho = zoho_emulator_factory(rate_limit_per_minute=1_000_000, retry_after=0, refresh_limit=100_000)
    qbo = qbo_emulator_factory(rate_limit_per_minute=1_000_000)
    fast = {"rate_limit_per_minute": "1000000", "read_timeout": str(READ_TIMEOUT), "connect_timeout": "2"}
    zconn = zoho_connection(ic_hub, zoho, tenant="zt", env="live", settings=fast)
    org = zconn.settings["organization_id"]
    zoho.add_currency(org, "EUR", "1.0850")
    qconn, realm = qbo_connection(ic_hub, qbo, tenant="qt", env="live",
                                  company_config={"multicurrency": True, "currencies": {"EUR": "1.0850"}},
                                  throttle_retry_after="0.01", **fast)
    invoices = {"zt": [make("zt", n) for n in range(PER_SIDE)], "qt": [make("qt", n) for n in range(PER_SIDE)]}
    for tenant, items in invoices.items():
        for inv in items:
            ic_hub.submit_invoice(tenant, "live", inv)
    resubmit = [("zt", inv) for inv in invoices["zt"][::10]] + [("qt", inv) for inv in invoices["qt"][::10]]

    for emu in (zoho, qbo):
        emu.random_faults(STORM_RATES, seed=20261127)
    windows = [LatencyWindows(zoho), LatencyWindows(qbo, period=1.3)]
    for w in windows:
        w.start()
    outbound = Outbound(ic_hub, "two-provider-storm", STORM_SETTINGS)
    try:
        deadline = time.monotonic() + 240
        while pending_work(ic_hub):
            if resubmit:
                tenant, inv = resubmit.pop()
                ic_hub.submit_invoice(tenant, "live", inv)
            if outbound.tick().attempted == 0:
                time.sleep(0.005)
            assert time.monotonic() < deadline, f"not drained: {task_counts(ic_hub)}"
    finally:
        for w in windows:
            w.stop()
        for emu in (zoho, qbo):
            emu.random_faults(None)
    fired = {"zoho": dict(zoho.faults.snapshot()["fired"]), "quickbooks": dict(qbo.faults.snapshot()["fired"])}

    assert task_counts(ic_hub) == {TaskStatus.DONE: 2 * PER_SIDE}
    # Zoho: one invoice per reference, each linked to its task's invoice.
    zremote = zoho.invoices(org)
    zrefs = Counter(r["reference_number"] for r in zremote)
    assert len(zremote) == PER_SIDE and max(zrefs.values()) == 1
    zlinked = mappings(ic_hub, zconn.id, mapping.INVOICE)
    assert sorted(zlinked.values()) == sorted(r["invoice_id"] for r in zremote)
    # QuickBooks: one invoice per PrivateNote reference and DocNumber, right currency and total.
    qremote = qbo.invoices(realm)
    qrefs = Counter(r["PrivateNote"] for r in qremote)
    assert len(qremote) == PER_SIDE and max(qrefs.values()) == 1
    qlinked = mappings(ic_hub, qconn.id, mapping.INVOICE)
    by_id = {r["Id"]: r for r in qremote}
    for inv in invoices["qt"]:
        r = by_id[qlinked[inv.id]]
        assert r["PrivateNote"] == f"integration-core invoice {inv.id}" and r["DocNumber"] == inv.number
        assert r["CurrencyRef"]["value"] == inv.currency and Decimal(str(r["TotalAmt"])) == inv.total
    # No customer twice on the QuickBooks side (one per email and currency).
    keys = Counter(((c.get("PrimaryEmailAddr") or {}).get("Address"), c["CurrencyRef"]["value"])
                   for c in qbo.customers(realm))
    assert max(keys.values()) == 1 and len(keys) <= 2 * CUSTOMERS
    assert all(fired[side].get(kind, 0) > 0 for side in fired for kind in STORM_RATES), fired
    print(f"\ntwo-provider storm: {PER_SIDE} invoices on each side, faults fired {fired}, requests zoho "
          f"{sum(zoho.request_counts(org).values())} quickbooks {sum(qbo.request_counts(realm).values())}, "
          f"{time.monotonic() - started:.1f}s")
