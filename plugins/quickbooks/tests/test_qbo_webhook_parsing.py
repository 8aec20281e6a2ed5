"""Webhook signature and parsing without a server: tampering, both formats, and garbage never raising
anything but WebhookRejected (the dispatcher answers 400 for that, 500 for anything else)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quickbooks import webhooks

from integration_core.errors import WebhookRejected
from integration_core.models import WebhookRequest

CLASSIC = json.dumps({"eventNotifications": [{"realmId": "310687", "dataChangeEvent": {"entities": [
    {"name": "Invoice", "id": "145", "operation": "Create", "lastUpdated": "2025-09-08T20:52:31.657Z"},
    {"name": "Customer", "id": "9", "operation": "Merge", "lastUpdated": "2025-09-08T20:52:31.657Z",
     "deletedId": "7"}]}}]}).encode()
CLOUD = json.dumps([{"specversion": "1.0", "id": "88cd52aa-33b6-4351-9aa4-47572edbd068", "source": "intuit.abc",
                     "type": "qbo.invoice.voided.v1", "datacontenttype": "application/json",
                     "time": "2025-09-10T21:31:25.179Z", "intuitentityid": "145", "intuitaccountid": "310687",
                     "data": {}}]).encode()


def request(body: bytes, signature: str | None) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers[webhooks.SIGNATURE_HEADER] = signature
    return WebhookRequest("POST", "/v1/webhooks/quickbooks", {}, headers, body)


def test_signature_valid_tampered_wrong_token_missing() -> None:
    good = webhooks.signature("token-1", CLASSIC)
    assert webhooks.verify("token-1", request(CLASSIC, good))
    assert not webhooks.verify("token-1", request(CLASSIC.replace(b"145", b"146"), good))
    assert not webhooks.verify("token-2", request(CLASSIC, good))
    assert not webhooks.verify("token-1", request(CLASSIC, None))
    assert not webhooks.verify(None, request(CLASSIC, good))  # no token configured: never "verified"


def test_both_formats_parse_to_thin_notifications_with_stable_keys() -> None:
    classic = webhooks.parse_notifications(CLASSIC)
    assert [(n.realm_id, n.entity, n.entity_id, n.operation) for n in classic] == [
        ("310687", "Invoice", "145", "Create"), ("310687", "Customer", "9", "Merge")]
    assert classic[1].deleted_id == "7"
    assert webhooks.parse_notifications(CLASSIC)[0].dedupe_key == classic[0].dedupe_key
    cloud = webhooks.parse_notifications(CLOUD)
    assert [(n.realm_id, n.entity, n.entity_id, n.operation, n.event_id) for n in cloud] == [
        ("310687", "Invoice", "145", "Void", "88cd52aa-33b6-4351-9aa4-47572edbd068")]


@pytest.mark.parametrize("body", [b"", b"null", b"{}", b"[1]", b'{"eventNotifications": {}}',
                                  b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": []}]}',
                                  b'[{"specversion": "1.0", "type": "other.thing"}]', b"\xff\xfe"])
def test_malformed_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(WebhookRejected):
        webhooks.parse_notifications(body)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                                       max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries({"eventNotifications": json_values}),
                 st.lists(st.fixed_dictionaries({"specversion": st.just("1.0"), "type": json_values,
                                                 "intuitaccountid": json_values, "intuitentityid": json_values,
                                                 "id": json_values}), max_size=3)))
def test_garbage_raises_only_webhook_rejected(value: object) -> None:
    try:
        notes = webhooks.parse_notifications(json.dumps(value).encode())
    except WebhookRejected:
        return
    assert all(n.realm_id and n.entity_id for n in notes)
