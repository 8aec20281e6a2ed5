"""The console over plain HTTP (requests against the served app): login, sessions, CSRF, tenant limits,
escaping, secrets never shown, actions audited with the operator's name. SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from attrs import evolve as attrs_evolve

from integration_core import server
from integration_core.console.operators import get_operator, set_operator
from integration_core.console.sessions import Session, SessionCodec
from integration_core.hub import Hub
from integration_core.models import Invoice
from integration_core.outbox import find_task
from integration_core.providers.ledger import ledger
from integration_core.store.schema import audit_log, console_operators
from tests.console_helpers import LIMITED_PASSWORD, PASSWORD, add_operators, csrf_of, login, post
from tests.workers.helpers import add_connection, drain, invoice

SCRIPT_NAME = '<script>alert("pwned")</script>'


@pytest.fixture
def served(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Tenant t1 (one invoice done, one in GBP failed) and tenant t2 (a GBP invoice for a customer whose
    name is a script tag, failed), signed-in operators for all tenants and for t2 only.

    Hashes here use p=1 instead of the production p=5 (stored in each hash, so every code path is the
    same): these tests sign in dozens of times; tests/test_console_cli.py checks the production cost."""
    from integration_core.console import operators

    monkeypatch.setattr(operators, "SCRYPT_P", 1)
    c1, acct1 = add_connection(hub, tenant="t1", env="prod")
    c2, acct2 = add_connection(hub, tenant="t2", env="prod")
    hub.update_connection(c2.id, name="<img src=x onerror=alert(2)> books")
    hub.submit_invoice("t1", "prod", invoice(1))
    hub.submit_invoice("t1", "prod", invoice(2, currency="GBP"))
    evil = invoice(3, currency="GBP").to_dict()
    evil["customer"] = {"id": "cust-x", "name": SCRIPT_NAME, "email": "evil@example.com"}
    hub.submit_invoice("t2", "prod", Invoice.from_dict(evil))
    drain(hub)
    add_operators(hub)
    with server.running(hub) as srv:
        yield {"hub": hub, "base": srv.url + "/console", "c1": c1, "c2": c2, "acct1": acct1, "acct2": acct2,
               "t1_failed": find_task(hub, c1.id, "inv-2"), "t1_done": find_task(hub, c1.id, "inv-1"),
               "t2_failed": find_task(hub, c2.id, "inv-3")}


def test_nothing_without_login(served: dict[str, Any]) -> None:
    base = served["base"]
    for path in ("/", "/connections", f"/tasks/{served['t1_failed'].id}", "/events", "/search?q=inv-1"):
        r = requests.get(base + path, allow_redirects=False, timeout=10)
        assert r.status_code == 303 and "/console/login" in r.headers["Location"], path
        assert "inv-" not in r.text
    r = requests.post(base + f"/tasks/{served['t1_failed'].id}/retry", data={"csrf": "x"}, timeout=10)
    assert r.status_code == 403
    assert find_task(served["hub"], served["c1"].id, "inv-2").status == "failed"
    css = requests.get(base + "/static/console.css", timeout=10)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")


def test_login_wrong_then_right_and_logout(served: dict[str, Any]) -> None:
    base, hub = served["base"], served["hub"]
    s = requests.Session()
    page = s.get(base + "/login", timeout=10)
    assert "ic_console" in s.cookies.get_dict()
    wrong = s.post(base + "/login", data={"csrf": csrf_of(page.text), "name": "admin", "secret": "nope"},
                   allow_redirects=False, timeout=30)
    assert wrong.status_code == 401 and "Wrong name" in wrong.text
    typo = s.post(base + "/login", data={"csrf": csrf_of(wrong.text), "name": PASSWORD, "secret": "admin"},
                  allow_redirects=False, timeout=30)  # a password typed into the name field is not recorded
    assert typo.status_code == 401
    right = s.post(base + "/login", data={"csrf": csrf_of(typo.text), "name": "admin", "secret": PASSWORD,
                                          "next": "/tasks"}, allow_redirects=False, timeout=30)
    assert right.status_code == 303 and right.headers["Location"] == "/console/tasks"
    cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    home = s.get(base + "/", timeout=10)
    assert home.status_code == 200 and "Overview" in home.text and "admin" in home.text
    # The chart's totals over the last 24 hours: inv-1 synced; inv-2 and inv-3 failed.
    assert "synced (1)" in home.text and "failed (2)" in home.text
    assert "default-src 'none'" in home.headers["Content-Security-Policy"]
    out = s.post(base + "/logout", data={"csrf": csrf_of(home.text)}, allow_redirects=False, timeout=10)
    assert out.status_code == 303
    assert s.get(base + "/", allow_redirects=False, timeout=10).status_code == 303
    with hub.engine.connect() as db:
        actions = [(r.action, r.actor) for r in db.execute(
            sa.select(audit_log).where(audit_log.c.subject == "operator", audit_log.c.subject_id == "admin")
            .order_by(audit_log.c.id))]
    assert ("login_failed", None) in actions
    assert ("login", "console:admin") in actions and ("logout", "console:admin") in actions
    with hub.engine.connect() as db:
        failures = list(db.execute(sa.select(audit_log).where(audit_log.c.action == "login_failed")))
    assert len(failures) == 2 and {f.subject_id for f in failures} == {"admin", None}
    assert all(PASSWORD not in (f.detail or "") for f in failures)


def test_login_redirect_stays_inside_the_console(served: dict[str, Any]) -> None:
    base = served["base"]
    s = requests.Session()
    page = s.get(base + "/login", timeout=10)
    r = s.post(base + "/login", data={"csrf": csrf_of(page.text), "name": "admin", "secret": PASSWORD,
                                      "next": "//evil.example/x"}, allow_redirects=False, timeout=30)
    assert r.status_code == 303 and r.headers["Location"] == "/console/"


def test_csrf_token_required_for_every_action(served: dict[str, Any]) -> None:
    base, hub, task = served["base"], served["hub"], served["t1_failed"]
    s = login(base)
    action = base + f"/tasks/{task.id}/retry"
    assert s.post(action, allow_redirects=False, timeout=10).status_code == 403
    assert s.post(action, json={"csrf": "x"}, allow_redirects=False, timeout=10).status_code == 403
    assert s.post(action, data={}, allow_redirects=False, timeout=10).status_code == 403
    assert s.post(action, data={"csrf": "forged"}, allow_redirects=False, timeout=10).status_code == 403
    token = csrf_of(s.get(base + f"/tasks/{task.id}", timeout=10).text)
    other = s.post(action, data={"csrf": token}, headers={"Origin": "http://evil.example"}, allow_redirects=False,
                   timeout=10)
    assert other.status_code == 403
    for path in (f"/connections/{served['c1'].id}/disable", f"/connections/{served['c1'].id}/retry-failed"):
        assert s.post(base + path, data={"csrf": ""}, allow_redirects=False, timeout=10).status_code == 403
    assert find_task(hub, served["c1"].id, "inv-2").status == "failed"
    assert hub.get_connection(served["c1"].id).status == "active"
    ok = s.post(action, data={"csrf": token}, allow_redirects=False, timeout=10)
    assert ok.status_code == 303
    assert find_task(hub, served["c1"].id, "inv-2").status == "pending"
    with hub.engine.connect() as db:
        row = db.execute(sa.select(audit_log).where(audit_log.c.subject == "task",
                                                    audit_log.c.subject_id == str(task.id),
                                                    audit_log.c.action == "retry_requested")).one()
    assert row.actor == "console:admin"
    page = s.get(base + ok.headers["Location"].removeprefix("/console"), timeout=10)
    assert "console:admin" in page.text and "Queued again" in page.text


def test_fix_and_retry_over_http(served: dict[str, Any]) -> None:
    base, hub, task = served["base"], served["hub"], served["t1_failed"]
    s = login(base)
    page = s.get(base + f"/tasks/{task.id}", timeout=10)
    assert "currency GBP is not enabled" in page.text
    ledger(served["acct1"]).currencies.add("GBP")  # the operator fixes the cause at the provider
    assert post(s, base, f"/tasks/{task.id}", f"/tasks/{task.id}/retry").status_code == 303
    drain(hub)
    done = find_task(hub, served["c1"].id, "inv-2")
    assert done.status == "done" and done.remote_id
    page = s.get(base + f"/tasks/{task.id}", timeout=10)
    assert done.remote_id in page.text and 'id="retry"' not in page.text
    # The connection's page shows the shared request log the push spent from (not a stale column).
    assert "request(s) in the last minute" in s.get(base + f"/connections/{served['c1'].id}", timeout=10).text
    again = post(s, base, f"/tasks/{task.id}", f"/tasks/{task.id}/retry")
    assert again.status_code == 409 and "only failed, dead or paused" in again.text


def test_tenant_limited_login_sees_and_touches_only_its_tenant(served: dict[str, Any]) -> None:
    base, hub = served["base"], served["hub"]
    s = login(base, "t2-support", LIMITED_PASSWORD)
    other, own = served["t1_failed"], served["t2_failed"]
    assert s.get(base + f"/tasks/{other.id}", timeout=10).status_code == 404
    assert s.get(base + f"/connections/{served['c1'].id}", timeout=10).status_code == 404
    token = csrf_of(s.get(base + "/", timeout=10).text)
    assert s.post(base + f"/tasks/{other.id}/retry", data={"csrf": token}, timeout=10).status_code == 404
    assert s.post(base + f"/connections/{served['c1'].id}/disable", data={"csrf": token},
                  timeout=10).status_code == 404
    assert find_task(hub, served["c1"].id, "inv-2").status == "failed"
    assert hub.get_connection(served["c1"].id).status == "active"
    for path in ("/", "/tasks", "/tasks?status=failed", "/connections", "/events", "/search?q=inv-2",
                 "/search?q=c1%40example.com"):
        text = s.get(base + path, timeout=10).text
        assert served["c1"].id not in text and f"/tasks/{other.id}\"" not in text, path
        assert f"/tasks/{served['t1_done'].id}\"" not in text and ">inv-1<" not in text, path
    assert s.get(base + f"/tasks/{own.id}", timeout=10).status_code == 200
    assert "inv-3" in s.get(base + "/tasks", timeout=10).text


def test_names_and_messages_are_text_not_markup(served: dict[str, Any]) -> None:
    base, task = served["base"], served["t2_failed"]
    s = login(base)
    pages = [s.get(base + p, timeout=10).text for p in (
        f"/tasks/{task.id}", "/tasks", "/", "/connections", f"/connections/{served['c2'].id}",
        "/search?q=evil%40example.com", "/search?q=%3Cscript%3E")]
    for text in pages:
        assert "<script" not in text.lower() and "<img" not in text.lower()
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in pages[0]
    assert "&lt;img src=x onerror=alert(2)&gt; books" in pages[3]
    assert "inv-3" in pages[5]  # found by the customer's email


def test_secrets_show_as_set_never_their_values(served: dict[str, Any]) -> None:
    base, c1, acct = served["base"], served["c1"], served["acct1"]
    s = login(base)
    page = s.get(base + f"/connections/{c1.id}", timeout=10).text
    assert "key-" + acct not in page and "whsec" + acct not in page
    assert "api_key" in page and "webhook_secret" in page and "set" in page
    assert "/v1/webhooks/ledger/t1/prod" in page
    assert re.search(r'id="rate-limit">\d+ requests per [\d.]+ s', page)  # the provider's declared limit


def test_connection_actions_disable_enable_retry_all(served: dict[str, Any]) -> None:
    base, hub, c1 = served["base"], served["hub"], served["c1"]
    s = login(base)
    page = f"/connections/{c1.id}"
    assert post(s, base, page, f"/connections/{c1.id}/disable").status_code == 303
    assert hub.get_connection(c1.id).status == "disabled"
    assert post(s, base, page, f"/connections/{c1.id}/enable").status_code == 303
    assert hub.get_connection(c1.id).status == "active"
    r = post(s, base, page, f"/connections/{c1.id}/retry-failed")
    assert r.status_code == 303
    assert find_task(hub, c1.id, "inv-2").status == "pending"
    with hub.engine.connect() as db:
        actors = {r.action: r.actor for r in db.execute(
            sa.select(audit_log).where(audit_log.c.connection_id == c1.id, audit_log.c.actor.is_not(None)))}
    assert actors.get("status:disabled") == "console:admin" and actors.get("status:active") == "console:admin"
    assert actors.get("retry_requested") == "console:admin"


def test_changed_password_or_removed_login_ends_sessions(served: dict[str, Any]) -> None:
    base, hub = served["base"], served["hub"]
    s = login(base)
    assert s.get(base + "/", allow_redirects=False, timeout=10).status_code == 200
    set_operator(hub.engine, "admin", "a brand new password")
    assert s.get(base + "/", allow_redirects=False, timeout=10).status_code == 303
    s2 = login(base, "admin", "a brand new password")
    from integration_core.console.operators import remove_operator

    remove_operator(hub.engine, "admin")
    assert s2.get(base + "/", allow_redirects=False, timeout=10).status_code == 303


def test_one_time_login_works_once_and_hashes_only(served: dict[str, Any]) -> None:
    base, hub = served["base"], served["hub"]
    set_operator(hub.engine, "demo", "one-time-secret-123", one_time=True)
    with hub.engine.connect() as db:
        stored = db.execute(sa.select(console_operators.c.secret_hash)
                            .where(console_operators.c.name == "demo")).scalar_one()
    assert stored.startswith("scrypt$") and "one-time-secret-123" not in stored
    s = login(base, "demo", "one-time-secret-123")
    assert s.get(base + "/", allow_redirects=False, timeout=10).status_code == 200  # the session lives on
    again = requests.Session()
    page = again.get(base + "/login", timeout=10)
    r = again.post(base + "/login", data={"csrf": csrf_of(page.text), "name": "demo",
                                          "secret": "one-time-secret-123"}, allow_redirects=False, timeout=30)
    assert r.status_code == 401
    assert not get_operator(hub.engine, "demo").usable


def test_sessions_expire_and_cannot_be_forged() -> None:
    from cryptography.fernet import Fernet

    codec = SessionCodec([Fernet.generate_key()], ttl=60)
    value = codec.dumps(Session.anonymous().signed_in("admin", 1))
    now = int(time.time())
    assert codec.loads(value, now=now + 30) is not None
    assert codec.loads(value, now=now + 61) is None
    assert SessionCodec([Fernet.generate_key()], ttl=60).loads(value) is None
    assert codec.loads(value[:-4] + "AAAA") is None


def test_failed_event_retried_after_the_host_is_fixed(served: dict[str, Any]) -> None:
    from integration_core import inbound
    from tests.test_inbound_support import RecordingHost, ledger_connection

    base, hub = served["base"], served["hub"]
    host = RecordingHost()
    host.fail_payments = 1  # the billing application is down for the first delivery
    hub.plugins.set_host(host)
    setup = ledger_connection(hub, "acme", "prod")
    body, headers = setup.book.pay(setup.secret, setup.remote_invoice)
    delivered = requests.post(base.removesuffix("/console") + setup.path(), data=body, headers=headers, timeout=10)
    assert delivered.status_code == 503
    (event,) = inbound.list_events(hub, connection_id=setup.conn.id)
    assert event["status"] == "failed"
    s = login(base)
    listing = s.get(base + "/events", params={"status": "failed"}, timeout=10).text
    assert f'/console/events/{event["id"]}"' in listing
    page = s.get(base + f"/events/{event['id']}", timeout=10).text
    assert 'id="retry"' in page and event["reason"].split(":")[0] in page
    r = post(s, base, f"/events/{event['id']}", f"/events/{event['id']}/retry")
    assert r.status_code == 303
    after = inbound.get_event(hub, event["id"])
    assert after["status"] == "applied" and len(host.payments) == 1
    with hub.engine.connect() as db:
        actor = db.execute(sa.select(audit_log.c.actor).where(
            audit_log.c.subject == "event", audit_log.c.subject_id == str(event["id"]),
            audit_log.c.action == "retried")).scalar_one()
    assert actor == "console:admin"
    limited = login(base, "t2-support", LIMITED_PASSWORD)  # another tenant's event: not found
    assert limited.get(base + f"/events/{event['id']}", timeout=10).status_code == 404


def test_reauthorize_gives_a_consent_url_that_completes(hub: Hub, zoho_emulator: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("zoho_books")
    from integration_core.console import operators
    from tests.workers.zoho import zoho_connection

    monkeypatch.setattr(operators, "SCRYPT_P", 1)
    port = server.free_port()
    hub.config = attrs_evolve(hub.config, public_url=f"http://127.0.0.1:{port}")
    conn, _ = zoho_connection(hub, zoho_emulator)
    zoho_emulator.add_client("1000.OUTBOUNDTEST", "outbound-client-secret",  # now also our server's callback
                             [f"http://127.0.0.1:{port}/v1/oauth/callback", "http://127.0.0.1:9/callback"])
    hub.set_status(conn.id, "needs_reauth", "refresh token revoked")
    add_operators(hub)
    with server.running(hub, port=port) as srv:
        base = srv.url + "/console"
        s = login(base)
        page = s.get(base + f"/connections/{conn.id}", timeout=10).text
        assert "needs_reauth" in page and "refresh token revoked" in page
        assert "client_secret" in page and "outbound-client-secret" not in page
        r = post(s, base, f"/connections/{conn.id}", f"/connections/{conn.id}/authorize")
        assert r.status_code == 200
        consent = re.search(r'id="authorize-url" readonly value="([^"]+)"', r.text)
        assert consent and consent.group(1).startswith(zoho_emulator.base_url)
        grant = requests.get(html.unescape(consent.group(1)), allow_redirects=False, timeout=10)
        assert grant.status_code == 302
        callback = requests.get(grant.headers["Location"], timeout=30)
        assert callback.status_code == 200
    assert hub.get_connection(conn.id).status == "active"
