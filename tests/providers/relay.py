"""A test provider whose webhooks are provider-level: one URL for every account (``POST /v1/webhooks/relay``).

The core's tests of provider-level routing use it without any real provider: deliveries are JSON
``{"events": [{"account": A, "id": ID, "name": N, "email": E}, ...]}`` (a remote customer created in account
A), signed with the provider-level secret ``signing_key`` (``X-Relay-Signature``: hex HMAC-SHA256 of the raw
body). A connection's account is its ``account`` setting (the ``account_key`` hook). Registered through
``IC_PROVIDERS`` (``relay=tests.providers.relay``) by the tests that use it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from integration_core.context import AppContext, ProviderContext
from integration_core.errors import WebhookRejected
from integration_core.hookspecs import hookimpl
from integration_core.models import CustomerCreated, Event, ProviderInfo, SettingField, WebhookRequest

NAME = "relay"
SIGNATURE_HEADER = "X-Relay-Signature"


def sign(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def delivery(key: str, *events: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """A signed delivery of ``events`` (each ``{"account", "id", "name", "email"}``): body and headers."""
    body = json.dumps({"events": list(events)}).encode()
    return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(key, body)}


def _events(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
        events = data["events"]
        if not isinstance(events, list) or not events or not all(isinstance(e, dict) and e.get("account")
                                                                   for e in events):
            raise ValueError("events")
    except (ValueError, KeyError, TypeError):
        raise WebhookRejected("relay webhook without events") from None
    return events


@hookimpl
def provider_info() -> ProviderInfo:
    return ProviderInfo(
        name=NAME, title="Relay (provider-level webhooks, tests)", version="1",
        fields=(SettingField("account", "the remote account this connection is for", required=False),),
        app_fields=(SettingField("signing_key", "the app's webhook signing key", secret=True),),
    )


@hookimpl
def account_key(settings: dict[str, Any]) -> str | None:
    return str(settings.get("account") or "").strip() or None


@hookimpl
def verify_webhook(ctx: ProviderContext, request: WebhookRequest) -> bool:
    return False  # no per-connection webhooks: everything comes to the provider-level URL


@hookimpl
def verify_app_webhook(app: AppContext, request: WebhookRequest) -> bool:
    key = app.secrets.get("signing_key")
    given = request.header(SIGNATURE_HEADER) or ""
    return bool(key) and hmac.compare_digest(sign(str(key), request.body), given)


@hookimpl
def route_webhook(app: AppContext, request: WebhookRequest) -> list[str]:
    return list(dict.fromkeys(str(e["account"]) for e in _events(request.body)))


@hookimpl
def parse_event(ctx: ProviderContext, request: WebhookRequest) -> list[Event]:
    mine = str(ctx.settings.get("account"))
    return [CustomerCreated(dedupe_key=f"customer:{e['id']}", remote_customer_id=str(e["id"]), name=str(e["name"]),
                            email=e.get("email")) for e in _events(request.body) if str(e["account"]) == mine]
