"""Bad invoices are refused with the field named, before anything is queued (issue 12, bugs 2 and 3)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from integration_core.backfill import backfill, parse_line
from integration_core.cli import main
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.models import Invoice
from tests.workers.helpers import add_connection, tasks


def data(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "inv-1",
        "number": "INV-1",
        "customer": {"id": "cust-1", "name": "Ada", "email": "ada@example.com"},
        "currency": "USD",
        "issue_date": "2026-01-10",
        "lines": [{"description": "Plan", "amount": "12.50"}],
    }
    base.update(kw)
    return base


def refused(payload: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as info:
        parse_line(json.dumps(payload))
    return str(info.value)


@pytest.mark.parametrize("field", ["id", "number"])
def test_null_or_empty_invoice_ids_are_refused_with_the_field_named(field: str) -> None:
    """Bug 2: JSON null became the string "None", so all such invoices shared one idempotency key."""
    assert f"invoice {field} is required" in refused(data(**{field: None}))
    assert f"invoice {field} must not be empty" in refused(data(**{field: "  "}))


def test_null_customer_id_is_refused() -> None:
    customer = {"id": None, "name": "Ada"}
    assert "customer id is required" in refused(data(customer=customer))
    assert "customer name is required" in refused(data(customer={"id": "c1", "name": None}))
    # an integer id is still taken as its text
    assert parse_line(json.dumps(data(customer={"id": 7, "name": "Ada"}))).customer.id == "7"


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("1_000", "plain decimal"),
        (" 12.50 ", "plain decimal"),
        ("NaN", "plain decimal"),
        ("Infinity", "plain decimal"),
        ("1e3", "plain decimal"),
        ("0.0000001", "more than 2 decimal place"),
        (True, "not True"),
        (None, "needs an amount"),
    ],
)
def test_oddly_written_or_over_precise_amounts_are_refused(amount: Any, reason: str) -> None:
    """Bug 3: these were accepted and pushed; ``true`` gave ``[<class 'decimal.ConversionSyntax'>]``."""
    message = refused(data(lines=[{"description": "Plan", "amount": amount}]))
    assert reason in message
    assert "ConversionSyntax" not in message


def test_sign_rules_credit_lines_yes_non_positive_totals_no() -> None:
    credit = parse_line(
        json.dumps(data(lines=[{"description": "Plan", "amount": "100"}, {"description": "Credit", "amount": "-20"}]))
    )
    assert credit.total == Decimal("80")
    assert "total must be greater than zero" in refused(data(lines=[{"description": "Free", "amount": "0"}]))
    assert "total must be greater than zero" in refused(data(lines=[{"description": "Refund", "amount": "-5"}]))
    # the currency's own precision: JPY has none, KWD three
    assert "more than 0 decimal place" in refused(data(currency="JPY", lines=[{"description": "x", "amount": "1.5"}]))
    assert parse_line(json.dumps(data(currency="KWD", lines=[{"description": "x", "amount": "1.125"}]))).total


@pytest.mark.parametrize("code", ["ÄÖÜ", "ABC", "US", "usdd", "XXX", "\uff11\uff12\uff13"])
def test_currency_must_be_on_the_iso_4217_list(code: str) -> None:
    assert "ISO 4217" in refused(data(currency=code))


def test_lower_case_currency_is_normalized() -> None:
    assert parse_line(json.dumps(data(currency=" eur "))).currency == "EUR"


@pytest.mark.parametrize("address", ["not an email", "ada@", "ada\n@example.com", "a\x00da@example.com"])
def test_bad_email_addresses_are_refused(address: str) -> None:
    assert "email" in refused(data(customer={"id": "c1", "name": "Ada", "email": address}))


def test_control_characters_in_names_are_refused_descriptions_may_break_lines() -> None:
    assert "control characters" in refused(data(customer={"id": "c1", "name": "Ada\x1b[31m"}))
    ok = parse_line(json.dumps(data(lines=[{"description": "Plan\nJanuary", "amount": "1"}])))
    assert ok.lines[0].description == "Plan\nJanuary"


def test_valid_invoices_round_trip() -> None:
    invoice = Invoice.from_dict(data())
    assert Invoice.from_dict(invoice.to_dict()) == invoice
    assert invoice.customer.email == "ada@example.com"


def test_backfill_skips_a_byte_order_mark_on_the_first_line(hub: Hub, tmp_path: Path) -> None:
    conn, _ = add_connection(hub)
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(data()).encode() + b"\n")
    with path.open("rb") as fh:
        report = backfill(hub, fh, "t1", "prod")
    assert report.bad == [] and report.outcomes["queued"] == 1
    assert len(tasks(hub, conn.id)) == 1


def test_backfill_for_a_tenant_with_no_connection_says_so_and_fails(config: Config, tmp_path: Path) -> None:
    Hub(config).engine.dispose()
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(data()) + "\n")
    env = {"IC_DATABASE_URL": config.database_url, "IC_KEY_FILE": config.key_file}
    args = ["invoices", "backfill", str(path), "--tenant", "nobody", "--environment", "prod", "--quiet"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1, result.output
    assert "no connection" in result.output
    allowed = CliRunner().invoke(main, [*args, "--allow-no-connection"], env=env)
    assert allowed.exit_code == 0, allowed.output
