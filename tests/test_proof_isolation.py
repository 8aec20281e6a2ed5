"""Proof: a webhook for tenant A can never read or change tenant B's data (DESIGN §5).

Three Zoho Books connections, each on its own emulated organization with its own webhook secret: tenant A
(live and sandbox environments) and tenant B, each with invoices pushed from the host. Then, over real
HTTP to the project's server: A's signature on B's URL (and on A's other environment) is 401 and changes
nothing; crafted URLs (dot segments, encoded slashes, extra segments, case variants, unicode, NUL, very
long and SQL-ish ids) never reach a connection they do not name exactly; A's valid events touch only A;
and B's invoice and customer ids inside a body validly signed for A's URL leave B untouched.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from zoho_books.emulator import SIGNATURE_HEADER, sign

from integration_core import mapping
from integration_core.hub import Hub
from integration_core.models import Connection, Invoice
from integration_core.server import RunningServer, running
from integration_core.store.schema import audit_log, entity_mappings, inbox_events

from .proof.host import CountingHost
from .proof.zoho import mappings, push_host_invoices, webhook_secret, zoho_connection


class World:
    def __init__(self, hub: Hub, host: CountingHost, emu: Any, srv: RunningServer) -> None:
        self.hub, self.host, self.emu, self.srv = hub, host, emu, srv
        self.conns: dict[str, Connection] = {}
        self.invoices: dict[str, list[Invoice]] = {}

    def add(self, key: str, tenant: str, env: str) -> None:
        conn = zoho_connection(self.hub, self.emu, tenant=tenant, env=env, tag=key,
                               settings={"rate_limit_per_minute": "1000000"})
        self.conns[key] = conn
        self.invoices[key] = push_host_invoices(self.hub, self.host, tenant, env, 4, customers=2, prefix=key)

    def org(self, key: str) -> str:
        return str(self.conns[key].settings["organization_id"])

    def remote(self, key: str, n: int) -> str:
        return mappings(self.hub, self.conns[key].id, mapping.INVOICE)[self.invoices[key][n].id]

    def path(self, key: str) -> str:
        c = self.conns[key]
        return f"/v1/webhooks/zoho_books/{c.tenant_id}/{c.environment_id}"

    def state(self, key: str) -> tuple[Any, ...]:
        """Everything of one connection and its tenant/environment in the host."""
        c = self.conns[key]
        with self.hub.engine.connect() as db:
            inbox = db.execute(sa.select(inbox_events.c.id, inbox_events.c.status, inbox_events.c.deliveries)
                               .where(inbox_events.c.connection_id == c.id).order_by(inbox_events.c.id)).all()
            maps = db.execute(sa.select(entity_mappings.c.entity_type, entity_mappings.c.local_id,
                                        entity_mappings.c.remote_id)
                              .where(entity_mappings.c.connection_id == c.id).order_by(entity_mappings.c.id)).all()
            audits = db.execute(sa.select(sa.func.count()).select_from(audit_log)
                                .where(audit_log.c.connection_id == c.id)).scalar_one()
        store = self.host.store
        host_invoices = [(i["id"], i["status"], i["paid"]) for i in store.invoices(c.tenant_id)
                         if i["environment_id"] == c.environment_id]
        customers = [r["id"] for r in store.customers(c.tenant_id) if r["environment_id"] == c.environment_id]
        calls = sorted((h, k, n) for (h, k), n in self.host.calls.items()
                       if k.startswith(f"{c.tenant_id}/{c.environment_id}/"))
        return tuple(inbox), tuple(maps), audits, host_invoices, customers, calls

    def all_states(self) -> dict[str, tuple[Any, ...]]:
        return {k: self.state(k) for k in self.conns}

    def post(self, path: str, body: bytes, secret: str | None) -> tuple[int, bytes]:
        headers = [(b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode())]
        if secret is not None:
            headers.append((SIGNATURE_HEADER.encode(), sign(secret, body).encode()))
        return raw_post(self.srv, path.encode("utf-8"), headers, body)


def raw_post(srv: RunningServer, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes]:
    """Bytes on a socket: no client library normalizes the path (dot segments, %2F) on the way."""
    head = [b"POST " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    head += [k + b": " + v for k, v in headers]
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.fixture
def world(hub: Hub, tmp_path: Path, zoho_emulator_factory) -> Any:  # type: ignore[no-untyped-def]
    host = CountingHost(tmp_path / "billing.sqlite3")
    hub.plugins.set_host(host)
    emu = zoho_emulator_factory(rate_limit_per_minute=1_000_000)
    with running(hub) as srv:
        w = World(hub, host, emu, srv)
        w.add("A", "tenant-a", "live")
        w.add("S", "tenant-a", "sandbox")
        w.add("B", "tenant-b", "live")
        yield w


def paid_body(w: World, key: str, n: int) -> bytes:
    rid = w.remote(key, n)
    w.emu.record_payment(w.org(key), rid)
    return json.dumps({"invoice": w.emu.invoice_webhook(w.org(key), rid)}).encode()


def test_a_signature_on_b_url_is_401_and_changes_nothing(world: World) -> None:
    before = world.all_states()
    body_b = paid_body(world, "B", 0)  # a real "paid" for B's invoice...
    for target in ("B", "S"):  # ... signed with A's secret, to B's URL and to A's other environment
        status, out = world.post(world.path(target), body_b, webhook_secret("A"))
        assert status == 401 and json.loads(out) == {"error": "signature not valid"}
    body_a = paid_body(world, "A", 0)
    assert world.post(world.path("B"), body_a, webhook_secret("A"))[0] == 401
    assert world.post(world.path("A"), body_b, webhook_secret("B"))[0] == 401  # B's secret on A's URL
    assert world.all_states() == before
    # The very same body with the right secret on the right URL is applied: the 401s were not a fluke.
    assert world.post(world.path("B"), body_b, webhook_secret("B"))[0] == 200
    after = world.all_states()
    assert after["A"] == before["A"] and after["S"] == before["S"] and after["B"] != before["B"]


CRAFTED = [
    "/v1/webhooks/zoho_books/tenant-b/../tenant-a/live",
    "/v1/webhooks/zoho_books/tenant-a/live/../../tenant-b/live",
    "/v1/webhooks/zoho_books/tenant-b%2F..%2Ftenant-a/live",
    "/v1/webhooks/zoho_books%2Ftenant-b%2Flive",
    "/v1/webhooks/zoho_books/tenant-b/live%2F",
    "/v1/webhooks/zoho_books/tenant-b/live/",
    "/v1/webhooks/zoho_books/tenant-b/live/extra",
    "/v1/webhooks/zoho_books//tenant-b/live",
    "/v1/webhooks/zoho_books/tenant-b//live",
    "//v1/webhooks/zoho_books/tenant-b/live",
    "/v1/webhooks/./zoho_books/tenant-b/live",
    "/v1/webhooks/Zoho_Books/tenant-b/live",
    "/v1/webhooks/ZOHO_BOOKS/tenant-b/live",
    "/v1/webhooks/zoho_books/TENANT-B/live",
    "/v1/webhooks/zoho_books/tenant-b/LIVE",
    "/v1/webhooks/zoho_books/tenant-b%20/live",
    "/v1/webhooks/zoho_books/%20tenant-b/live",
    "/v1/webhooks/zoho_books/tenant-b%00/live",
    "/v1/webhooks/zoho_books/tenant-\uff42/live",
    "/v1/webhooks/zoho_books/tenant-b\u200b/live",
    "/v1/webhooks/zoho_books/tenant-%C3%9F/live",
    "/v1/webhooks/zoho_books/" + "tenant-b" * 700 + "/live",
    "/v1/webhooks/zoho_books/tenant-b'%20OR%20'1'='1/live",
    "/v1/webhooks/zoho_books/tenant-b'--/live",
    "/v1/webhooks/zoho_books/%25/live",
    "/v1/webhooks/zoho_books/tenant-_/live",
    "/v1/webhooks/zoho_books/tenant-%/live",
    "/v1/webhooks/zoho_books/tenant-b;live/x",
    "/v1/webhooks/zoho_books/tenant-b/live?tenant_id=tenant-a",
    "/v1/webhooks/zoho_books/tenant-b/live#/tenant-a/live",
    "/v1/webhooks/ledger/tenant-b/live",
    "/v1/webhooks/zoho_books/tenant-a/sandbox/../live",
]


@pytest.mark.parametrize("secret_of", ["A", "B"])
def test_crafted_urls_never_reach_a_connection_they_do_not_name(world: World, secret_of: str) -> None:
    body = paid_body(world, secret_of, 1)
    before = world.all_states()
    for path in CRAFTED:
        status, out = world.post(path, body, webhook_secret(secret_of))
        # Percent-decoded (as every WSGI server does), without its query string and fragment (a fragment is not
        # part of the path, RFC 3986; waitress drops it) and with leading slashes folded, a path may be B's own URL.
        plain = path.split("#")[0].split("?")[0]
        names_b = "/" + unquote(plain).lstrip("/") == "/v1/webhooks/zoho_books/tenant-b/live"
        if names_b and secret_of == "B":
            assert status in (200, 401), path  # 401: a query string is signed too, and this one was not
        else:
            assert status in (400, 401, 404), (path, status, out[:200])
        assert b"Traceback" not in out
    after = world.all_states()
    assert after["A"] == before["A"] and after["S"] == before["S"]
    if secret_of == "A":
        assert after["B"] == before["B"]


def test_a_events_touch_only_a(world: World) -> None:
    before = world.all_states()
    w = world
    paid = paid_body(w, "A", 2)
    w.emu.void_invoice(w.org("A"), w.remote("A", 3))
    void = json.dumps({"invoice": w.emu.invoice_webhook(w.org("A"), w.remote("A", 3))}).encode()
    b_customer = w.host.store.customers("tenant-b")[0]  # a new Zoho contact of A that has B's customer's e-mail
    contact, _ = w.emu.create_contact(w.org("A"), "Same Mail As B", email=b_customer["email"])
    new = json.dumps({"contact": w.emu.contact_webhook(w.org("A"), contact["contact_id"])}).encode()
    for body in (paid, void, new, paid, new):
        status, out = w.post(w.path("A"), body, webhook_secret("A"))
        assert status == 200, out
    after = w.all_states()
    assert after["B"] == before["B"] and after["S"] == before["S"]
    assert w.host.store.invoice(w.invoices["A"][2].id)["status"] == "paid"
    assert w.host.store.invoice(w.invoices["A"][3].id)["status"] == "void"
    created = [c for c in w.host.store.customers("tenant-a") if c["email"] == b_customer["email"]]
    assert len(created) == 1 and created[0]["environment_id"] == "live"  # a new A customer, B's left alone
    assert mappings(w.hub, w.conns["A"].id, mapping.CUSTOMER)[created[0]["id"]] == contact["contact_id"]


def test_b_ids_in_a_body_signed_for_a_do_not_affect_b(world: World) -> None:
    w = world
    before = w.all_states()
    rid_b = w.remote("B", 0)
    record = {"invoice_id": rid_b, "status": "paid", "total": str(w.invoices["B"][0].total),
              "last_payment_date": "2026-01-20", "currency_code": "USD", "reference_number": w.invoices["B"][0].id}
    forged = [json.dumps({"invoice": record}).encode(),
              json.dumps({"invoice": {"invoice_id": rid_b, "status": "void"}}).encode(),
              json.dumps({"invoice": {**record, "invoice_id": int(rid_b)}}).encode()]
    b_contact = mappings(w.hub, w.conns["B"].id, mapping.contact_type("USD"))
    remote_customer_b = next(iter(b_contact.values()))
    forged.append(json.dumps({"contact": {"contact_id": remote_customer_b, "contact_name": "Hijack",
                                          "contact_type": "customer", "email": "hijack@evil.example"}}).encode())
    for body in forged:
        status, out = w.post(w.path("A"), body, webhook_secret("A"))
        assert status == 200, out  # authentic for A: acknowledged, applied in A's scope only
    after = w.all_states()
    assert after["B"] == before["B"] and after["S"] == before["S"]
    assert all(i["status"] == "open" for i in w.host.store.invoices("tenant-b"))
    assert w.host.store.payments() == [p for p in w.host.store.payments() if not p["invoice_id"].startswith("B")]
    with w.hub.engine.connect() as db:
        rows = db.execute(sa.select(inbox_events.c.status, inbox_events.c.reason)
                          .where(inbox_events.c.connection_id == w.conns["A"].id)).all()
    assert sorted(r.status for r in rows) == ["applied", "ignored", "ignored"]  # paid + void ignored, contact new
    assert all("not created from this side" in r.reason for r in rows if r.status == "ignored")
    assert w.host.count("record_payment") == 0 and w.host.count("void_invoice") == 0
