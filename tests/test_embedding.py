"""The embedding recipes of docs/embedding.md, served by real Django, Flask and FastAPI apps on 127.0.0.1.

Django and Flask run under waitress (a WSGI server), FastAPI under uvicorn, each in a thread of this
process with the recipe's code from ``examples/embedding``. Zoho webhooks are signed by the emulator and
posted over HTTP: a payment recorded once under replays, a forged signature refused with 401, an
oversized body refused, a form-encoded delivery verified, and a JSON body whose exact bytes (odd
whitespace, key order, escapes) any re-serialization would break.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from integration_core import mapping
from integration_core.hub import Hub
from integration_core.store.schema import inbox_events
from integration_core.testing import free_port
from reference_host import ReferenceHost

pytest.importorskip("django")
pytest.importorskip("flask")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("waitress")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.embedding import django_recipe, fastapi_recipe, flask_recipe  # noqa: E402

CLIENT_ID = "1000.EMBEDDINGTEST"
SECRET = "EmbedSecret12345"
PREFIX = "/billing/hooks"
FRAMEWORKS = ["django", "flask", "fastapi", "fastapi-a2wsgi"]


# --- servers -----------------------------------------------------------------------------------------


def _waitress(app: Callable[..., Any]) -> Iterator[str]:
    from waitress.server import create_server

    server: Any = create_server(app, host="127.0.0.1", port=0, threads=4)

    def run() -> None:
        with contextlib.suppress(OSError, ValueError):  # the sockets are closed under the loop on stop
            server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:  # as integration_core.server stops: workers, the listener, then open connections
        server.task_dispatcher.shutdown()
        server.close()
        for channel in list(server._map.values()):
            channel.close()
        thread.join(timeout=10)


def _uvicorn(app: Any) -> Iterator[str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _django_app(hub: Hub) -> Any:
    import django
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.urls import clear_url_caches, include, path

    urlconf = sys.modules.setdefault("embedding_test_urls", types.ModuleType("embedding_test_urls"))
    if not settings.configured:
        settings.configure(**django_recipe.settings_for_tests("embedding_test_urls"))
        django.setup()
    urlconf.urlpatterns = [path(f"{PREFIX.strip('/')}/", include(django_recipe.webhook_urls(hub, prefix="")))]  # type: ignore[attr-defined]
    clear_url_caches()
    return get_wsgi_application()


def _flask_app(hub: Hub) -> Any:
    from flask import Flask

    app = Flask("embedding_test")
    app.register_blueprint(flask_recipe.webhook_blueprint(hub), url_prefix=PREFIX)
    return app


def _fastapi_app(hub: Hub) -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    app.include_router(fastapi_recipe.webhook_router(hub), prefix=PREFIX)
    return app


def _fastapi_mounted(hub: Hub) -> Any:
    from fastapi import FastAPI

    app = FastAPI()
    app.mount(PREFIX, fastapi_recipe.mounted_app(hub))
    return app


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def billing(tmp_path: Path) -> ReferenceHost:
    return ReferenceHost(tmp_path / "billing.sqlite3")


@pytest.fixture
def base_url(framework: str, hub: Hub, billing: ReferenceHost) -> Iterator[str]:
    hub.plugins.set_host(billing)
    if framework == "django":
        yield from _waitress(_django_app(hub))
    elif framework == "flask":
        yield from _waitress(_flask_app(hub))
    elif framework == "fastapi":
        yield from _uvicorn(_fastapi_app(hub))
    else:
        yield from _uvicorn(_fastapi_mounted(hub))


class Tenant:
    """A Zoho organization in the emulator, a connection to it, and one invoice linked to a remote one."""

    def __init__(self, hub: Hub, emulator: Any, billing: ReferenceHost, base_url: str) -> None:
        self.emulator = emulator
        self.org = emulator.add_organization(name="acme org", currency_code="USD")
        self.conn = hub.add_connection(
            tenant_id="acme", environment_id="prod", provider="zoho_books", name="acme books",
            values={"client_id": CLIENT_ID, "client_secret": "s3cret-client", "organization_id": self.org,
                    "accounts_server": emulator.base_url, "webhook_secret": SECRET},
        )
        self.url = f"{base_url}{PREFIX}/v1/webhooks/zoho_books/acme/prod"
        customer = billing.add_customer("acme", "prod", "Ada", "ada@acme.example")
        self.invoice = billing.add_invoice("acme", "prod", customer.id, [("Consulting", "150.00")])
        contact, _ = emulator.create_contact(self.org, "Ada", email=customer.email)
        remote = emulator.create_invoice(self.org, contact["contact_id"], [{"name": "Consulting", "rate": "150.00"}],
                                         invoice_number=self.invoice.number)
        self.remote_invoice = remote["invoice_id"]
        with hub.engine.begin() as db:
            mapping.link(db, self.conn.id, mapping.INVOICE, self.invoice.id, self.remote_invoice)


def inbox_count(hub: Hub) -> int:
    with hub.engine.connect() as db:
        return int(db.execute(sa.select(sa.func.count()).select_from(inbox_events)).scalar_one())


# --- the four behaviours, in every framework ---------------------------------------------------------------


@pytest.mark.timeout(120)
def test_payment_recorded_once_under_replays(hub: Hub, zoho_emulator: Any, billing: ReferenceHost,
                                             base_url: str) -> None:
    t = Tenant(hub, zoho_emulator, billing, base_url)
    _, first = zoho_emulator.record_payment(t.org, t.remote_invoice, date="2026-02-01", webhook_url=t.url,
                                            secret=SECRET)
    assert first.status == 200, first.response
    assert json.loads(first.response)["applied"] == 1
    record = zoho_emulator.invoice_webhook(t.org, t.remote_invoice)
    replays = [zoho_emulator.send_webhook(t.url, "invoice", record, SECRET) for _ in range(4)]
    assert [r.status for r in replays] == [200] * 4
    assert all(json.loads(r.response)["duplicates"] == 1 for r in replays)
    assert len(billing.payments()) == 1
    assert billing.invoice(t.invoice.id)["status"] == "paid"
    assert inbox_count(hub) == 1


def test_forged_signature_is_401_and_stores_nothing(hub: Hub, zoho_emulator: Any, billing: ReferenceHost,
                                                    base_url: str) -> None:
    t = Tenant(hub, zoho_emulator, billing, base_url)
    zoho_emulator.record_payment(t.org, t.remote_invoice, date="2026-02-01")
    record = zoho_emulator.invoice_webhook(t.org, t.remote_invoice)
    forged = zoho_emulator.send_webhook(t.url, "invoice", record, "ForgedSecret0000")
    assert forged.status == 401
    unsigned = zoho_emulator.send_webhook(t.url, "invoice", record, None)
    assert unsigned.status == 401
    assert inbox_count(hub) == 0 and billing.payments() == []


def test_oversized_body_is_refused(hub: Hub, zoho_emulator: Any, billing: ReferenceHost, base_url: str) -> None:
    t = Tenant(hub, zoho_emulator, billing, base_url)
    limit = hub.config.max_webhook_bytes
    big = b'{"invoice": {"pad": "' + b"x" * limit + b'"}}'
    answer = requests.post(t.url, data=big, headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 413
    # streamed without a Content-Length (chunked): refused while reading, never stored
    chunked = requests.post(t.url, data=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]),
                            headers={"Content-Type": "application/json"}, timeout=30)
    assert chunked.status_code == 413
    assert inbox_count(hub) == 0


def test_form_encoded_delivery_is_verified(hub: Hub, zoho_emulator: Any, billing: ReferenceHost,
                                           base_url: str) -> None:
    t = Tenant(hub, zoho_emulator, billing, base_url)
    zoho_emulator.void_invoice(t.org, t.remote_invoice)
    record = zoho_emulator.invoice_webhook(t.org, t.remote_invoice)
    form = {"JSONString": json.dumps({"invoice": record})}
    delivery = zoho_emulator.send_webhook(t.url, "invoice", record, SECRET, query={"source": "workflow"}, form=form)
    assert delivery.status == 200, delivery.response
    assert billing.invoice(t.invoice.id)["status"] == "void"
    wrong = zoho_emulator.send_webhook(t.url, "invoice", record, "WrongSecret00000", form=form)
    assert wrong.status == 401


def test_raw_json_bytes_reach_the_signature_check_unchanged(hub: Hub, zoho_emulator: Any, billing: ReferenceHost,
                                                            base_url: str) -> None:
    from zoho_books.emulator.signing import SIGNATURE_HEADER, sign

    t = Tenant(hub, zoho_emulator, billing, base_url)
    zoho_emulator.record_payment(t.org, t.remote_invoice, date="2026-02-01")
    record = zoho_emulator.invoice_webhook(t.org, t.remote_invoice)
    # Unsorted keys, spaces and newlines, escaped non-ASCII: any parse-and-dump changes these bytes.
    doc = {"invoice": dict(reversed(list({**record, "notes": "Café ☕"}.items())))}
    body = ("\n  " + json.dumps(doc, indent=3, ensure_ascii=True) + "  \n").encode()
    assert json.dumps(json.loads(body)).encode() != body
    answer = requests.post(t.url + "?source=workflow", data=body, timeout=30, headers={
        "Content-Type": "application/json;charset=UTF-8", SIGNATURE_HEADER: sign(SECRET, body, {"source": "workflow"})})
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == 1 and len(billing.payments()) == 1


def test_the_guide_shows_the_tested_recipes() -> None:
    guide = (ROOT / "docs" / "embedding.md").read_text()
    for name in ("flask_recipe.py", "fastapi_recipe.py"):
        assert (ROOT / "examples" / "embedding" / name).read_text().rstrip() in guide, name
    django = (ROOT / "examples" / "embedding" / "django_recipe.py").read_text().split("def settings_for_tests")[0]
    assert django.rstrip() in guide
