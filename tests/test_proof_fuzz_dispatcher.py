"""Proof: no input makes the webhook dispatcher answer 500, leak a traceback, or write for a rejected request.

Hypothesis drives the WSGI callable directly with crafted environs (arbitrary methods, paths with ``..``,
``%2F``, unicode and very long segments, headers with huge, negative, non-ASCII or non-numeric
Content-Length values, chunked markers, odd content types and encodings, bodies signed and not), and a
smaller set goes over real HTTP to the project's server as raw bytes. Every answer must be one of the
documented statuses, never 500, with no exception text; a rejected request (400/401/404/405/411/413)
leaves inbox, audit log, mappings, OAuth states, connections and host untouched.
"""

from __future__ import annotations

import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zoho_books.emulator import sign as zoho_sign

from integration_core import mapping
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.providers.ledger import sign as ledger_sign
from integration_core.server import RunningServer, running
from integration_core.store.schema import audit_log, connections, entity_mappings, inbox_events, oauth_states
from integration_core.webhooks import create_app

from .conftest import ledger_values
from .proof.host import CountingHost
from .proof.zoho import client_secret, webhook_secret

REJECTED = {400, 401, 404, 405, 411, 413}
DOCUMENTED = REJECTED | {200, 503}
LEAK = re.compile(rb"Traceback|File \"|\w+(Error|Exception)\b|sqlalchemy|psycopg|sqlite|line \d+")
ZOHO_PATH = "/v1/webhooks/zoho_books/acme/prod"
LEDGER_PATH = "/v1/webhooks/ledger/acme/prod"


class Target:
    def __init__(self, hub: Hub, host: CountingHost, ledger_secret: str) -> None:
        self.hub = hub
        self.host = host
        self.app = create_app(hub)
        self.ledger_secret = ledger_secret

    def snapshot(self) -> tuple[Any, ...]:
        with self.hub.engine.connect() as db:
            counts = tuple(db.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                           for t in (inbox_events, audit_log, entity_mappings, oauth_states))
            conns = tuple(db.execute(sa.select(connections.c.id, connections.c.status, connections.c.secrets,
                                               connections.c.updated_at).order_by(connections.c.id)).all())
        return counts, conns, sum(self.host.calls.values())


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp: Path = tmp_path_factory.mktemp("proof-fuzz")
    hub = Hub(Config(database_url=f"sqlite:///{tmp / 'ic.sqlite3'}", key_file=str(tmp / "k"),
                     max_webhook_bytes=2048))
    host = CountingHost(tmp / "billing.sqlite3")
    hub.plugins.set_host(host)
    zoho = hub.add_connection(tenant_id="acme", environment_id="prod", provider="zoho_books", name="Zoho",
                              values={"client_id": "1000.FUZZ", "client_secret": client_secret(),
                                      "organization_id": "777", "webhook_secret": webhook_secret()})
    values = ledger_values("fuzz-" + tmp.name)
    hub.add_connection(tenant_id="acme", environment_id="prod", provider="ledger", name="Ledger", values=values)
    off = hub.add_connection(tenant_id="acme", environment_id="off", provider="ledger", name="Off",
                             values=ledger_values("fuzz-off-" + tmp.name))
    hub.disable(off.id)
    with hub.engine.begin() as db:  # a linked invoice, so some signed bodies reach the host hooks
        mapping.link(db, zoho.id, mapping.INVOICE, "inv-local-1", "460000000000001")
    yield Target(hub, host, values["webhook_secret"])
    hub.engine.dispose()


def call(app: Any, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen.append((status, headers))

    out = b"".join(app(environ, start_response))
    status, headers = seen[0]
    return int(status.split()[0]), headers, out


def check(target: Target, status: int, headers: list[tuple[str, str]], out: bytes, before: tuple[Any, ...]) -> None:
    assert status in DOCUMENTED, (status, out[:300])
    assert not LEAK.search(out), out[:500]
    length = dict((k.lower(), v) for k, v in headers).get("content-length")
    assert length == str(len(out))
    if status in REJECTED:
        assert target.snapshot() == before


# --- strategies ----------------------------------------------------------------------------------------

odd_text = st.text(max_size=40)
segment = st.one_of(
    st.sampled_from(["zoho_books", "ledger", "acme", "prod", "off", "ZOHO_BOOKS", "Ledger", "..", ".", "%2F",
                     "acme%2Fprod", "acme\x00", " acme", "acme ", "é", "\uff41\uff43\uff4d\uff45",
                     "' OR 1=1 --", "x" * 300]),
    odd_text,
)
path = st.one_of(
    st.sampled_from([ZOHO_PATH, LEDGER_PATH]),  # mostly real endpoints: the body and header handling is what is probed
    st.sampled_from([ZOHO_PATH, LEDGER_PATH]),
    st.sampled_from([ZOHO_PATH, LEDGER_PATH, "/v1/webhooks/ledger/acme/off", "/v1/oauth/callback", "/healthz",
                     "/", "", "/v1/webhooks/", ZOHO_PATH + "/", "//v1/webhooks/zoho_books/acme/prod"]),
    st.builds(lambda parts: "/v1/webhooks/" + "/".join(parts), st.lists(segment, min_size=0, max_size=5)),
    odd_text,
)
content_length = st.one_of(
    st.none(),
    st.just("LEN"),  # the real length
    st.sampled_from(["", "-1", "0", " 12 ", "1e3", "0x10", "²", "١٢", "99999999999999999999", "9" * 5000, "abc",
                     "12, 12", "+5", "5.0"]),
    st.integers(min_value=0, max_value=10**7).map(str),
)
body = st.one_of(
    st.binary(max_size=3000),
    st.sampled_from([b"", b"{}", b"[]", b"null", b'{"invoice": {}}', b'{"invoice": {"invoice_id": "1"}}',
                     b'{"invoice": {"invoice_id": "460000000000001", "status": "paid", "total": "10", '
                     b'"last_payment_date": "2026-01-02"}}',
                     b'{"invoice": {"invoice_id": "460000000000001", "status": "void"}}',
                     b'{"contact": {"contact_id": "9", "contact_name": "Fuzz", "email": "f@x.example"}}',
                     b'{"type": "invoice.paid", "data": {"invoice_id": "1", "payment_id": "p"}}',
                     b'{"type": "contact.created", "data": {"contact_id": [], "name": {}}}',
                     b"JSONString=%7B%22invoice%22%3A1%7D", b"\xff\xfe{\x00}\x00", b"{" * 2000]),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=15),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                     st.sampled_from(["invoice", "contact", "invoice_id", "contact_id", "status", "total",
                                      "type", "data", "email", "last_payment_date"]) | st.text(max_size=8),
                     inner, max_size=4), max_leaves=10).map(lambda d: json.dumps(d).encode()),
)
header_names = st.sampled_from(["Content-Type", "Transfer-Encoding", "X-Zoho-Webhook-Signature",
                                "X-Ledger-Signature", "Content-Encoding", "Accept", "X-Forwarded-For", "Host"])
header_values = st.one_of(
    odd_text,
    st.sampled_from(["application/json", "application/json;charset=UTF-16", "application/x-www-form-urlencoded",
                     "multipart/form-data; boundary=x", "chunked", "gzip", "text/plain; charset=ebcdic"]),
)
method = st.one_of(st.just("POST"), st.just("POST"), st.just("POST"),
                   st.sampled_from(["POST", "GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "post", "TRACE"]),
                   odd_text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(method=method, path=path, body=body, length=content_length,
       headers=st.dictionaries(header_names, header_values, max_size=4), query=odd_text,
       signer=st.sampled_from([None, "zoho", "ledger"]), terminated=st.booleans(), short_input=st.booleans())
def test_crafted_environs_never_500_and_rejects_write_nothing(target: Target, method: str, path: str, body: bytes,
                                                              length: str | None, headers: dict[str, str],
                                                              query: str, signer: str | None, terminated: bool,
                                                              short_input: bool) -> None:
    headers = dict(headers)
    if signer == "zoho":
        params = dict(parse_qsl(query, keep_blank_values=True))
        headers["X-Zoho-Webhook-Signature"] = zoho_sign(webhook_secret(), body, params)
    elif signer == "ledger":
        headers["X-Ledger-Signature"] = ledger_sign(target.ledger_secret, body)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body[: len(body) // 2] if short_input else body),
    }
    if terminated:
        environ["wsgi.input_terminated"] = True
    if length is not None:
        environ["CONTENT_LENGTH"] = str(len(body)) if length == "LEN" else length
    for name, value in headers.items():
        if name == "Content-Type":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    before = target.snapshot()
    status, response_headers, out = call(target.app, environ)
    check(target, status, response_headers, out, before)


# --- over real HTTP: raw bytes on a socket to the project's server ----------------------------------------


@pytest.fixture(scope="module")
def server(target: Target) -> Iterator[RunningServer]:
    with running(target.hub) as srv:
        yield srv


def raw(srv: RunningServer, request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, payload


def http_request(method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [k + b": " + v for k, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


SIGNED = b'{"invoice": {"invoice_id": "460000000000999", "status": "void"}}'
HTTP_CASES = {
    "huge content-length": (b"POST", ZOHO_PATH.encode(), [(b"Content-Length", b"99999999999999999999")], b"{}"),
    "5000-digit content-length": (b"POST", ZOHO_PATH.encode(), [(b"Content-Length", b"9" * 5000)], b"{}"),
    "latin-1 superscript content-length": (b"POST", ZOHO_PATH.encode(), [(b"Content-Length", b"\xb2")], b"{}"),
    "negative content-length": (b"POST", ZOHO_PATH.encode(), [(b"Content-Length", b"-5")], b"{}"),
    "two content-lengths": (b"POST", LEDGER_PATH.encode(), [(b"Content-Length", b"2"), (b"Content-Length", b"3")],
                            b"{}"),
    "content-length longer than body": (b"POST", ZOHO_PATH.encode(), [(b"Content-Length", b"500")], b"{}"),
    "bad chunk size": (b"POST", ZOHO_PATH.encode(), [(b"Transfer-Encoding", b"chunked")], b"zz\r\n{}\r\n0\r\n\r\n"),
    "chunked over the cap": (b"POST", ZOHO_PATH.encode(), [(b"Transfer-Encoding", b"chunked")],
                             b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"),
    "encoded slash": (b"POST", b"/v1/webhooks/zoho_books/acme%2Fprod/x", [(b"Content-Length", b"2")], b"{}"),
    "dot segments": (b"POST", b"/v1/webhooks/zoho_books/acme/../acme/prod", [(b"Content-Length", b"2")], b"{}"),
    "utf-8 path": (b"POST", "/v1/webhooks/zoho_books/ácme/prod".encode(), [(b"Content-Length", b"2")], b"{}"),
    "malformed request line": (b"POST", b"/v1/webhooks/zoho_books/ac me/prod", [(b"Content-Length", b"2")], b"{}"),
    "invalid utf-8 path": (b"POST", b"/v1/webhooks/zoho_books/\xff\xfe/prod", [(b"Content-Length", b"2")], b"{}"),
    "absolute-form target": (b"POST", b"http://evil.example" + ZOHO_PATH.encode(), [(b"Content-Length", b"2")],
                             b"{}"),
    "unsigned": (b"POST", ZOHO_PATH.encode(), [(b"Content-Length", str(len(SIGNED)).encode())], SIGNED),
    "non-ascii signature": (b"POST", ZOHO_PATH.encode(), [(b"Content-Length", str(len(SIGNED)).encode()),
                                                          (b"X-Zoho-Webhook-Signature", b"\xe9\xe9")], SIGNED),
    "signed, garbage json": (b"POST", ZOHO_PATH.encode(), [(b"Content-Length", b"3"), (
        b"X-Zoho-Webhook-Signature", zoho_sign(webhook_secret(), b"{x}").encode())], b"{x}"),
    "odd method": (b"BREW", ZOHO_PATH.encode(), [(b"Content-Length", b"2")], b"{}"),
    "callback without state": (b"GET", b"/v1/oauth/callback?code=%ff%fe", [], b""),
    "callback unknown state": (b"GET", b"/v1/oauth/callback?code=x&state=%27%20OR%201=1%20--", [], b""),
}


@pytest.mark.parametrize("case", list(HTTP_CASES))
def test_crafted_http_requests_never_500(target: Target, server: RunningServer, case: str) -> None:
    before = target.snapshot()
    status, payload = raw(server, http_request(*HTTP_CASES[case]))
    assert status in DOCUMENTED, (case, status, payload[:300])
    assert not LEAK.search(payload), payload[:300]
    assert target.snapshot() == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from([ZOHO_PATH, LEDGER_PATH, "/v1/webhooks/zoho_books/acme/other", "/healthz"]),
       length=st.one_of(st.binary(min_size=0, max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b),
                        st.integers(min_value=0, max_value=5000).map(lambda n: str(n).encode())),
       body=st.binary(max_size=400))
def test_random_http_bodies_never_500(target: Target, server: RunningServer, path: str, length: bytes,
                                      body: bytes) -> None:
    before = target.snapshot()
    status, payload = raw(server, http_request(b"POST", path.encode(), [(b"Content-Length", length)], body))
    assert status in DOCUMENTED | {0}, (status, payload[:300])  # 0: the server closed a malformed request
    assert not LEAK.search(payload), payload[:300]
    if status in REJECTED | {0}:
        assert target.snapshot() == before
