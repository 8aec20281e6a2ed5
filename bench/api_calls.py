"""1. Zoho Books API requests per synced invoice, counted by the emulator (no latency, no limit)."""

from __future__ import annotations

from integration_core.outbox import Outbound

from .common import Row, customer, drain, invoice, make_hub, org_requests, start_emulator, temp_dir, zoho_connection

NAME = "api calls/invoice"


def _measure(hub, emulator, tenant: str, n: int, *, cold: bool, currency: str = "USD") -> tuple[float, int, dict]:  # type: ignore[no-untyped-def]
    """Warm up with one invoice (contact + caches), then count requests for ``n`` more."""
    _conn, org = zoho_connection(hub, emulator, tenant, settings={"rate_limit_per_minute": "1000000"})
    if currency != "USD":
        emulator.add_currency(org, currency, "1.0850")
    outbound = Outbound(hub, f"bench-{tenant}")
    repeat = customer(0, tenant)
    first = org_requests(emulator, org)
    hub.submit_invoice(tenant, "live", invoice(0, repeat, currency, tenant))
    drain(hub, outbound)
    warmup = org_requests(emulator, org) - first
    before = emulator.request_counts(org)
    start = org_requests(emulator, org)
    for i in range(1, n + 1):
        who = customer(i, tenant) if cold else repeat
        hub.submit_invoice(tenant, "live", invoice(i, who, currency, tenant))
    drain(hub, outbound)
    after = emulator.request_counts(org)
    diff = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    synced = len(emulator.invoices(org)) - 1
    assert synced == n, f"{synced} of {n} invoices synced"
    return (org_requests(emulator, org) - start) / n, warmup, diff


def _detail(diff: dict) -> str:  # type: ignore[type-arg]
    return ", ".join(f"{k.replace('/books/v3', '')} x{v}" for k, v in sorted(diff.items()))


def run(quick: bool = False) -> list[Row]:
    n = 20 if quick else 100
    emulator, _statuses = start_emulator(rate_limit_per_minute=10**6)
    rows: list[Row] = []
    try:
        with temp_dir() as d:
            hub = make_hub(d)
            cases = [
                ("steady: repeat customer, base currency (expect 1)", "steady", False, "USD"),
                ("cold: new customer each (search+create contact+invoice, expect 3)", "cold", True, "USD"),
                ("foreign currency EUR, repeat customer (currencies cached)", "fx", False, "EUR"),
                ("foreign currency EUR, new customer each", "fxcold", True, "EUR"),
            ]
            for label, tenant, cold, currency in cases:
                per, warmup, diff = _measure(hub, emulator, tenant, n, cold=cold, currency=currency)
                if tenant == "fx":
                    rows.append(Row(NAME, "first EUR invoice of a new connection (contact, currencies, invoice)",
                                    warmup, "requests"))
                rows.append(Row(NAME, f"{label}; n={n}", per, "requests/invoice"))
                print(f"  {tenant}: {_detail(diff)}", flush=True)
            hub.engine.dispose()
    finally:
        emulator.stop()
    return rows
