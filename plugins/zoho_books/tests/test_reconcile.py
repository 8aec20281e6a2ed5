"""Reconciliation against the emulator over real HTTP: ``changes_since`` finds what webhooks carry, with the
webhooks' own dedupe keys, and the emulator's modification times and list behaviours it relies on."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
import requests
from zoho_books import plugin, reconcile
from zoho_books.webhooks import parse_contact, parse_invoice_events

from conftest import Zoho
from integration_core.models import CustomerCreated, Event, Ignored, InvoicePaid, InvoiceVoided

ZONE = {"time_offset": "-0800"}


def api(zoho: Zoho, path: str, **params: Any) -> dict[str, Any]:
    token = zoho.store.values["access_token"]
    answer = requests.get(zoho.emulator.api_url + path, params={"organization_id": zoho.org_id, **params},
                          headers={"Authorization": f"Zoho-oauthtoken {token}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def customer(zoho: Zoho, name: str = "Ada") -> str:
    contact, _ = zoho.emulator.create_contact(zoho.org_id, name, email=f"{name.lower()}@example.com")
    return str(contact["contact_id"])


def invoice(zoho: Zoho, customer_id: str, total: str = "100.00") -> str:
    inv = zoho.emulator.create_invoice(zoho.org_id, customer_id, [{"name": "Plan", "rate": total, "quantity": 1}])
    return str(inv["invoice_id"])


def webhook_events(zoho: Zoho, invoice_ids: list[str], contact_ids: list[str]) -> list[Event]:
    """What the invoice and contact webhooks of these records produce now (the emulator's own payloads)."""
    events: list[Event] = []
    for invoice_id in invoice_ids:
        events += parse_invoice_events(zoho.emulator.invoice_webhook(zoho.org_id, invoice_id))
    events += [parse_contact(zoho.emulator.contact_webhook(zoho.org_id, c)) for c in contact_ids]
    return [e for e in events if not isinstance(e, Ignored)]


def run(zoho: Zoho, cursor: str | None) -> tuple[list[Event], str, int]:
    """One reconciliation run: its events, the next cursor and the requests it made."""
    before = sum(zoho.emulator.request_counts(zoho.org_id).values())
    events, next_cursor = plugin.changes_since(ctx=zoho.context(), cursor=cursor)
    assert next_cursor is not None
    return events, next_cursor, sum(zoho.emulator.request_counts(zoho.org_id).values()) - before


def keyed(events: list[Event]) -> dict[str, Event]:
    return {e.dedupe_key: e for e in events}


# --- the emulator ----------------------------------------------------------------------------------------


def test_emulator_moves_last_modified_time_in_the_org_zone_and_filters_on_it(zoho_factory) -> None:
    zoho = zoho_factory()
    zoho.emulator.configure_organization(zoho.org_id, **ZONE)
    cid = customer(zoho)
    old, new = invoice(zoho, cid), invoice(zoho, cid)
    [row] = [r for r in api(zoho, "/invoices")["invoices"] if r["invoice_id"] == old]
    created = reconcile.parse_stamp(row["last_modified_time"])
    assert row["last_modified_time"].endswith("-0800") and created is not None
    assert created.utcoffset() == dt.timedelta(hours=-8)
    later = (created + dt.timedelta(seconds=5)).astimezone(dt.UTC)
    # nothing modified after a time in the future (UTC offset honoured), then a change moves the time
    assert api(zoho, "/invoices", last_modified_time=reconcile.format_stamp(later))["invoices"] == []
    zoho.emulator.record_payment(zoho.org_id, new, amount="10.00")
    zoho.emulator.state.orgs[zoho.org_id].invoices[new]["last_modified_time"] = reconcile.format_stamp(
        later + dt.timedelta(seconds=1))  # as if a second later: the filter is strictly "after"
    rows = api(zoho, "/invoices", last_modified_time=reconcile.format_stamp(later))["invoices"]
    assert [(r["invoice_id"], r["status"]) for r in rows] == [(new, "partially_paid")]
    payments = api(zoho, f"/invoices/{new}/payments")["payments"]
    assert [(p["invoice_id"], Decimal(str(p["amount"]))) for p in payments] == [(new, Decimal("10"))]
    # configured: the filter ignored, or the time read in the organization's zone
    zoho.emulator.configure_organization(zoho.org_id, modified_filter="ignored")
    assert len(api(zoho, "/invoices", last_modified_time=reconcile.format_stamp(later))["invoices"]) == 2
    zoho.emulator.configure_organization(zoho.org_id, modified_filter="after", modified_filter_zone="org")
    wall = later.replace(tzinfo=None).isoformat() + "+0000"  # 8 hours later in the org's zone
    assert api(zoho, "/invoices", last_modified_time=wall)["invoices"] == []


def test_emulator_sorts_contacts_by_created_time_both_ways(zoho_factory) -> None:
    zoho = zoho_factory()
    ids = [customer(zoho, name) for name in ("Carl", "Ada", "Bob")]
    for when, cid in enumerate(ids):  # distinct creation seconds
        zoho.emulator.state.orgs[zoho.org_id].contacts[cid]["created_time"] = f"2026-01-0{when + 1}T10:00:00+0000"
    answer = api(zoho, "/contacts", sort_column="created_time", sort_order="D")
    assert [c["contact_id"] for c in answer["contacts"]] == ids[::-1]
    assert (answer["page_context"]["sort_column"], answer["page_context"]["sort_order"]) == ("created_time", "D")
    zoho.emulator.configure_organization(zoho.org_id, list_sort_order="ignore")
    answer = api(zoho, "/contacts", sort_column="created_time", sort_order="D")
    assert [c["contact_id"] for c in answer["contacts"]] == ids and answer["page_context"]["sort_order"] == "A"
    with pytest.raises(ValueError, match="modified_filter"):
        zoho.emulator.configure_organization(zoho.org_id, modified_filter="sometimes")


# --- changes_since -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", [
    {},
    {"modified_filter": "from"},
    {"modified_filter": "ignored"},
    {"modified_filter_zone": "org"},
    {"list_sort_order": "ignore"},
])
def test_reconciliation_finds_what_the_webhooks_carry_with_their_keys(zoho_factory, behaviour) -> None:
    zoho = zoho_factory()
    zoho.emulator.configure_organization(zoho.org_id, **ZONE, **behaviour)
    cid = customer(zoho, "Ada")
    paid, partial, voided, untouched = (invoice(zoho, cid) for _ in range(4))
    events, cursor, _ = run(zoho, None)  # first run: looks back 30 days
    # the customer created before is found; the invoices so far only changed to "draft": nothing to record
    assert [type(e) for e in events] == [CustomerCreated]
    zoho.emulator.record_payment(zoho.org_id, paid, amount="60.00", date="2026-02-01")
    zoho.emulator.record_payment(zoho.org_id, paid, amount="40.00", date="2026-02-02")
    zoho.emulator.record_payment(zoho.org_id, partial, amount="25.00", date="2026-02-03")
    zoho.emulator.void_invoice(zoho.org_id, voided)
    newcomer = customer(zoho, "Grace")
    zoho.emulator.create_contact(zoho.org_id, "Supplier Ltd", contact_type="vendor")
    events, cursor, _ = run(zoho, cursor)
    expected = webhook_events(zoho, [paid, partial, voided, untouched], [newcomer])
    assert keyed(events).keys() == keyed(expected).keys()
    assert len(events) == len(expected) == 5  # two payments, one partial payment, a void, a customer
    for key, event in keyed(expected).items():
        assert keyed(events)[key] == event  # the very same event, amount, date and all
    got = keyed(events)
    assert {type(e) for e in got.values()} == {InvoicePaid, InvoiceVoided, CustomerCreated}
    assert sorted(e.amount for e in got.values() if isinstance(e, InvoicePaid)) == [25, 40, 60]
    # nothing changed since: nothing found, and only the two lists are read
    again, cursor, requests_made = run(zoho, cursor)
    assert again == [] and requests_made == 2
    # a later change of an invoice already seen: only the new payment's event is new
    zoho.emulator.record_payment(zoho.org_id, partial, amount="75.00", date="2026-02-04")
    more, _, _ = run(zoho, cursor)
    assert [(type(e), e.amount) for e in more if e.dedupe_key not in got] == [(InvoicePaid, Decimal("75.00"))]


def test_cursor_speaks_zohos_zone_and_survives_garbage(zoho_factory) -> None:
    zoho = zoho_factory()
    zoho.emulator.configure_organization(zoho.org_id, time_offset="+0530")
    cid = customer(zoho)
    zoho.emulator.record_payment(zoho.org_id, invoice(zoho, cid))
    events, cursor, _ = run(zoho, None)
    state = json.loads(cursor)
    assert state["v"] == 1 and state["invoices"].endswith("+0530") and state["contacts"].endswith("+0530")
    assert len(events) == 2
    # an unreadable cursor starts over: the same events again (harmless duplicates), not an error
    again, _, _ = run(zoho, "not a cursor")
    assert keyed(again).keys() == keyed(events).keys()


def test_more_than_one_page_of_changes(zoho_factory) -> None:
    zoho = zoho_factory()
    cid = customer(zoho)
    many = [invoice(zoho, cid, "5.00") for _ in range(reconcile.PER_PAGE + 5)]
    _, cursor, _ = run(zoho, None)
    for invoice_id in many:
        zoho.emulator.state.mark_void(zoho.org_id, invoice_id)
    before = zoho.count("GET", "/invoices")
    events, cursor, _ = run(zoho, cursor)
    assert zoho.count("GET", "/invoices") - before == 2  # two pages
    assert {e.dedupe_key for e in events} == {f"invoice:{i}:void" for i in many}
    again, _, made = run(zoho, cursor)
    assert again == [] and made == 3  # two invoice pages (the overlap holds them) and the contacts


def test_a_large_backlog_is_fetched_over_several_runs(zoho_factory, monkeypatch) -> None:
    monkeypatch.setattr(reconcile, "MAX_FETCHES", 2)
    zoho = zoho_factory()
    cid = customer(zoho)
    invoices = [invoice(zoho, cid, "10.00") for _ in range(5)]
    for invoice_id in invoices:
        zoho.emulator.record_payment(zoho.org_id, invoice_id)
    cursor = None
    found: list[Event] = []
    per_run = []
    for _ in range(4):
        events, cursor, _ = run(zoho, cursor)
        found += [e for e in events if isinstance(e, InvoicePaid)]
        per_run.append(len([e for e in events if isinstance(e, InvoicePaid)]))
    assert per_run == [2, 2, 1, 0]
    assert sorted(e.remote_invoice_id for e in found) == sorted(invoices)
    assert zoho.count("GET", "/invoices/{invoice_id}/payments") == 5


@pytest.mark.parametrize(("sort_order", "pages"), [("honour", 1), ("ignore", 2)])
def test_customers_are_read_newest_first_until_older_than_the_window(zoho_factory, sort_order, pages) -> None:
    zoho = zoho_factory()
    zoho.emulator.configure_organization(zoho.org_id, list_sort_order=sort_order)
    org = zoho.emulator.state.orgs[zoho.org_id]
    for n in range(reconcile.PER_PAGE + 5):  # customers from long ago
        cid = customer(zoho, f"Old {n:03d}")
        org.contacts[cid]["created_time"] = f"2025-01-01T10:{n // 60:02d}:{n % 60:02d}+0000"
    _, cursor, _ = run(zoho, None)
    newcomer = customer(zoho, "Zed")
    before = zoho.count("GET", "/contacts")
    events, cursor, _ = run(zoho, cursor)
    assert [(type(e), e.remote_customer_id) for e in events] == [(CustomerCreated, newcomer)]
    # newest first: the first page already reaches back past the window; in ascending order every page is read
    assert zoho.count("GET", "/contacts") - before == pages


def test_an_invoice_paid_by_credits_alone_gets_the_invoice_webhooks_key(zoho_factory) -> None:
    zoho = zoho_factory()
    cid = customer(zoho)
    paid = invoice(zoho, cid, "30.00")
    _, cursor, _ = run(zoho, None)
    # Zoho applies a credit note (the emulator has none): paid, balance 0, no payment listed
    record = zoho.emulator.state.orgs[zoho.org_id].invoices[paid]
    record.update(status="paid", balance=Decimal(0), credits_applied=record["total"], last_payment_date="2026-02-05",
                  last_modified_time=reconcile.format_stamp(dt.datetime.now(dt.UTC)))
    events, _, made = run(zoho, cursor)
    [expected] = webhook_events(zoho, [paid], [])
    assert [(e.dedupe_key, type(e), e.amount) for e in events] == [(expected.dedupe_key, InvoicePaid, Decimal("30"))]
    assert made == 4  # the two lists, the (empty) payments, the invoice itself
