"""Intuit webhooks (QUICKBOOKS.md §7): signature check and the two payload formats.

* Signature: header ``intuit-signature`` = base64(HMAC-SHA256(verifier token, raw body)), compared in
  constant time over the exact bytes received; a missing header or token fails (never skipped).
* Classic: ``{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [{name, id, operation,
  lastUpdated, deletedId?}]}}]}``.
* CloudEvents: a JSON array of ``{"specversion", "id", "type": "qbo.<entity>.<verb>.v1", "time",
  "intuitentityid", "intuitaccountid", "data"}``.

Both give thin :class:`Notification` values (ids only): the entity must be fetched to learn its state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import attrs

from integration_core.errors import WebhookRejected
from integration_core.models import WebhookRequest

SIGNATURE_HEADER = "intuit-signature"
OPERATIONS = {"created": "Create", "updated": "Update", "deleted": "Delete", "merged": "Merge", "voided": "Void",
              "emailed": "Emailed"}


def signature(verifier_token: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()).decode()


def verify(verifier_token: str | None, request: WebhookRequest) -> bool:
    given = request.header(SIGNATURE_HEADER)
    if not verifier_token or not given:
        return False
    return hmac.compare_digest(signature(verifier_token, request.body).encode(), given.strip().encode())


@attrs.frozen
class Notification:
    """One thin event: which entity of which company changed, how and when."""

    realm_id: str
    entity: str  # Invoice, Payment, Customer, ...
    entity_id: str
    operation: str  # Create, Update, Delete, Merge, Void, Emailed
    occurred_at: str
    event_id: str | None = None  # CloudEvents id
    deleted_id: str | None = None  # classic Merge

    @property
    def dedupe_key(self) -> str:
        """Stable across redeliveries of the same remote event (§7 "Deduplicate by ...")."""
        return (f"qbo:{self.realm_id}:{self.entity.lower()}:{self.entity_id}:{self.operation.lower()}:"
                f"{self.occurred_at}")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value).strip() == "":
        raise WebhookRejected(f"QuickBooks webhook: {what} is missing or not text")
    return str(value).strip()


def _classic(data: dict[str, Any]) -> list[Notification]:
    out: list[Notification] = []
    notifications = data.get("eventNotifications")
    if not isinstance(notifications, list):
        raise WebhookRejected("QuickBooks webhook: eventNotifications must be a list")
    for n in notifications:
        if not isinstance(n, dict):
            raise WebhookRejected("QuickBooks webhook: each notification must be an object")
        realm = _text(n.get("realmId"), "realmId")
        change = n.get("dataChangeEvent")
        if not isinstance(change, dict):
            raise WebhookRejected("QuickBooks webhook: dataChangeEvent must be an object")
        entities = change.get("entities")
        if not isinstance(entities, list):
            raise WebhookRejected("QuickBooks webhook: dataChangeEvent.entities must be a list")
        for e in entities:
            if not isinstance(e, dict):
                raise WebhookRejected("QuickBooks webhook: each entity must be an object")
            out.append(Notification(realm, _text(e.get("name"), "entity name"), _text(e.get("id"), "entity id"),
                                    _text(e.get("operation"), "operation"), str(e.get("lastUpdated") or ""),
                                    deleted_id=str(e["deletedId"]) if e.get("deletedId") else None))
    return out


def _cloudevents(data: list[Any]) -> list[Notification]:
    out: list[Notification] = []
    for e in data:
        if not isinstance(e, dict) or "specversion" not in e:
            raise WebhookRejected("QuickBooks webhook: each CloudEvent must be an object with specversion")
        kind = _text(e.get("type"), "type").split(".")
        if len(kind) < 3 or kind[0] != "qbo":
            raise WebhookRejected(f"QuickBooks webhook: unexpected CloudEvent type {e.get('type')!r}")
        entity = kind[1][:1].upper() + kind[1][1:]
        entity = {"Creditmemo": "CreditMemo", "Salesreceipt": "SalesReceipt"}.get(entity, entity)
        operation = OPERATIONS.get(kind[2], kind[2].capitalize())
        out.append(Notification(_text(e.get("intuitaccountid"), "intuitaccountid"), entity,
                                _text(e.get("intuitentityid"), "intuitentityid"), operation, str(e.get("time") or ""),
                                event_id=_text(e.get("id"), "id")))
    return out


def parse_notifications(body: bytes) -> list[Notification]:
    """Detect the format (§7: an array with ``specversion`` → CloudEvents; ``eventNotifications`` → classic)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("QuickBooks webhook: the body is not JSON") from None
    if isinstance(data, list):
        return _cloudevents(data)
    if isinstance(data, dict) and "eventNotifications" in data:
        return _classic(data)
    raise WebhookRejected("QuickBooks webhook: neither eventNotifications nor a CloudEvents array")
