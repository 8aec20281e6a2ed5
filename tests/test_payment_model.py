"""The Payment value: clear errors on bad input, exact money, JSON round trip; submissions refuse the wrong types."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from integration_core.hub import Hub
from integration_core.models import Payment
from integration_core.outbox import SubmitOutcome
from tests.workers.helpers import add_connection

GOOD = {"id": "pay-1", "invoice_id": "inv-1", "amount": "12.50", "currency": "eur", "paid_on": "2026-01-20",
        "method": " card ", "reference": ""}


def test_round_trip_and_normalization() -> None:
    payment = Payment.from_dict(GOOD)
    assert payment.amount == Decimal("12.50") and payment.currency == "EUR"
    assert payment.paid_on == dt.date(2026, 1, 20) and payment.method == "card" and payment.reference is None
    assert Payment.from_dict(payment.to_dict()) == payment


@pytest.mark.parametrize(("change", "error", "words"), [
    ({"amount": "0"}, ValueError, "greater than zero"),
    ({"amount": "-5"}, ValueError, "greater than zero"),
    ({"amount": 12.5}, TypeError, "not a float"),
    ({"amount": "NaN"}, ValueError, "amount"),
    ({"currency": "EURO"}, ValueError, "currency"),
    ({"paid_on": "20/01/2026"}, ValueError, "Invalid isoformat"),
    ({"id": ""}, KeyError, "needs id"),
    ({"invoice_id": None}, KeyError, "invoice_id"),
    ({"id": "   "}, ValueError, "empty"),
])
def test_bad_input_gets_a_clear_error(change: dict, error: type, words: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=words):
        Payment.from_dict({**GOOD, **change})


def test_submissions_check_their_input_and_are_idempotent(hub: Hub) -> None:
    add_connection(hub, "faulty")
    with pytest.raises(TypeError, match=r"models\.Payment"):
        hub.submit_payment("t1", "prod", GOOD)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="id of an invoice"):
        hub.submit_void("t1", "prod", " ")
    payment = Payment.from_dict(GOOD)
    assert [o.outcome for o in hub.submit_payment("t1", "prod", payment).outcomes] == [SubmitOutcome.QUEUED]
    assert [o.outcome for o in hub.submit_payment("t1", "prod", payment).outcomes] == [SubmitOutcome.UNCHANGED]
    corrected = Payment.from_dict({**GOOD, "amount": "12.05"})
    assert [o.outcome for o in hub.submit_payment("t1", "prod", corrected).outcomes] == [SubmitOutcome.UPDATED]
