"""Webhook signature (Zoho's test vectors) and payload parsing, without any server."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zoho_books import webhooks

from integration_core.errors import WebhookRejected
from integration_core.models import CustomerCreated, Ignored, InvoicePaid, InvoiceVoided, WebhookRequest

SECRET = "abcdefghijkl1234"
VECTOR1_BODY = b'{"created_date":"2019-03-06","event_id":"5675"}'
VECTOR1_QUERY = "subscription_id=90343&name=basic"
VECTOR1_SIG = "03c4d74908f02a62e754f36031c1f0b6f872d51355768acc9ba90b34ce7b06bb"
VECTOR2_BODY = b'{"invoice":{"invoice_id":"460000000012345","status":"paid"}}'
VECTOR2_SIG = "f07a192e8522dbca22c56c35a5b87e39160d470481f4b11fef683384ffea872c"


def request(body: bytes, signature: str | None = None, query: str = "", form: dict | None = None,
            content_type: str = "application/json") -> WebhookRequest:
    headers = {"content-type": content_type}
    if signature is not None:
        headers["x-zoho-webhook-signature"] = signature
    return WebhookRequest(method="POST", path="/v1/webhooks/zoho_books/t/e", query=parse_qs(query),
                          headers=headers, body=body, form=form or {})


def test_vector_with_query_parameters() -> None:
    req = request(VECTOR1_BODY, VECTOR1_SIG, VECTOR1_QUERY)
    assert webhooks.signature_message(req.query, req.form, req.body) == (
        b'namebasicsubscription_id90343{"created_date":"2019-03-06","event_id":"5675"}')
    assert webhooks.verify(SECRET, req)


def test_vector_without_query() -> None:
    assert webhooks.verify(SECRET, request(VECTOR2_BODY, VECTOR2_SIG))


@pytest.mark.parametrize("mutate", [
    lambda r: request(VECTOR2_BODY + b" ", VECTOR2_SIG),  # tampered body
    lambda r: request(VECTOR2_BODY.replace(b"paid", b"void"), VECTOR2_SIG),
    lambda r: request(VECTOR1_BODY, VECTOR1_SIG, "subscription_id=90344&name=basic"),  # tampered query
    lambda r: request(VECTOR1_BODY, VECTOR1_SIG),  # query dropped
    lambda r: request(VECTOR2_BODY),  # missing header
    lambda r: request(VECTOR2_BODY, ""),
    lambda r: request(VECTOR2_BODY, VECTOR2_SIG.upper()),  # other encodings of the right MAC
    lambda r: request(VECTOR2_BODY, base64.b64encode(bytes.fromhex(VECTOR2_SIG)).decode()),
    lambda r: request(VECTOR2_BODY, "sha256=" + VECTOR2_SIG),
    lambda r: request(VECTOR2_BODY, "é" * 64),
])
def test_rejections(mutate) -> None:
    assert not webhooks.verify(SECRET, mutate(None))


def test_wrong_or_missing_secret() -> None:
    req = request(VECTOR2_BODY, VECTOR2_SIG)
    assert not webhooks.verify("abcdefghijkl1235", req)
    assert not webhooks.verify(None, req)
    assert not webhooks.verify("", req)


def test_form_parameters_are_signed() -> None:
    form = {"JSONString": ['{"invoice":{"invoice_id":"1","status":"void"}}'], "a": ["x"]}
    body = b"a=x&JSONString=%7B%7D"
    expected = hmac.new(SECRET.encode(), b"JSONString" + form["JSONString"][0].encode() + b"ax" + body,
                        hashlib.sha256).hexdigest()
    assert webhooks.verify(SECRET, request(body, expected, form=form, content_type="application/x-www-form-urlencoded"))


@pytest.mark.parametrize(("secret", "ok"), [
    ("abcdefghijkl1234", True), ("a" * 12, True), ("A1" * 25, True),
    ("short1234", False), ("a" * 51, False), ("abcdefghijkl-234", False), ("", False), (None, False),
])
def test_secret_rules(secret, ok) -> None:
    assert (webhooks.webhook_secret_problem(secret) is None) is ok


# --- parsing -----------------------------------------------------------------------------------------


def parse(doc: object, **kw) -> list:
    return webhooks.parse(request(json.dumps(doc).encode(), **kw))


def test_paid_invoice() -> None:
    [event] = parse({"invoice": {"invoice_id": 460000000012345, "status": "paid", "total": 1234.56,
                                 "payment_made": "1234.56", "currency_code": "eur",
                                 "last_payment_date": "2024-05-02", "date": "2024-04-01"}})
    assert isinstance(event, InvoicePaid)
    assert event.remote_invoice_id == "460000000012345"
    assert event.amount == Decimal("1234.56") and event.currency == "EUR"
    assert event.paid_on == dt.date(2024, 5, 2)
    assert event.dedupe_key == "invoice:460000000012345:paid:2024-05-02:1234.56"
    again = parse({"invoice": {"invoice_id": "460000000012345", "status": "paid", "total": "1234.56",
                               "payment_made": "1234.560", "currency_code": "EUR", "last_payment_date": "2024-05-02"}})
    assert again[0].dedupe_key == event.dedupe_key  # re-delivery, formatted differently


def test_paid_without_payment_date_uses_delivery_time_and_says_so() -> None:
    [event] = parse({"invoice": {"invoice_id": "9", "status": "paid", "total": "10", "date": "2024-04-01"}})
    assert event.paid_on == dt.datetime.now(dt.UTC).date() and event.currency is None
    assert event.paid_on_source == "delivery time"
    [again] = parse({"invoice": {"invoice_id": "9", "status": "paid", "total": "10", "date": "2024-04-01"}})
    assert again.dedupe_key == event.dedupe_key  # stable whatever the day of the redelivery


def test_void_partial_and_other_statuses() -> None:
    [void] = parse({"invoice": {"invoice_id": "9", "status": "void"}})
    assert isinstance(void, InvoiceVoided) and void.dedupe_key == "invoice:9:void"
    [partial] = parse({"invoice": {"invoice_id": "9", "status": "partially_paid", "payment_made": "5",
                                   "last_payment_date": "2024-05-01"}})
    assert isinstance(partial, Ignored) and "partially paid" in partial.reason
    [sent] = parse({"invoice": {"invoice_id": "9", "status": "sent", "last_modified_time": "2024-05-01T10:00:00"}})
    assert isinstance(sent, Ignored) and "sent" in sent.reason


def test_contacts() -> None:
    [created] = parse({"contact": {"contact_id": 77, "contact_name": "Acme", "contact_type": "customer",
                                   "email": "", "contact_persons": [
                                       {"email": "other@x.test", "is_primary_contact": False},
                                       {"email": "Billing@Acme.test", "is_primary_contact": True}]}})
    assert isinstance(created, CustomerCreated)
    assert (created.remote_customer_id, created.name, created.email) == ("77", "Acme", "Billing@Acme.test")
    assert created.dedupe_key == "contact:77:created"
    [top] = parse({"contact": {"contact_id": "78", "contact_name": "B", "email": "b@x.test"}})
    assert top.email == "b@x.test"
    [vendor] = parse({"contact": {"contact_id": "79", "contact_name": "V", "contact_type": "vendor"}})
    assert isinstance(vendor, Ignored) and vendor.reason == "contact 79 is a vendor, not a customer"


def test_form_encoded_and_raw_bodies() -> None:
    doc = '{"invoice":{"invoice_id":"5","status":"void"}}'
    [event] = webhooks.parse(request(b"JSONString=...", form={"JSONString": [doc]},
                                     content_type="application/x-www-form-urlencoded"))
    assert isinstance(event, InvoiceVoided)
    raw = "JSONString=" + doc.replace("{", "%7B").replace("}", "%7D").replace('"', "%22")
    [event] = webhooks.parse(request(raw.encode(), content_type="application/x-www-form-urlencoded"))
    assert isinstance(event, InvoiceVoided)
    [event] = webhooks.parse(request(doc.encode(), content_type="text/plain"))
    assert isinstance(event, InvoiceVoided)


def test_unknown_module_is_ignored() -> None:
    [event] = parse({"estimate": {"estimate_id": "1"}})
    assert isinstance(event, Ignored)


@pytest.mark.parametrize("body", [b"", b"not json", b"[1,2]", b'"x"', b'{"invoice":{"status":"paid"}}',
                                  b'{"invoice":{"invoice_id":"1","status":"paid"}}',
                                  b'{"contact":{"contact_name":"x"}}', b"\xff\xfe"])
def test_malformed_rejected_400(body: bytes) -> None:
    with pytest.raises(WebhookRejected) as info:
        webhooks.parse(request(body))
    assert info.value.status == 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["paid", "void", "partially_paid", "2024-05-01", "vendor", "customer", "NaN", "-1", "1e9"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
fields = st.fixed_dictionaries({}, optional={
    k: json_values for k in ("invoice_id", "contact_id", "status", "total", "payment_made", "currency_code",
                             "last_payment_date", "date", "contact_type", "contact_name", "email", "contact_persons")
})


@settings(max_examples=300, deadline=None)
@given(module=st.sampled_from(["invoice", "contact", None]), record=fields)
def test_parse_never_raises_anything_but_rejection(module, record) -> None:
    doc = {module: record} if module else record
    try:
        events = webhooks.parse(request(json.dumps(doc).encode()))
    except WebhookRejected as exc:
        assert exc.status == 400
    else:
        assert len(events) == 1 and events[0].dedupe_key
        assert events == webhooks.parse(request(json.dumps(doc).encode()))


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=64))
def test_parse_of_random_bytes(body: bytes) -> None:
    try:
        webhooks.parse(request(body))
    except WebhookRejected as exc:
        assert exc.status == 400
