"""Contacts, invoices, currencies and the lost-response path through the provider hooks, on the emulator."""

from __future__ import annotations

from decimal import Decimal

import pytest
from zoho_books import plugin
from zoho_books.payloads import reference_for

from conftest import Zoho
from integration_core.errors import PermanentError, TransientError
from integration_core.models import Customer, Invoice, RemoteInvoice
from integration_core.plugins import Plugins


def customer(**kw) -> Customer:
    data = {"id": "cust_1", "name": "Ada Lovelace", "email": "ada@example.test"}
    data.update(kw)
    return Customer(**data)


def invoice(number: str = "INV-7", currency: str = "USD", inv_id: str | None = None, cust: Customer | None = None,
            amounts: tuple[str, ...] = ("100.10", "0.20", "19.99")) -> Invoice:
    return Invoice(id=inv_id or f"inv_{number}", number=number, customer=cust or customer(), currency=currency,
                   issue_date="2024-05-01", due_date="2024-05-31", notes="Thank you",
                   lines=[{"description": f"Line {i} " + "x" * (150 if i == 0 else 3), "amount": a}
                          for i, a in enumerate(amounts)])


# --- contacts ------------------------------------------------------------------------------------------


def test_contact_created_then_matched_by_email(zoho: Zoho) -> None:
    ctx = zoho.context()
    first = plugin.upsert_contact(ctx, customer(), "USD")
    [contact] = zoho.emulator.contacts(zoho.org_id)
    assert contact["contact_id"] == first and contact["email"] == "ada@example.test"
    assert contact["contact_type"] == "customer"
    again = plugin.upsert_contact(zoho.context(), customer(id="cust_other", name="Ada L."), "USD")
    assert again == first and len(zoho.emulator.contacts(zoho.org_id)) == 1


def test_email_match_ignores_vendors(zoho: Zoho) -> None:
    zoho.emulator.create_contact(zoho.org_id, "Supplier Ada", contact_type="vendor", email="ada@example.test")
    created = plugin.upsert_contact(zoho.context(), customer(), "USD")
    contacts = {c["contact_id"]: c for c in zoho.emulator.contacts(zoho.org_id)}
    assert contacts[created]["contact_type"] == "customer" and len(contacts) == 2


def test_name_clash_same_email_or_no_email_is_adopted(zoho: Zoho) -> None:
    existing, _ = zoho.emulator.create_contact(zoho.org_id, "Ada Lovelace")  # no email on file
    assert plugin.upsert_contact(zoho.context(), customer(), "USD") == existing["contact_id"]
    assert len(zoho.emulator.contacts(zoho.org_id)) == 1


def test_name_clash_other_email_is_disambiguated(zoho: Zoho) -> None:
    zoho.emulator.create_contact(zoho.org_id, "Ada Lovelace", email="someone.else@example.test")
    new_id = plugin.upsert_contact(zoho.context(), customer(), "USD")
    contacts = {c["contact_id"]: c for c in zoho.emulator.contacts(zoho.org_id)}
    assert contacts[new_id]["contact_name"] == "Ada Lovelace (ada@example.test)"
    assert zoho.count("POST", "/contacts") == 2  # one 3062, one create
    assert plugin.upsert_contact(zoho.context(), customer(), "USD") == new_id  # now found by email


def test_name_clash_with_vendor_uses_customer_id(zoho: Zoho) -> None:
    zoho.emulator.create_contact(zoho.org_id, "Ada Lovelace", contact_type="vendor")
    zoho.emulator.create_contact(zoho.org_id, "Ada Lovelace (ada@example.test)", email="x@example.test")
    new_id = plugin.upsert_contact(zoho.context(), customer(), "USD")
    contacts = {c["contact_id"]: c for c in zoho.emulator.contacts(zoho.org_id)}
    assert contacts[new_id]["contact_name"] == "Ada Lovelace [cust_1]"


def test_customer_without_email_matched_by_name_then_created(zoho: Zoho) -> None:
    nomail = customer(email=None, name="Walk-in")
    created = plugin.upsert_contact(zoho.context(), nomail, "USD")
    assert plugin.upsert_contact(zoho.context(), nomail, "USD") == created
    assert len(zoho.emulator.contacts(zoho.org_id)) == 1


# --- invoices ------------------------------------------------------------------------------------------


def test_push_invoice_lines_and_total(zoho: Zoho) -> None:
    inv = invoice()
    contact = plugin.upsert_contact(zoho.context(), inv.customer, inv.currency)
    remote = plugin.push_invoice(zoho.context(), inv, contact)
    assert remote == RemoteInvoice(remote_id=remote.remote_id, remote_number="INV-7", adopted=False)
    [stored] = zoho.emulator.invoices(zoho.org_id)
    assert Decimal(str(stored["total"])) == inv.total == Decimal("120.29")
    assert stored["reference_number"] == reference_for(inv.id) and stored["customer_id"] == contact
    assert stored["date"] == "2024-05-01" and stored["due_date"] == "2024-05-31" and stored["notes"] == "Thank you"
    lines = stored["line_items"]
    assert [Decimal(str(li["quantity"])) for li in lines] == [1, 1, 1]
    assert [Decimal(str(li["rate"])) for li in lines] == [line.amount for line in inv.lines]
    assert len(lines[0]["name"]) <= 100 and lines[0]["description"] == inv.lines[0].description


def test_zoho_numbering_when_local_numbers_off(zoho_factory) -> None:
    zoho: Zoho = zoho_factory(use_local_invoice_numbers="false")
    inv = invoice()
    remote = plugin.push_invoice(zoho.context(), inv, plugin.upsert_contact(zoho.context(), inv.customer, inv.currency))
    assert remote.remote_number and remote.remote_number != "INV-7"


def test_duplicate_number_adopts_only_our_own(zoho: Zoho) -> None:
    inv = invoice()
    contact = plugin.upsert_contact(zoho.context(), inv.customer, inv.currency)
    first = plugin.push_invoice(zoho.context(), inv, contact)
    again = plugin.push_invoice(zoho.context(), inv, contact)  # e.g. a retry after a lost response
    assert again.remote_id == first.remote_id and again.adopted
    other = invoice(inv_id="inv_someone_else")  # same number, other local invoice
    with pytest.raises(PermanentError, match="already has invoice number INV-7"):
        plugin.push_invoice(zoho.context(), other, contact)
    assert len(zoho.emulator.invoices(zoho.org_id)) == 1


def test_total_mismatch_is_permanent(zoho: Zoho) -> None:
    inv = invoice(amounts=("0.01",))
    # A snapshot queued before amounts were checked against the currency's precision: Zoho keeps cents.
    object.__setattr__(inv.lines[0], "amount", Decimal("0.005"))
    contact = plugin.upsert_contact(zoho.context(), inv.customer, inv.currency)
    with pytest.raises(PermanentError, match="total"):
        plugin.push_invoice(zoho.context(), inv, contact)


def test_foreign_currency_needs_zoho_currency(zoho: Zoho) -> None:
    inv = invoice(currency="EUR")
    with pytest.raises(PermanentError) as info:
        plugin.upsert_contact(zoho.context(), inv.customer, inv.currency)
    assert info.value.message == (
        f"Customer cust_1 is billed in EUR but Zoho Books organization {zoho.org_id} has no EUR currency. Add it "
        "under Settings → Currencies with a positive exchange rate, then retry the task.")
    assert zoho.emulator.contacts(zoho.org_id) == []
    zoho.emulator.add_currency(zoho.org_id, "EUR", "0")
    contact = plugin.upsert_contact(zoho.context(), inv.customer, inv.currency)
    with pytest.raises(PermanentError, match="no positive exchange rate for EUR"):
        plugin.push_invoice(zoho.context(), inv, contact)
    assert zoho.emulator.invoices(zoho.org_id) == []


def test_foreign_currency_added_later_is_picked_up(zoho: Zoho) -> None:
    inv = invoice(currency="EUR")
    with pytest.raises(PermanentError, match="no EUR currency"):
        plugin.upsert_contact(zoho.context(), inv.customer, inv.currency)
    zoho.emulator.add_currency(zoho.org_id, "EUR", "1.0850")  # the operator fixes it; cache still holds the miss
    contact = plugin.upsert_contact(zoho.context(), inv.customer, inv.currency)
    remote = plugin.push_invoice(zoho.context(), inv, contact)
    [stored] = zoho.emulator.invoices(zoho.org_id)
    assert stored["invoice_id"] == remote.remote_id and stored["currency_code"] == "EUR"
    assert Decimal(str(stored["exchange_rate"])) == Decimal("1.0850")
    [eur_contact] = zoho.emulator.contacts(zoho.org_id)
    assert eur_contact["currency_code"] == "EUR" and eur_contact["contact_name"] == "Ada Lovelace (EUR)"


def test_currencies_and_base_currency_are_cached(zoho: Zoho) -> None:
    zoho.emulator.add_currency(zoho.org_id, "EUR", "1.1")
    plugin.connect(zoho.context())  # learns the base currency
    contacts = {cur: plugin.upsert_contact(zoho.context(), customer(), cur) for cur in ("USD", "EUR")}
    assert contacts["USD"] != contacts["EUR"]
    for n in range(3):
        plugin.push_invoice(zoho.context(), invoice(number=f"E-{n}", currency="EUR"), contacts["EUR"])
        plugin.push_invoice(zoho.context(), invoice(number=f"U-{n}"), contacts["USD"])
    assert zoho.count("GET", "/settings/currencies") == 1
    assert zoho.count("GET", "/organizations/{organization_id}") == 1
    assert len(zoho.emulator.invoices(zoho.org_id)) == 6


def test_lost_response_then_find_adopts(zoho: Zoho) -> None:
    inv = invoice()
    contact = plugin.upsert_contact(zoho.context(), inv.customer, inv.currency)
    assert plugin.find_invoice(zoho.context(), inv) is None
    zoho.emulator.lose_next_response(method="POST", path_prefix="/invoices")
    with pytest.raises(TransientError) as info:
        plugin.push_invoice(zoho.context(), inv, contact)
    assert info.value.uncertain
    found = plugin.find_invoice(zoho.context(), inv)
    [stored] = zoho.emulator.invoices(zoho.org_id)
    assert found == RemoteInvoice(remote_id=stored["invoice_id"], remote_number="INV-7", adopted=True)


def test_find_invoice_with_long_id_and_zoho_numbers(zoho_factory) -> None:
    zoho: Zoho = zoho_factory(use_local_invoice_numbers=False)
    inv = invoice(inv_id="invoice-" + "9" * 80)
    contact = plugin.upsert_contact(zoho.context(), inv.customer, inv.currency)
    zoho.emulator.lose_next_response(method="POST", path_prefix="/invoices", as_error=True)
    with pytest.raises(TransientError):
        plugin.push_invoice(zoho.context(), inv, contact)
    found = plugin.find_invoice(zoho.context(), inv)
    assert found is not None and found.adopted
    assert len(zoho.emulator.invoices(zoho.org_id)) == 1
    other = invoice(inv_id="invoice-" + "9" * 79 + "8")
    assert plugin.find_invoice(zoho.context(), other) is None


def test_find_invoice_rejects_reference_of_another_customer(zoho: Zoho) -> None:
    inv = invoice()
    stranger, _ = zoho.emulator.create_contact(zoho.org_id, "Stranger", email="s@example.test")
    zoho.emulator.create_invoice(zoho.org_id, stranger["contact_id"], [{"name": "x", "rate": 1, "quantity": 1}],
                                 reference_number=reference_for(inv.id))
    with pytest.raises(PermanentError, match="another customer"):
        plugin.find_invoice(zoho.context(), inv)


def test_void_remote_invoice(zoho: Zoho) -> None:
    inv = invoice()
    remote = plugin.push_invoice(zoho.context(), inv, plugin.upsert_contact(zoho.context(), inv.customer, inv.currency))
    plugin.void_remote_invoice(zoho.context(), remote.remote_id)
    [stored] = zoho.emulator.invoices(zoho.org_id)
    assert stored["status"] == "void"


def test_hooks_through_the_plugin_manager(zoho: Zoho) -> None:
    provider = Plugins().provider("zoho_books")
    result = provider.connect(ctx=zoho.context())
    assert result.base_currency == "USD"
    contact = provider.upsert_contact(ctx=zoho.context(), customer=customer(), currency="USD")
    remote = provider.push_invoice(ctx=zoho.context(), invoice=invoice(), remote_contact_id=contact)
    assert provider.find_invoice(ctx=zoho.context(), invoice=invoice()).remote_id == remote.remote_id


def test_lost_response_in_another_currency_is_adopted(zoho: Zoho) -> None:
    zoho.emulator.add_currency(zoho.org_id, "EUR", "1.1")
    inv = invoice(currency="EUR")
    contact = plugin.upsert_contact(zoho.context(), inv.customer, inv.currency)  # "Ada Lovelace (EUR)"
    zoho.emulator.lose_next_response(method="POST", path_prefix="/invoices")
    with pytest.raises(TransientError):
        plugin.push_invoice(zoho.context(), inv, contact)
    found = plugin.find_invoice(zoho.context(), inv)
    [stored] = zoho.emulator.invoices(zoho.org_id)
    assert found is not None and found.remote_id == stored["invoice_id"]
    assert stored["customer_name"] == "Ada Lovelace (EUR)"
