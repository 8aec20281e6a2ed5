"""Intuit's webhooks (QUICKBOOKS.md §7): one endpoint per app for every connected company, thin events,
signed with the app's verifier token, in the classic ``eventNotifications`` shape or as CloudEvents.

Delivery is explicit (``deliver``), so tests decide when Intuit "sends": a non-200 answer or no answer
within ``timeout`` (§7: 3 s) is a failure, and later events are held back until it is acknowledged (§7
"Until the failed event is acknowledged, later events are held back").
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from .state import Change

SIGNATURE_HEADER = "intuit-signature"
VERBS = {"Create": "created", "Update": "updated", "Delete": "deleted", "Merge": "merged", "Void": "voided",
         "Emailed": "emailed"}  # §7 CloudEvents type verbs (``emailed`` [U])
WEBHOOK_ENTITIES = ("Customer", "Item", "Invoice", "Payment", "Account")


def sign(verifier_token: str, body: bytes) -> str:
    """§7 Signature: base64(HMAC-SHA256(key = verifier token, msg = raw body))."""
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class PendingEvent:
    realm_id: str
    change: Change
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def when(self) -> str:
        return dt.datetime.fromtimestamp(self.change.at, dt.UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")


@dataclass
class Delivery:
    url: str
    body: bytes
    signature: str
    status: int
    error: str | None = None
    events: int = 0


@dataclass
class AppWebhook:
    client_id: str
    url: str
    verifier_token: str
    format: str = "classic"  # or "cloudevents" (§7: a per-app switch)
    pending: list[PendingEvent] = field(default_factory=list)


def classic_body(events: list[PendingEvent]) -> bytes:
    """§7 classic payload: one ``eventNotifications`` entry per realm (sent one realm at a time)."""
    realm = events[0].realm_id
    entities: list[dict[str, Any]] = []
    for e in events:
        entity = {"name": e.change.entity, "id": e.change.entity_id, "operation": e.change.operation,
                  "lastUpdated": e.when}
        entities.append(entity)
    return json.dumps({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": entities}}]}).encode()


def _opaque(client_id: str) -> str:
    """§7: ``source`` is ``intuit.<opaque app-specific string>``."""
    return hashlib.sha256(client_id.encode()).hexdigest()[:12]


def cloudevents_body(events: list[PendingEvent], client_id: str) -> bytes:
    """§7 CloudEvents payload: a JSON array, one element per event; ids and types only, ``data`` empty."""
    return json.dumps([
        {"specversion": "1.0", "id": e.event_id, "source": f"intuit.{_opaque(client_id)}",
         "type": f"qbo.{e.change.entity.lower()}.{VERBS.get(e.change.operation, 'updated')}.v1",
         "datacontenttype": "application/json", "time": e.when, "intuitentityid": e.change.entity_id,
         "intuitaccountid": e.realm_id, "data": {}}
        for e in events]).encode()


class WebhookSender:
    def __init__(self, live_apps: Any) -> None:
        self.lock: threading.RLock = threading.RLock()
        self.apps: dict[str, AppWebhook] = {}
        self.live_apps = live_apps  # realm_id -> set of client ids with a live grant
        self.log: list[Delivery] = []
        self.timeout = 3.0  # §7: answer within 3 seconds

    def configure(self, client_id: str, url: str, verifier_token: str, fmt: str = "classic") -> None:
        if fmt not in ("classic", "cloudevents"):
            raise ValueError("format must be classic or cloudevents")
        with self.lock:
            old = self.apps.get(client_id)
            app = AppWebhook(client_id, url, verifier_token, fmt)
            if old is not None:
                app.pending = old.pending
            self.apps[client_id] = app

    def on_change(self, realm_id: str, change: Change) -> None:
        if change.entity not in WEBHOOK_ENTITIES:
            return
        with self.lock:
            live = self.live_apps(realm_id)
            for app in self.apps.values():
                if app.client_id in live:
                    app.pending.append(PendingEvent(realm_id, change))

    def pending(self, client_id: str) -> int:
        with self.lock:
            app = self.apps.get(client_id)
            return len(app.pending) if app else 0

    def drop_pending(self, client_id: str) -> int:
        """Forget queued events (a missed webhook, for reconciliation tests)."""
        with self.lock:
            app = self.apps.get(client_id)
            if app is None:
                return 0
            n = len(app.pending)
            app.pending.clear()
            return n

    def deliver(self, client_id: str | None = None) -> list[Delivery]:
        """Send what is queued, in order; stop at the first failure (it stays queued with what follows)."""
        out: list[Delivery] = []
        with self.lock:
            apps = [self.apps[client_id]] if client_id else list(self.apps.values())
        for app in apps:
            while True:
                with self.lock:
                    if not app.pending:
                        break
                    if app.format == "classic":
                        realm = app.pending[0].realm_id
                        batch = []
                        for e in app.pending:
                            if e.realm_id != realm:
                                break
                            batch.append(e)
                        body = classic_body(batch)
                    else:
                        batch = list(app.pending)
                        body = cloudevents_body(batch, app.client_id)
                delivery = self.post(app.url, body, app.verifier_token)
                delivery.events = len(batch)
                out.append(delivery)
                if delivery.status != 200:
                    break
                with self.lock:
                    del app.pending[:len(batch)]
        return out

    def post(self, url: str, body: bytes, verifier_token: str, signature: str | None = None) -> Delivery:
        """POST ``body`` signed with ``verifier_token`` (or with the given ``signature``, for tampering tests)."""
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s): {url!r}")
        sig = signature if signature is not None else sign(verifier_token, body)
        request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
            "Content-Type": "application/json", SIGNATURE_HEADER: sig, "User-Agent": "Intuit-Webhooks-Emulator"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 - scheme checked
                answer.read()
                delivery = Delivery(url, body, sig, answer.status)
        except urllib.error.HTTPError as err:
            delivery = Delivery(url, body, sig, err.code, str(err))
        except (urllib.error.URLError, OSError) as err:
            delivery = Delivery(url, body, sig, 0, str(err))
        with self.lock:
            self.log.append(delivery)
        return delivery
