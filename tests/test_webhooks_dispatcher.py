"""The webhook dispatcher over real HTTP: every status code, dedupe, tenant isolation, host hooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests
import sqlalchemy as sa

from integration_core import mapping
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.server import RunningServer, running
from integration_core.store.schema import audit_log, inbox_events

from .test_inbound_support import LedgerSetup, RecordingHost, ledger_connection


@pytest.fixture
def host(hub: Hub) -> RecordingHost:
    h = RecordingHost()
    hub.plugins.set_host(h)
    return h


@pytest.fixture
def server(hub: Hub, host: RecordingHost) -> Iterator[RunningServer]:
    with running(hub) as srv:
        yield srv


@pytest.fixture
def acme(hub: Hub) -> LedgerSetup:
    return ledger_connection(hub, "acme", "prod")


def post(srv: RunningServer, path: str, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(srv.url + path, data=body, headers=headers or {}, timeout=10)


def inbox(hub: Hub) -> list[sa.Row]:
    with hub.engine.connect() as db:
        return list(db.execute(sa.select(inbox_events).order_by(inbox_events.c.id)))


def test_paid_webhook_records_one_payment_and_answers_200(hub: Hub, server: RunningServer, acme: LedgerSetup,
                                                           host: RecordingHost) -> None:
    body, headers = acme.book.pay(acme.secret, acme.remote_invoice)
    r = post(server, acme.path(), body, headers)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "events": 1, "applied": 1, "ignored": 0, "failed": 0, "duplicates": 0}
    assert len(host.payments) == 1
    (payment,) = host.payments.values()
    assert payment["invoice"] == acme.local_invoice and payment["amount"] == Decimal("120.00")
    (row,) = inbox(hub)
    assert (row.status, row.deliveries, row.kind) == ("applied", 1, "invoice_paid")
    assert row.applied_at is not None


def test_paid_webhook_delivered_five_times_records_one_payment(hub: Hub, server: RunningServer, acme: LedgerSetup,
                                                                host: RecordingHost) -> None:
    body, headers = acme.book.pay(acme.secret, acme.remote_invoice)
    answers = [post(server, acme.path(), body, headers) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["duplicates"] for a in answers] == [0, 1, 1, 1, 1]
    assert host.payment_calls == 1 and len(host.payments) == 1
    (row,) = inbox(hub)
    assert (row.status, row.deliveries) == ("applied", 5)


def test_concurrent_duplicate_deliveries_apply_once(hub: Hub, server: RunningServer, acme: LedgerSetup,
                                                    host: RecordingHost) -> None:
    body, headers = acme.book.pay(acme.secret, acme.remote_invoice)
    barrier = threading.Barrier(8)
    codes: list[int] = []

    def deliver() -> None:
        barrier.wait()
        codes.append(post(server, acme.path(), body, headers).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 8
    assert host.payment_calls == 1
    (row,) = inbox(hub)
    assert (row.status, row.deliveries) == ("applied", 8)


def test_unknown_triple_and_disabled_connection_are_404(hub: Hub, server: RunningServer, acme: LedgerSetup) -> None:
    body, headers = acme.book.pay(acme.secret, acme.remote_invoice)
    for path in ("/v1/webhooks/ledger/acme/staging", "/v1/webhooks/ledger/other/prod", "/v1/webhooks/nope/acme/prod",
                 "/v1/webhooks/ledger/acme", "/v1/webhooks/ledger/acme/prod/extra", "/v1/webhooks/ledger/acme/prod/",
                 "/elsewhere", "/"):
        r = post(server, path, body, headers)
        assert r.status_code == 404, path
        assert r.json() == {"error": "not found"}
    hub.disable(acme.conn.id)
    assert post(server, acme.path(), body, headers).status_code == 404
    assert inbox(hub) == []


def test_wrong_method_is_405(server: RunningServer, acme: LedgerSetup) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        r = requests.request(method, server.url + acme.path(), timeout=10)
        assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_body_over_the_cap_is_413_by_length_and_while_reading_chunked(database_url: str, tmp_path, host) -> None:  # type: ignore[no-untyped-def]
    hub = Hub(Config(database_url=database_url, key_file=str(tmp_path / "k"), max_webhook_bytes=1000))
    hub.plugins.set_host(host)
    setup = ledger_connection(hub)
    with running(hub) as srv:
        big = b"{" + b" " * 5000 + b"}"
        assert post(srv, setup.path(), big, {"X-Ledger-Signature": "00"}).status_code == 413

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b"x" * 500

        r = requests.post(srv.url + setup.path(), data=chunks(), headers={"X-Ledger-Signature": "00"}, timeout=10)
        assert r.status_code == 413
        # a small chunked delivery is read whole and verified as usual
        body, headers = setup.book.pay(setup.secret, setup.remote_invoice)
        r = requests.post(srv.url + setup.path(), data=iter([body[:10], body[10:]]), headers=headers, timeout=10)
        assert r.status_code == 200, r.text
    assert len(host.payments) == 1
    hub.engine.dispose()


def test_bad_or_missing_signature_is_401_and_writes_nothing(hub: Hub, server: RunningServer, acme: LedgerSetup,
                                                             host: RecordingHost) -> None:
    body, headers = acme.book.pay(acme.secret, acme.remote_invoice)
    assert post(server, acme.path(), body, {}).status_code == 401
    assert post(server, acme.path(), body, {"X-Ledger-Signature": "0" * 64}).status_code == 401
    assert post(server, acme.path(), body + b" ", headers).status_code == 401
    assert post(server, acme.path(), body, {"X-Ledger-Signature": "é"}).status_code in (400, 401)
    assert inbox(hub) == [] and host.payment_calls == 0


def test_webhook_signed_for_tenant_a_posted_to_tenant_b_is_rejected(hub: Hub, server: RunningServer,
                                                                     host: RecordingHost) -> None:
    a = ledger_connection(hub, "tenant-a", "prod")
    b = ledger_connection(hub, "tenant-b", "prod")
    body, headers = a.book.pay(a.secret, a.remote_invoice)
    r = post(server, b.path(), body, headers)
    assert r.status_code == 401
    assert inbox(hub) == [] and host.payment_calls == 0
    # and an invoice id only B has linked, in A's signed body, is looked up in A's mappings only
    with hub.engine.begin() as db:
        mapping.link(db, b.conn.id, mapping.INVOICE, "B-ONLY-LOCAL", "B-ONLY-REMOTE")
    body2, headers2 = a.book.webhook(a.secret, "invoice.paid", {"invoice_id": "B-ONLY-REMOTE", "amount": "1",
                                                                "currency": "USD", "paid_on": "2026-01-01",
                                                                "payment_id": "P-x"})
    r = post(server, a.path(), body2, headers2)
    assert r.status_code == 200 and r.json()["ignored"] == 1
    assert host.payment_calls == 0


def test_malformed_body_is_400_and_writes_nothing(hub: Hub, server: RunningServer, acme: LedgerSetup) -> None:
    for body in (b"not json", b"{}", b'{"type": "invoice.paid", "data": {}}', b"", b"\xff\xfe"):
        headers = acme.book.webhook(acme.secret, "x", {})[1]
        from integration_core.providers.ledger import sign

        headers["X-Ledger-Signature"] = sign(acme.secret, body)
        r = post(server, acme.path(), body, headers)
        assert r.status_code == 400, body
        assert r.json() == {"error": "malformed webhook"}
    assert inbox(hub) == []


def test_unmapped_invoice_is_ignored_with_reason(hub: Hub, server: RunningServer, acme: LedgerSetup,
                                                 host: RecordingHost) -> None:
    from .test_inbound_support import make_invoice

    contact = acme.book.create_contact("Bob", "bob@example.com")
    foreign = acme.book.create_invoice(make_invoice("THEIRS-1", "bob@example.com"), contact.id)
    body, headers = acme.book.pay(acme.secret, foreign.id)
    r = post(server, acme.path(), body, headers)
    assert r.status_code == 200 and r.json()["ignored"] == 1
    (row,) = inbox(hub)
    assert row.status == "ignored"
    assert row.reason == f"invoice {foreign.id} was not created from this side (no mapping)"
    assert host.payment_calls == 0


def test_voided_invoice_reaches_host(hub: Hub, server: RunningServer, acme: LedgerSetup, host: RecordingHost) -> None:
    body, headers = acme.book.void(acme.secret, acme.remote_invoice)
    assert post(server, acme.path(), body, headers).json()["applied"] == 1
    assert post(server, acme.path(), body, headers).json()["duplicates"] == 1
    assert host.voided == [acme.local_invoice]


def test_customer_created_links_existing_email_and_creates_otherwise(hub: Hub, server: RunningServer,
                                                                      acme: LedgerSetup, host: RecordingHost) -> None:
    existing = host.create_customer(tenant_id="acme", environment_id="prod", name="Grace", email="grace@example.com")
    body, headers = acme.book.new_contact(acme.secret, "Grace H.", "grace@example.com")
    assert post(server, acme.path(), body, headers).json()["applied"] == 1
    assert len(host.customers) == 1  # linked, not duplicated
    remote_grace = json.loads(body)["data"]["contact_id"]
    body2, headers2 = acme.book.new_contact(acme.secret, "Linus", "linus@example.com")
    assert post(server, acme.path(), body2, headers2).json()["applied"] == 1
    assert len(host.customers) == 2
    remote_linus = json.loads(body2)["data"]["contact_id"]
    with hub.engine.connect() as db:
        assert mapping.local_id(db, acme.conn.id, mapping.CUSTOMER, remote_grace) == existing
        assert mapping.local_id(db, acme.conn.id, mapping.CUSTOMER, remote_linus) == "cust-2"
    # a vendor is ignored with the provider's reason
    body3, headers3 = acme.book.new_contact(acme.secret, "Paper Co", "paper@example.com", kind="vendor")
    assert post(server, acme.path(), body3, headers3).json()["ignored"] == 1
    assert inbox(hub)[-1].reason == "contact is a vendor"
    assert len(host.customers) == 2


def test_customers_inbound_off_ignores_customer_events(hub: Hub, server: RunningServer, host: RecordingHost) -> None:
    setup = ledger_connection(hub, "quiet", "prod", customers_inbound=False)
    body, headers = setup.book.new_contact(setup.secret, "Grace", "grace@example.com")
    assert post(server, setup.path(), body, headers).json()["ignored"] == 1
    assert inbox(hub)[-1].reason == "customer inbound sync is off"
    assert host.customers == {}


def test_host_failure_answers_503_and_the_redelivery_applies(hub: Hub, server: RunningServer, acme: LedgerSetup,
                                                            host: RecordingHost) -> None:
    host.fail_payments = 1
    body, headers = acme.book.pay(acme.secret, acme.remote_invoice)
    r = post(server, acme.path(), body, headers)
    assert r.status_code == 503 and r.headers["Retry-After"] == "60"
    assert r.json()["failed"] == 1
    (row,) = inbox(hub)
    assert row.status == "failed" and row.reason == "host hook failed: RuntimeError: host database is locked"
    r = post(server, acme.path(), body, headers)
    assert r.status_code == 200 and r.json()["applied"] == 1
    assert len(host.payments) == 1
    (row,) = inbox(hub)
    assert (row.status, row.deliveries, row.reason) == ("applied", 2, None)
    with hub.engine.connect() as db:
        actions = [a.action for a in db.execute(sa.select(audit_log).where(audit_log.c.subject == "event"))]
    assert actions == ["received", "failed", "redelivered", "applied"]


def test_no_host_registered_keeps_events_failed_with_a_clear_reason(hub: Hub, acme: LedgerSetup) -> None:
    with running(hub) as srv:
        body, headers = acme.book.pay(acme.secret, acme.remote_invoice)
        r = post(srv, acme.path(), body, headers)
    assert r.status_code == 503
    assert "no host application implements record_payment" in inbox(hub)[0].reason


def test_database_down_is_a_generic_500(hub: Hub, server: RunningServer, acme: LedgerSetup,
                                        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    body, headers = acme.book.pay(acme.secret, acme.remote_invoice)

    def broken(*_a: object, **_k: object) -> None:
        raise sa.exc.OperationalError("INSERT secret-looking-sql", {"p": acme.secret}, Exception("db down"))

    import integration_core.inbound as inbound_mod

    monkeypatch.setattr(inbound_mod, "_receive", broken)
    r = post(server, acme.path(), body, headers)
    assert r.status_code == 500 and r.json() == {"error": "internal error"}
    assert acme.secret not in caplog.text and "secret-looking-sql" not in caplog.text
    assert "OperationalError" in caplog.text


def test_healthz_and_oauth_callback_errors(server: RunningServer) -> None:
    r = requests.get(server.url + "/healthz", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = requests.get(server.url + "/v1/oauth/callback", params={"code": "x", "state": "unknown"}, timeout=10)
    assert r.status_code == 400 and "unknown or already used authorization state" in r.text
    r = requests.get(server.url + "/v1/oauth/callback", timeout=10)
    assert r.status_code == 400 and "code and state" in r.text
    r = requests.get(server.url + "/v1/oauth/callback", params={"error": "access_denied"}, timeout=10)
    assert r.status_code == 400 and "access_denied" in r.text
    assert requests.post(server.url + "/v1/oauth/callback", timeout=10).status_code == 405
