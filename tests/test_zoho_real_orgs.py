"""Zoho Books as real organizations run it, through the Hub, the outbox, the plugin and the HTTP emulator:
a contact per currency, country editions and taxes, items, precision, custom fields, contact updates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from integration_core import mapping
from integration_core.hub import Hub
from integration_core.models import Invoice, TaskStatus
from integration_core.outbox import find_task
from integration_core.scheduler import drain_until_idle
from tests.workers.helpers import FAST
from tests.workers.zoho import zoho_connection

pytest.importorskip("zoho_books")

GSTIN_TN = "33AAACB1234C1Z5"


def invoice(n: int, lines: list[dict[str, Any]], *, currency: str = "USD", customer: dict[str, Any] | None = None,
            **extra: Any) -> Invoice:
    return Invoice.from_dict({
        "id": f"inv-{n}", "number": f"INV-{n}", "currency": currency, "issue_date": "2026-01-10",
        "customer": customer or {"id": "cust-ada", "name": "Ada Lovelace", "email": "ada@example.com"},
        "lines": lines, **extra})


def drain(hub: Hub) -> None:
    drain_until_idle(hub, 30, settings=FAST)


def zoho_invoice(emulator: Any, org: str, number: str) -> dict[str, Any]:
    [found] = [i for i in emulator.invoices(org) if i["invoice_number"] == number]
    return found


def test_usd_then_eur_gives_two_contacts_each_invoice_on_its_currency(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator)
    zoho_emulator.add_currency(org, "EUR", "1.0850")
    line = [{"description": "Plan", "amount": "100.00"}]
    hub.submit_invoice("t1", "prod", invoice(1, line))
    hub.submit_invoice("t1", "prod", invoice(2, line, currency="EUR"))
    hub.submit_invoice("t1", "prod", invoice(3, line, currency="EUR"))
    drain(hub)
    contacts = {c["currency_code"]: c for c in zoho_emulator.contacts(org)}
    assert sorted(contacts) == ["EUR", "USD"] and len(zoho_emulator.contacts(org)) == 2
    assert contacts["EUR"]["contact_name"] == "Ada Lovelace (EUR)" and contacts["USD"]["contact_name"] == "Ada Lovelace"
    for n, code in ((1, "USD"), (2, "EUR"), (3, "EUR")):
        inv = zoho_invoice(zoho_emulator, org, f"INV-{n}")
        assert inv["currency_code"] == code and inv["customer_id"] == contacts[code]["contact_id"]
    with hub.engine.connect() as db:
        for code in ("USD", "EUR"):
            assert mapping.remote_id(db, conn.id, mapping.contact_type(code), "cust-ada") == \
                contacts[code]["contact_id"]
            # inbound events about either contact resolve to the one host customer
            assert mapping.customer_for_remote(db, conn.id, contacts[code]["contact_id"]) == "cust-ada"


def test_india_gst_igst_across_states_cgst_sgst_within(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator, currency="INR",
                                org_settings={"edition": "in", "state_code": "KA", "country": "India"})
    zoho_emulator.add_tax(org, "IGST18", 18, tax_specific_type="igst")
    cgst = zoho_emulator.add_tax(org, "CGST9", 9, tax_specific_type="cgst")["tax_id"]
    sgst = zoho_emulator.add_tax(org, "SGST9", 9, tax_specific_type="sgst")["tax_id"]
    zoho_emulator.add_tax_group(org, "GST18", [cgst, sgst])
    lines = [{"description": "Cloud hosting", "quantity": "2", "unit_price": "1250.00", "tax_rate": "18",
              "classification_code": "998315"}]
    chennai = {"id": "cust-tn", "name": "Chennai Traders", "email": "acc@chennai.example", "tax_treatment": "business",
               "tax_number": GSTIN_TN, "billing_address": {"city": "Chennai", "state": "TN", "country": "IN"}}
    bangalore = {"id": "cust-ka", "name": "Bangalore Retail", "billing_address": {"state": "KA", "country": "IN"}}
    hub.submit_invoice("t1", "prod", invoice(1, lines, currency="INR", customer=chennai))
    hub.submit_invoice("t1", "prod", invoice(2, lines, currency="INR", customer=bangalore))
    bad = {**chennai, "id": "cust-bad", "name": "No GSTIN Ltd", "email": "x@bad.example", "tax_number": None}
    hub.submit_invoice("t1", "prod", invoice(3, lines, currency="INR", customer=bad))
    drain(hub)
    inter = zoho_invoice(zoho_emulator, org, "INV-1")
    assert inter["place_of_supply"] == "TN" and inter["gst_treatment"] == "business_gst" and inter["gst_no"] == GSTIN_TN
    assert inter["line_items"][0]["hsn_or_sac"] == "998315"
    assert [(t["tax_name"], Decimal(str(t["tax_amount"]))) for t in inter["taxes"]] == [("IGST18", Decimal("450.00"))]
    assert Decimal(str(inter["total"])) == Decimal("2950.00")
    assert find_task(hub, conn.id, "inv-2").last_error is None, find_task(hub, conn.id, "inv-2").last_error
    intra = zoho_invoice(zoho_emulator, org, "INV-2")
    assert intra["place_of_supply"] == "KA" and intra["gst_treatment"] == "consumer"
    assert sorted(t["tax_name"] for t in intra["taxes"]) == ["CGST9", "SGST9"]
    assert Decimal(str(intra["total"])) == Decimal("2950.00")
    failed = find_task(hub, conn.id, "inv-3")
    assert failed.status == TaskStatus.FAILED
    assert "cust-bad" in (failed.last_error or "") and "tax_number" in (failed.last_error or "")
    assert "GSTIN" in (failed.last_error or "")
    assert not [c for c in zoho_emulator.contacts(org) if c["contact_name"] == "No GSTIN Ltd"]


def test_uk_vat_items_inclusive_and_jpy_reconcile(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator, currency="GBP",
                                org_settings={"edition": "uk", "country": "United Kingdom"})
    zoho_emulator.add_tax(org, "Standard Rate", 20)
    zoho_emulator.add_tax(org, "Reduced Rate", 5)
    buyer = {"id": "cust-uk", "name": "London Ltd", "email": "ap@london.example", "tax_number": "GB123456789",
             "billing_address": {"city": "London", "country": "GB"}}
    vat = [{"description": "Pro seat", "product_code": "SEAT-PRO", "quantity": "3", "unit_price": "49.99",
            "discount_percent": "10", "tax_rate": "20"},
           {"description": "Onboarding", "product_code": "ONB", "unit_price": "120.00", "tax_rate": "20"}]
    hub.submit_invoice("t1", "prod", invoice(1, vat, currency="GBP", customer=buyer, discount_amount="10.00"))
    inclusive = [{"description": "Pro seat", "product_code": "SEAT-PRO", "quantity": "2", "unit_price": "59.99",
                  "tax_rate": "20"}]
    hub.submit_invoice("t1", "prod", invoice(2, inclusive, currency="GBP", customer=buyer, tax_inclusive=True))
    drain(hub)
    for n in (1, 2):
        ours = invoice(n, vat if n == 1 else inclusive, currency="GBP", customer=buyer,
                       **({"discount_amount": "10.00"} if n == 1 else {"tax_inclusive": True}))
        theirs = zoho_invoice(zoho_emulator, org, f"INV-{n}")
        assert Decimal(str(theirs["total"])) == ours.total, (theirs, ours.totals())
        assert Decimal(str(theirs["tax_total"])) == ours.totals().tax_total
        assert find_task(hub, conn.id, f"inv-{n}").status == TaskStatus.DONE
    assert zoho_invoice(zoho_emulator, org, "INV-1")["vat_treatment"] == "uk"
    assert sorted(i["sku"] for i in zoho_emulator.items(org)) == ["ONB", "SEAT-PRO"]  # created once each
    assert zoho_emulator.request_count(org, "POST", "/items") == 2
    with hub.engine.connect() as db:  # remembered in the mapping table: a new process looks nothing up
        assert mapping.remote_id(db, conn.id, "item", "SEAT-PRO") == next(
            i["item_id"] for i in zoho_emulator.items(org) if i["sku"] == "SEAT-PRO")
    hub.context(conn).cache.clear()
    lookups = zoho_emulator.request_count(org, "GET", "/items")
    hub.submit_invoice("t1", "prod", invoice(3, inclusive, currency="GBP", customer=buyer))
    drain(hub)
    assert zoho_emulator.request_count(org, "GET", "/items") == lookups
    assert find_task(hub, conn.id, "inv-3").status == TaskStatus.DONE

    jconn, jorg = zoho_connection(hub, zoho_emulator, tenant="t2", currency="JPY",
                                  org_settings={"edition": "global", "country": "Japan"})
    zoho_emulator.add_tax(jorg, "Consumption Tax", 10)
    yen = [{"description": "Seats", "quantity": "3", "unit_price": "1234.5", "tax_rate": "10"}]
    hub.submit_invoice("t2", "prod", invoice(7, yen, currency="JPY"))
    drain(hub)
    theirs = zoho_invoice(zoho_emulator, jorg, "INV-7")
    assert Decimal(str(theirs["total"])) == invoice(7, yen, currency="JPY").total == Decimal("4074")
    assert find_task(hub, jconn.id, "inv-7").status == TaskStatus.DONE


def test_total_mismatch_shows_both_totals(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator, currency="GBP", edition="uk", org_settings={"edition": "uk"})
    zoho_emulator.add_tax(org, "Standard", "17.5")  # Zoho's tax named like ours but with another rate
    lines = [{"description": "Seat", "amount": "100.00", "tax_rate": "20", "tax_code": "Standard"}]
    hub.submit_invoice("t1", "prod", invoice(1, lines, currency="GBP"))
    drain(hub)
    task = find_task(hub, conn.id, "inv-1")
    assert task.status == TaskStatus.FAILED
    assert "117.50" in (task.last_error or "") and "120.00" in (task.last_error or "")


def test_custom_fields_and_changed_email_updates_contact_once(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator, invoice_custom_fields="service_start=cf_service_start",
                                contact_custom_fields="subscription_id=cf_subscription")
    zoho_emulator.add_custom_field(org, "invoice", "cf_service_start", "Service start", "date")
    zoho_emulator.add_custom_field(org, "contact", "cf_subscription", "Subscription")
    ada = {"id": "cust-ada", "name": "Ada Lovelace", "email": "ada@example.com", "metadata": {"subscription_id": "s1"}}
    line = [{"description": "Plan", "amount": "10.00"}]
    hub.submit_invoice("t1", "prod", invoice(1, line, customer=ada, metadata={"service_start": "2026-01-01",
                                                                              "internal": "not mapped"}))
    drain(hub)
    first = zoho_invoice(zoho_emulator, org, "INV-1")
    assert [(f["api_name"], f["value"]) for f in first["custom_fields"]] == [("cf_service_start", "2026-01-01")]
    [contact] = zoho_emulator.contacts(org)
    assert [(f["api_name"], f["value"]) for f in contact["custom_fields"]] == [("cf_subscription", "s1")]
    hub.submit_invoice("t1", "prod", invoice(2, line, customer=ada))
    drain(hub)
    assert zoho_emulator.request_count(org, "PUT", "/contacts/{contact_id}") == 0  # unchanged: no update
    moved = {**ada, "email": "ada@new.example"}
    for n in (3, 4):
        hub.submit_invoice("t1", "prod", invoice(n, line, customer=moved))
    drain(hub)
    assert zoho_emulator.request_count(org, "PUT", "/contacts/{contact_id}") == 1  # once, not per invoice
    [contact] = zoho_emulator.contacts(org)
    assert contact["email"] == "ada@new.example"
    assert all(i["customer_id"] == contact["contact_id"] for i in zoho_emulator.invoices(org))
    assert all(find_task(hub, conn.id, f"inv-{n}").status == TaskStatus.DONE for n in (1, 2, 3, 4))


def test_duplicate_number_adopted_whatever_the_error_code(hub: Hub, zoho_emulator: Any) -> None:
    conn, org = zoho_connection(hub, zoho_emulator)
    zoho_emulator.configure_organization(org, duplicate_number_code=4097)  # an undocumented code
    line = [{"description": "Plan", "amount": "10.00"}]
    # the invoice already exists in Zoho with our reference (a create whose answer was lost)
    contact, _ = zoho_emulator.create_contact(org, "Ada Lovelace", email="ada@example.com")
    zoho_emulator.create_invoice(org, contact["contact_id"], [{"name": "Plan", "rate": "10.00", "quantity": 1}],
                                 invoice_number="INV-1", reference_number="inv-1")
    # and another invoice of ours whose number is taken by someone else's invoice
    zoho_emulator.create_invoice(org, contact["contact_id"], [{"name": "X", "rate": "1", "quantity": 1}],
                                 invoice_number="INV-2", reference_number="not-ours")
    hub.submit_invoice("t1", "prod", invoice(1, line))
    hub.submit_invoice("t1", "prod", invoice(2, line))
    drain(hub)
    adopted = find_task(hub, conn.id, "inv-1")
    assert adopted.status == TaskStatus.DONE and adopted.remote_id == zoho_invoice(zoho_emulator, org, "INV-1")[
        "invoice_id"]
    clash = find_task(hub, conn.id, "inv-2")
    assert clash.status == TaskStatus.FAILED and "already has invoice number INV-2" in (clash.last_error or "")
    assert len(zoho_emulator.invoices(org)) == 2
