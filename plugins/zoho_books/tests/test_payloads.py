"""Invoice and contact JSON: exact money, line mapping, the stable reference."""

from __future__ import annotations

import json
from decimal import Decimal

from zoho_books import payloads

from integration_core.models import Customer, Invoice


def invoice(**kw) -> Invoice:
    data = {"id": "inv_1", "number": "INV-7", "currency": "USD", "issue_date": "2024-05-01",
            "due_date": "2024-05-31", "notes": "Thanks",
            "customer": {"id": "c1", "name": "Ada Lovelace", "email": "ada@example.test"},
            "lines": [{"description": "Consulting " * 20, "amount": "0.10"}, {"description": "B", "amount": "0.20"}]}
    data.update(kw)
    return Invoice.from_dict(data)


def test_decimal_numbers_are_exact_json_numbers() -> None:
    text = payloads.dumps({"a": Decimal("0.10"), "b": [Decimal("1E+2"), Decimal("-3.000")], "s": "\x00x"})
    assert text == '{"a":0.10,"b":[100,-3.000],"s":"\\u0000x"}'
    assert payloads.loads(text)["a"] == Decimal("0.10")


def test_a_string_that_looks_like_the_marker_stays_a_string() -> None:
    text = payloads.dumps({"d": "\x00deadbeef:1.5", "n": Decimal("1.5")})
    assert json.loads(text)["d"] == "\x00deadbeef:1.5"


def test_invoice_lines() -> None:
    inv = invoice()
    body = payloads.invoice_payload(inv, "999")
    lines = body["line_items"]
    assert [line["quantity"] for line in lines] == [1, 1]
    assert [line["rate"] for line in lines] == [Decimal("0.10"), Decimal("0.20")]
    assert len(lines[0]["name"]) <= 100 and lines[0]["description"] == inv.lines[0].description
    assert body["reference_number"] == "inv_1" and body["invoice_number"] == "INV-7"
    assert body["customer_id"] == "999" and body["date"] == "2024-05-01" and body["due_date"] == "2024-05-31"
    assert body["notes"] == "Thanks" and "currency_id" not in body
    assert '"rate":0.10' in payloads.dumps(body)
    assert "invoice_number" not in payloads.invoice_payload(inv, "999", use_local_number=False)


def test_foreign_currency_fields() -> None:
    choice = payloads.CurrencyChoice("cur_1", "EUR", Decimal("1.0850"))
    body = payloads.invoice_payload(invoice(currency="EUR"), "1", currency=choice)
    assert body["currency_id"] == "cur_1" and body["exchange_rate"] == Decimal("1.0850")


def test_reference_is_stable_and_bounded() -> None:
    assert payloads.reference_for("inv_1") == "inv_1"
    long_id = "x" * 80
    ref = payloads.reference_for(long_id)
    assert ref == payloads.reference_for(long_id) and len(ref) <= 50 and ref.startswith("ic-")
    assert payloads.reference_for("a b") != "a b"  # unusual characters are hashed too
    assert payloads.reference_for("x" * 81) != ref


def test_contact_payload() -> None:
    customer = Customer(id="c1", name="Ada Lovelace", email="Ada@Example.test", company_name="Engines Ltd")
    body = payloads.contact_payload(customer)
    assert body["contact_name"] == "Ada Lovelace" and body["contact_type"] == "customer"
    assert body["company_name"] == "Engines Ltd"
    assert body["contact_persons"] == [{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.test",
                                        "is_primary_contact": True}]
    assert "contact_persons" not in payloads.contact_payload(Customer(id="c2", name="NoMail"))
    assert payloads.disambiguated_names(customer) == ["Ada Lovelace (ada@example.test)", "Ada Lovelace [c1]"]
