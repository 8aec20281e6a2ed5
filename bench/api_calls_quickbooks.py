"""1b. QuickBooks Online API requests per synced invoice, counted by the QuickBooks emulator (no latency, no
limit): the same cases as the Zoho benchmark, for the second provider."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from integration_core.hub import Hub
from integration_core.outbox import Outbound

from .common import Row, customer, drain, invoice, make_hub, temp_dir

NAME = "api calls/invoice (QuickBooks)"
CLIENT_ID = "ABbenchClientIdOfTheQuickBooksBenchmarkApp000000"
CLIENT_SECRET = "bench-qbo-client-secret"
REDIRECT_URI = "http://127.0.0.1:9/callback"


def qbo_connection(hub: Hub, emulator: Any, tenant: str) -> str:
    """A company (USD, multicurrency with EUR) and a connection authorized through the Hub; its realm id."""
    emulator.add_app(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    realm = emulator.add_company(name=f"Bench {tenant}", multicurrency=True, currencies={"EUR": "1.0850"})
    conn = hub.add_connection(tenant_id=tenant, environment_id="live", provider="quickbooks", name=tenant,
                              values={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                      "environment": emulator.base_url, "rate_limit_per_minute": "1000000"})
    emulator.next_consent(realm)
    location = requests.get(hub.start_authorization(conn.id, REDIRECT_URI), allow_redirects=False,
                            timeout=10).headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    hub.complete_authorization(params.pop("state"), params.pop("code"), params)
    return str(realm)


def _count(emulator: Any, realm: str) -> int:
    return sum(emulator.request_counts(realm).values())


def _measure(hub: Hub, emulator: Any, tenant: str, n: int, *, cold: bool, currency: str) -> tuple[float, int, dict]:  # type: ignore[type-arg]
    realm = qbo_connection(hub, emulator, tenant)
    outbound = Outbound(hub, f"bench-{tenant}")
    repeat = customer(0, tenant)
    hub.submit_invoice(tenant, "live", invoice(0, repeat, currency, tenant))
    drain(hub, outbound)
    warmup = _count(emulator, realm)
    before = emulator.request_counts(realm)
    for i in range(1, n + 1):
        hub.submit_invoice(tenant, "live", invoice(i, customer(i, tenant) if cold else repeat, currency, tenant))
    drain(hub, outbound)
    after = emulator.request_counts(realm)
    diff = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    synced = len(emulator.invoices(realm)) - 1
    assert synced == n, f"{synced} of {n} invoices synced"
    return (_count(emulator, realm) - warmup) / n, warmup, diff


def run(quick: bool = False) -> list[Row]:
    from quickbooks.emulator import Emulator

    n = 20 if quick else 100
    emulator = Emulator(rate_limit_per_minute=10**6).start()
    rows: list[Row] = []
    try:
        with temp_dir() as d:
            hub = make_hub(d)
            cases = [
                ("steady: repeat customer, home currency (expect 1)", "qsteady", False, "USD"),
                ("cold: new customer each (email query + create customer + invoice, expect 3)", "qcold", True, "USD"),
                ("foreign currency EUR, repeat customer (rate cached per day)", "qfx", False, "EUR"),
            ]
            for label, tenant, cold, currency in cases:
                per, warmup, diff = _measure(hub, emulator, tenant, n, cold=cold, currency=currency)
                rows.append(Row(NAME, f"first invoice of a new connection ({tenant})", warmup, "requests"))
                rows.append(Row(NAME, f"{label}; n={n}", per, "requests/invoice"))
                print(f"  {tenant}: " + ", ".join(f"{k} x{v}" for k, v in sorted(diff.items())), flush=True)
            hub.engine.dispose()
    finally:
        emulator.stop()
    return rows
