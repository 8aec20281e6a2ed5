"""1. Zoho Books API requests per synced invoice, counted by the emulator (no latency, no limit)."""

from __future__ import annotations

import datetime as dt

from integration_core.models import Customer, Invoice
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


def _taxed(n: int, who: Customer, tenant: str) -> Invoice:
    """A UK invoice with items (product codes), quantities, a line discount and 20% / 5% VAT."""
    return Invoice(
        id=f"{tenant}-{n}", number=f"{tenant}-{n}", customer=who, currency="GBP", issue_date=dt.date(2026, 1, 2),
        lines=[{"description": "Pro seat", "product_code": "SEAT-PRO", "quantity": "3", "unit_price": "49.99",
                "discount_percent": "10", "tax_rate": "20"},
               {"description": "Printed manual", "product_code": "MANUAL", "unit_price": "12.00", "tax_rate": "5"}],
    )


def _measure_taxed(hub, emulator, tenant: str, n: int) -> tuple[float, int, dict]:  # type: ignore[no-untyped-def]
    """Items and taxes: the first invoice finds/creates items and reads taxes; then count ``n`` more."""
    _conn, org = zoho_connection(hub, emulator, tenant, currency="GBP", settings={
        "rate_limit_per_minute": "1000000", "edition": "uk"}, org_settings={"edition": "uk"})
    emulator.add_tax(org, "Standard Rate", 20)
    emulator.add_tax(org, "Reduced Rate", 5)
    outbound = Outbound(hub, f"bench-{tenant}")
    who = Customer(id=f"{tenant}-c", name="London Ltd", email="ap@london.example", tax_number="GB123456789",
                   billing_address={"city": "London", "country": "GB"})
    first = org_requests(emulator, org)
    hub.submit_invoice(tenant, "live", _taxed(0, who, tenant))
    drain(hub, outbound)
    warmup = org_requests(emulator, org) - first
    before = emulator.request_counts(org)
    start = org_requests(emulator, org)
    for i in range(1, n + 1):
        hub.submit_invoice(tenant, "live", _taxed(i, who, tenant))
    drain(hub, outbound)
    after = emulator.request_counts(org)
    diff = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    synced = [i for i in emulator.invoices(org) if i["reference_number"] != f"{tenant}-0"]
    assert len(synced) == n, f"{len(synced)} of {n} invoices synced"
    expected = _taxed(1, who, tenant).total
    assert all(str(i["total"]) == str(expected) for i in synced), "Zoho's totals differ from ours"
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
            per, warmup, diff = _measure_taxed(hub, emulator, "taxed", n)
            rows.append(Row(NAME, "first UK invoice with items and taxes (org, taxes, 2 items looked up and "
                            "created, contact, invoice)", warmup, "requests"))
            rows.append(Row(NAME, f"steady: items (product codes) and 20%/5% VAT, repeat customer (items, taxes "
                            f"cached; expect <= 1.05); n={n}", per, "requests/invoice"))
            print(f"  taxed: {_detail(diff)}", flush=True)
            hub.engine.dispose()
    finally:
        emulator.stop()
    return rows
