"""Hub.handle_webhook directly: body forms, provider-level calls, and the cached connection context
following every change of the connection (new webhook secret, disabled, settings)."""

from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa

from integration_core.hub import Hub
from integration_core.models import SyncSettings
from integration_core.providers.ledger import SIGNATURE_HEADER, sign
from integration_core.store.schema import inbox_events, provider_configs, utcnow

from .test_inbound_support import LedgerSetup, RecordingHost, ledger_connection


@pytest.fixture
def host(hub: Hub) -> RecordingHost:
    h = RecordingHost()
    hub.plugins.set_host(h)
    return h


@pytest.fixture
def acme(hub: Hub, host: RecordingHost) -> LedgerSetup:
    return ledger_connection(hub, "acme", "prod")


def paid(setup: LedgerSetup, payment: str, secret: str | None = None) -> tuple[bytes, dict[str, str]]:
    data = {"invoice_id": setup.remote_invoice, "amount": "10.00", "currency": "USD", "paid_on": "2026-01-15",
            "payment_id": payment}
    body = json.dumps({"type": "invoice.paid", "data": data}).encode()
    return body, {SIGNATURE_HEADER: sign(secret or setup.secret, body), "Content-Type": "application/json"}


def deliver(hub: Hub, setup: LedgerSetup, payment: str, secret: str | None = None) -> int:
    body, headers = paid(setup, payment, secret)
    return hub.handle_webhook("ledger", "acme", "prod", headers=headers, body=body).status


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size: int | None = -1, /) -> bytes:
        piece = super().read(size)
        self.read_bytes += len(piece)
        return piece


def test_body_as_bytes_stream_or_reader_and_the_answer(hub: Hub, acme: LedgerSetup, host: RecordingHost) -> None:
    body, headers = paid(acme, "P-1")
    answer = hub.handle_webhook("ledger", "acme", "prod", headers=headers, body=body)
    assert answer.status == 200 and answer.status_line == "200 OK"
    assert answer.content_type == "application/json" and ("Cache-Control", "no-store") in answer.headers
    assert answer.json() == {"status": "ok", "events": 1, "applied": 1, "ignored": 0, "failed": 0, "duplicates": 0}
    body2, headers2 = paid(acme, "P-2")
    stream = CountingStream(body2)
    assert hub.handle_webhook("ledger", "acme", "prod", headers=list(headers2.items()), body=stream).status == 200
    assert stream.read_bytes == len(body2)
    body3, headers3 = paid(acme, "P-3")
    seen: list[int] = []
    reader = lambda limit: (seen.append(limit), body3)[1]  # noqa: E731
    assert hub.handle_webhook("ledger", "acme", "prod", headers=headers3, body=reader).status == 200
    assert seen == [hub.config.max_webhook_bytes]
    assert sorted(host.payments) == ["payment:P-1", "payment:P-2", "payment:P-3"]


def test_refusals_in_order(hub: Hub, acme: LedgerSetup) -> None:
    body, headers = paid(acme, "P-9")
    stream = CountingStream(body)
    assert hub.handle_webhook("ledger", "nobody", "prod", headers=headers, body=stream).status == 404
    assert stream.read_bytes == 0  # no connection: the body is never read
    assert hub.handle_webhook("ledger", "acme", "prod", method="GET", body=body).status == 405
    assert hub.handle_webhook("ledger", "acme", "prod", method="GET").headers[-1] == ("Allow", "POST")
    assert hub.handle_webhook("ledger", "ac/me", "prod", headers=headers, body=body).status == 404
    assert hub.handle_webhook("ledger", headers=headers, body=body).status == 404  # provider-level: none yet
    big = CountingStream(b"x" * (hub.config.max_webhook_bytes + 10))
    too_long = {**headers, "Content-Length": str(hub.config.max_webhook_bytes + 10)}
    assert hub.handle_webhook("ledger", "acme", "prod", headers=too_long, body=big).status == 413
    assert big.read_bytes == 0  # refused from Content-Length, unread
    unannounced = CountingStream(b"x" * (hub.config.max_webhook_bytes * 3))
    assert hub.handle_webhook("ledger", "acme", "prod", headers=headers, body=unannounced).status == 413
    assert unannounced.read_bytes == hub.config.max_webhook_bytes + 1
    assert hub.handle_webhook("ledger", "acme", "prod", headers={}, body=body).status == 401
    bad = b"{not json"
    assert hub.handle_webhook("ledger", "acme", "prod", body=bad,
                              headers={SIGNATURE_HEADER: sign(acme.secret, bad)}).status == 400
    with hub.engine.connect() as db:
        assert db.execute(sa.select(sa.func.count()).select_from(inbox_events)).scalar_one() == 0


def test_a_new_webhook_secret_takes_effect_at_once(hub: Hub, acme: LedgerSetup, host: RecordingHost) -> None:
    assert deliver(hub, acme, "P-1") == 200  # the context is cached now
    new_secret = "whsec-rotated-0123456789"
    hub.update_connection(acme.conn.id, values={"webhook_secret": new_secret})
    assert deliver(hub, acme, "P-2", secret=new_secret) == 200  # refused by the cached secret, then re-read
    assert deliver(hub, acme, "P-3", secret=acme.secret) == 401  # the old secret no longer opens it
    assert sorted(host.payments) == ["payment:P-1", "payment:P-2"]


def test_a_disabled_connection_is_404_even_when_cached(hub: Hub, acme: LedgerSetup, host: RecordingHost) -> None:
    assert deliver(hub, acme, "P-1") == 200
    hub.disable(acme.conn.id)
    assert deliver(hub, acme, "P-2") == 404
    assert deliver(hub, acme, "P-3", secret="whsec-forged-0000000") == 404
    hub.enable(acme.conn.id)
    assert deliver(hub, acme, "P-4") == 200
    assert sorted(host.payments) == ["payment:P-1", "payment:P-4"]


def test_a_settings_change_is_seen_by_the_next_delivery(hub: Hub, acme: LedgerSetup, host: RecordingHost) -> None:
    assert deliver(hub, acme, "P-1") == 200
    hub.update_connection(acme.conn.id, sync=SyncSettings(customers_inbound=False))
    body = json.dumps({"type": "contact.created",
                       "data": {"contact_id": "C-7", "name": "Grace", "email": "grace@example.com"}}).encode()
    answer = hub.handle_webhook("ledger", "acme", "prod", body=body,
                                headers={SIGNATURE_HEADER: sign(acme.secret, body)})
    assert answer.status == 200 and answer.json()["ignored"] == 1
    with hub.engine.connect() as db:
        reason = db.execute(sa.select(inbox_events.c.reason).where(inbox_events.c.kind == "customer_created"))
        assert reason.scalar_one() == "customer inbound sync is off"
    assert host.customers == {}


def test_oauth_callback_without_code_is_a_page(hub: Hub) -> None:
    answer = hub.handle_oauth_callback("state=abc")
    assert answer.status == 400 and answer.content_type.startswith("text/html")
    assert b"code and state" in answer.body
    denied = hub.handle_oauth_callback({"error": "access_denied"})
    assert denied.status == 400 and b"access_denied" in denied.body
    unknown = hub.handle_oauth_callback(b"state=nope&code=xyz")
    assert unknown.status == 400 and b"Authorization failed" in unknown.body


def test_the_cached_context_is_read_again_after_a_change_and_only_then(hub: Hub, acme: LedgerSetup,
                                                                        host: RecordingHost) -> None:
    """The storing insert itself checks the cached context against the rows (no statement of its own): a
    change made elsewhere is caught there, and an unchanged connection is never read again."""
    key = ("ledger", "acme", "prod")
    assert deliver(hub, acme, "P-1") == 200
    first = hub.entry._contexts[key]
    for n in (2, 3, 4):
        assert deliver(hub, acme, f"P-{n}") == 200
    assert hub.entry._contexts[key] is first  # the guard held every time: no re-read
    hub.update_connection(acme.conn.id, name="acme books, renamed")
    assert deliver(hub, acme, "P-5") == 200
    second = hub.entry._contexts[key]
    assert second is not first and second[1].record.name == "acme books, renamed"
    with hub.engine.begin() as db:  # a provider-level setting, as another process writes it
        db.execute(provider_configs.insert().values(provider="ledger", settings={"note": "x"}, updated_at=utcnow()))
    assert deliver(hub, acme, "P-6") == 200
    third = hub.entry._contexts[key]
    assert third is not second
    assert deliver(hub, acme, "P-7") == 200
    assert hub.entry._contexts[key] is third
    assert sorted(host.payments) == [f"payment:P-{n}" for n in range(1, 8)]  # each stored and applied once
    with hub.engine.connect() as db:
        assert db.execute(sa.select(sa.func.count()).select_from(inbox_events)).scalar_one() == 7
