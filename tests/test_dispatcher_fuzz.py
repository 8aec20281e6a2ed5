"""Hypothesis fuzz of the WSGI dispatcher (called in-process): never a 500, nothing stored for rejects."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.providers.ledger import sign
from integration_core.store.schema import audit_log, inbox_events
from integration_core.webhooks import create_app

from .test_inbound_support import RecordingHost, ledger_connection


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, object]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    hub = Hub(Config(database_url=f"sqlite:///{tmp / 'ic.sqlite3'}", key_file=str(tmp / "k"), max_webhook_bytes=4096))
    hub.plugins.set_host(RecordingHost())
    setup = ledger_connection(hub, "acme", "prod")
    yield hub, setup
    hub.engine.dispose()


def call(app, method: str, path: str, body: bytes, headers: dict[str, str], query: str = "") -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "x", "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), "wsgi.url_scheme": "http",
    }
    for k, v in headers.items():
        environ["HTTP_" + k.upper().replace("-", "_")] = v
    seen: list[str] = []
    out = b"".join(app(environ, lambda status, hdrs, exc_info=None: seen.append(status)))
    return int(seen[0].split()[0]), out


def counts(hub: Hub) -> tuple[int, int]:
    with hub.engine.connect() as db:
        return (db.execute(sa.select(sa.func.count()).select_from(inbox_events)).scalar_one(),
                db.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one())


latin = st.text(st.characters(max_codepoint=255), max_size=60)
segments = st.one_of(st.just("ledger"), st.just("acme"), st.just("prod"), latin)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["POST", "GET", "PUT", "HEAD", "OPTIONS", "post"]),
    parts=st.lists(segments, min_size=0, max_size=5),
    prefix=st.sampled_from(["/v1/webhooks/", "/v1/webhooks", "/", "/v1/oauth/callback", "/healthz"]),
    body=st.binary(max_size=600),
    headers=st.dictionaries(st.sampled_from(["X-Ledger-Signature", "Content-Type", "X-Other"]), latin, max_size=3),
    query=latin,
    sign_it=st.booleans(),
)
def test_arbitrary_requests_never_500_and_rejects_write_nothing(fuzz_hub, method, parts, prefix, body, headers,  # type: ignore[no-untyped-def]
                                                                  query, sign_it) -> None:
    hub, setup = fuzz_hub
    app = create_app(hub)
    path = prefix + "/".join(parts) if prefix.endswith("/") else prefix
    if sign_it:
        headers = {**headers, "X-Ledger-Signature": sign(setup.secret, body)}
    before = counts(hub)
    status, out = call(app, method, path, body, headers, query)
    assert status != 500 and b"Traceback" not in out
    if status != 200:
        assert counts(hub) == before


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                      max_size=4), max_leaves=12),
       kind=st.sampled_from(["invoice.paid", "invoice.voided", "contact.created", "other"]))
def test_signed_but_odd_json_is_400_or_200_never_500(fuzz_hub, doc, kind) -> None:  # type: ignore[no-untyped-def]
    import json

    hub, setup = fuzz_hub
    body = json.dumps({"type": kind, "data": doc}).encode()
    status, out = call(create_app(hub), "POST", setup.path(), body, {"X-Ledger-Signature": sign(setup.secret, body)})
    assert status in (200, 400, 503), out
