"""Proof: secrets are encrypted at rest, never logged, never answered, and rotatable under load (DESIGN §5).

A realistic run — Zoho Books connections authorized through the emulator's OAuth dance, invoices pushed,
access tokens expired and refreshed, webhooks received, a refused authorization, a revoked grant, a
disconnect — with every logger (urllib3 and requests included) at DEBUG. Then the database (for SQLite the
file and its -wal/-shm, for both every row of every table), the captured log, every dispatcher response
and the reprs of the objects a developer would print hold no client secret, access or refresh token or
webhook secret in clear. Key rotation: while a thread pushes invoices and forces token refreshes, a new
key is put first, ``rotate_secrets`` runs, the old key is dropped, and every secret is still readable.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from zoho_books.emulator import SIGNATURE_HEADER, sign

from integration_core import mapping
from integration_core.config import Config
from integration_core.errors import IntegrationError
from integration_core.hub import Hub
from integration_core.models import ConnectionStatus, TaskStatus
from integration_core.outbox import Outbound, OutboundSettings
from integration_core.server import running
from integration_core.store.db import is_postgres
from integration_core.store.schema import connections, metadata
from integration_core.testing import wait_until
from integration_core.vault import Vault, generate_key

from .proof.host import CountingHost
from .proof.zoho import (
    CLIENT_ID,
    REDIRECT_URI,
    client_secret,
    drain,
    make_invoice,
    mappings,
    push_host_invoices,
    task_counts,
    webhook_secret,
    zoho_connection,
)

FAST = OutboundSettings(backoff_base=0.001, backoff_cap=0.01, lease_seconds=5.0)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)  # includes the formatted traceback of exc_info, if any
        with self.guard:
            self.lines.append(text)

    @property
    def text(self) -> str:
        with self.guard:
            return "\n".join(self.lines)


@pytest.fixture
def debug_log() -> Iterator[Capture]:
    """Every logger at DEBUG into one list (urllib3 logs each request line, requests its redirects)."""
    handler = Capture()
    root = logging.getLogger()
    for name in ("urllib3", "urllib3.connectionpool", "requests", "integration_core", "zoho_books"):
        logging.getLogger(name)  # exist before the levels are saved, so they are restored too
    saved = {name: lg.level for name, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    root_level = root.level
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    root.setLevel(root_level)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def all_rows_text(hub: Hub) -> str:
    with hub.engine.connect() as db:
        return "\n".join(repr(row) for table in metadata.sorted_tables for row in db.execute(sa.select(table)))


def leaks(secrets: set[str], **places: str | bytes) -> list[str]:
    found = []
    for where, text in places.items():
        data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
        found += [f"{where}: {s[:12]}..." for s in secrets if s.encode() in data]
    return found


def test_no_secret_in_clear_in_database_logs_responses_or_reprs(hub: Hub, config: Config, tmp_path: Path,
                                                               zoho_emulator_factory, debug_log: Capture) -> None:  # type: ignore[no-untyped-def]
    host = CountingHost(tmp_path / "billing.sqlite3")
    hub.plugins.set_host(host)
    emu = zoho_emulator_factory(rate_limit_per_minute=1_000_000, refresh_limit=10_000)
    conn = zoho_connection(hub, emu, settings={"rate_limit_per_minute": "1000000"})
    org = conn.settings["organization_id"]
    invoices = push_host_invoices(hub, host, "t1", "live", 20, customers=4)
    emu.expire_tokens()  # every API call now answers 401 until the token is refreshed
    for n in range(10):
        hub.submit_invoice("t1", "live", make_invoice(n, 3))
    drain(hub, Outbound(hub, "secrets-w1", FAST))
    assert task_counts(hub) == {TaskStatus.DONE: 30}
    assert len(emu.oauth.refresh_tokens) == 1 and len(emu.oauth.access_tokens) >= 2  # at least one refresh

    bodies: list[bytes] = []
    errors: list[str] = []
    with running(hub) as srv:
        base = srv.url + "/v1/webhooks/zoho_books/t1/live"
        rid = mappings(hub, conn.id, mapping.INVOICE)[invoices[0].id]
        emu.record_payment(org, rid)
        paid = emu.invoice_webhook(org, rid)
        body = json.dumps({"invoice": paid}).encode()
        good = requests.post(base, data=body, headers={SIGNATURE_HEADER: sign(webhook_secret(), body)}, timeout=10)
        assert good.status_code == 200 and good.json()["applied"] == 1
        for response in (
            good,
            requests.post(base, data=body, headers={SIGNATURE_HEADER: sign(client_secret(), body)}, timeout=10),
            requests.post(base, data=body, timeout=10),
            requests.post(base, data=b"{", headers={SIGNATURE_HEADER: sign(webhook_secret(), b"{")}, timeout=10),
            requests.get(base, timeout=10),
            requests.post(srv.url + "/v1/webhooks/zoho_books/t1/other", data=body, timeout=10),
            requests.get(srv.url + "/v1/oauth/callback", params={"state": "nope", "code": "x"}, timeout=10),
            requests.get(srv.url + "/v1/oauth/callback", params={"error": "access_denied"}, timeout=10),
            requests.get(srv.url + "/healthz", timeout=10),
        ):
            bodies.append(response.content)
            bodies.append(repr(dict(response.headers)).encode())

        # A refused authorization: the client secret typed in is wrong (Zoho answers invalid_client).
        bad = hub.add_connection(tenant_id="t2", environment_id="live", provider="zoho_books", name="Wrong secret",
                                 values={"client_id": CLIENT_ID, "client_secret": "wrong-" + client_secret("x"),
                                         "organization_id": org, "accounts_server": emu.base_url,
                                         "webhook_secret": webhook_secret("t2")})
        url = hub.start_authorization(bad.id, REDIRECT_URI)
        location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
        callback = srv.url + "/v1/oauth/callback?" + location.split("?", 1)[1]
        answer = requests.get(callback, timeout=10)
        assert answer.status_code == 400 and hub.get_connection(bad.id).status == ConnectionStatus.PENDING_AUTH
        bodies.append(answer.content)

    # A revoked grant: refresh is refused, the connection needs re-authorization, the task waits.
    emu.oauth.revoke(hub.context(conn).secrets["refresh_token"])
    emu.expire_tokens()
    hub.submit_invoice("t1", "live", make_invoice(99, 3))
    Outbound(hub, "secrets-w2", FAST).tick()
    assert hub.get_connection(conn.id).status == ConnectionStatus.NEEDS_REAUTH
    with pytest.raises(IntegrationError) as refused:
        hub.check_connection(conn.id)
    errors += [str(refused.value), repr(refused.value), repr(refused.value.args)]

    secrets = {client_secret(), "wrong-" + client_secret("x"), webhook_secret(), webhook_secret("t2"),
               *emu.oauth.access_tokens, *emu.oauth.refresh_tokens}
    assert len(secrets) >= 7

    # At rest: the secrets column holds Fernet tokens only; the clear values are nowhere in the database.
    with hub.engine.connect() as db:
        stored = dict(db.execute(sa.select(connections.c.id, connections.c.secrets)).all())
    assert hub.keys.vault.decrypt(stored[conn.id])["client_secret"] == client_secret()  # stored, encrypted
    places: dict[str, str | bytes] = {"rows": all_rows_text(hub)}
    if not is_postgres(hub.engine):
        path = Path(config.database_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                places[f"file{suffix}"] = Path(f"{path}{suffix}").read_bytes()
        assert "file-wal" in places
    ctx = hub.context(conn)
    places["reprs"] = "\n".join([repr(hub), str(hub), repr(ctx), str(ctx), repr(ctx.secrets), str(ctx.secrets),
                                 repr(hub.get_connection(conn.id)), repr(hub.list_connections()), repr(hub.keys.vault),
                                 repr(hub.config), repr(hub.plugins)])
    places["responses"] = b"\n".join(bodies)
    places["errors"] = "\n".join(errors)
    places["log"] = debug_log.text
    assert "urllib3.connectionpool DEBUG" in debug_log.text  # the capture did see the HTTP layer
    assert leaks(secrets, **places) == []


def test_disconnect_does_not_log_the_refresh_token(hub: Hub, zoho_emulator_factory, debug_log: Capture) -> None:  # type: ignore[no-untyped-def]
    """Disconnecting revokes the refresh token at Zoho; the token must not reach a log on the way."""
    emu = zoho_emulator_factory()
    conn = zoho_connection(hub, emu, tenant="t3", tag="t3")
    refresh_token = hub.context(conn).secrets["refresh_token"]
    hub.provider("zoho_books").disconnect(ctx=hub.context(conn))
    assert emu.oauth.refresh_tokens[refresh_token].revoked
    assert "refresh_token" not in hub.context(conn).secrets
    assert "urllib3.connectionpool DEBUG" in debug_log.text
    assert leaks({refresh_token, client_secret("t3"), webhook_secret("t3")}, log=debug_log.text) == []


def test_encryption_keys_are_not_in_the_config_repr(tmp_path: Path) -> None:
    key = generate_key()
    config = Config(database_url=f"sqlite:///{tmp_path / 'x.sqlite3'}", keys=(key,))
    assert key not in repr(config) and key not in str(config)
    hub = Hub(config)
    assert key not in repr(hub) and key not in repr(hub.keys.vault)
    hub.engine.dispose()


def test_key_rotation_under_load_loses_nothing(hub: Hub, zoho_emulator_factory) -> None:  # type: ignore[no-untyped-def]
    emu = zoho_emulator_factory(rate_limit_per_minute=1_000_000, refresh_limit=10_000)
    conn = zoho_connection(hub, emu, settings={"rate_limit_per_minute": "1000000"})
    old_keys = list(hub.keys.vault._fernets)
    assert hub.keys.vault.key_count == 1 and old_keys
    stop = threading.Event()
    failures: list[BaseException] = []
    pushed = [0]

    def load() -> None:
        outbound = Outbound(hub, "rotation-load", FAST)
        n = 0
        try:
            while not stop.is_set():
                hub.submit_invoice("t1", "live", make_invoice(n, 7, prefix="R"))
                n += 1
                if n % 3 == 0:
                    emu.expire_tokens()  # the next call refreshes: a secrets write racing the rotation
                while outbound.tick().attempted:
                    pass
                pushed[0] = n
        except BaseException as exc:  # surfaced by the main thread
            failures.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        assert wait_until(lambda: pushed[0] >= 10 or bool(failures), timeout=60)
        new_key = generate_key()
        old_key_file_keys = [k for k in Path(hub.config.key_file).read_text().splitlines() if not k.startswith("#")]
        hub.keys.vault = Vault([new_key, *old_key_file_keys])  # step 1: the new key first, old ones still decrypt
        assert hub.rotate_secrets() >= 1  # step 2: re-encrypt everything under the new key
        assert hub.secrets_readable_by_primary_key()
        mark = pushed[0]
        assert wait_until(lambda: pushed[0] >= mark + 10 or bool(failures), timeout=60)
        hub.keys.vault = Vault([new_key])  # step 3: drop the old key
        mark = pushed[0]
        assert wait_until(lambda: pushed[0] >= mark + 10 or bool(failures), timeout=60)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert failures == []
    drain(hub, Outbound(hub, "rotation-final", FAST))
    counts = task_counts(hub)
    assert counts == {TaskStatus.DONE: pushed[0]} or counts == {TaskStatus.DONE: pushed[0] + 1}
    assert len(emu.invoices(conn.settings["organization_id"])) == sum(counts.values())
    with hub.engine.connect() as db:
        tokens = db.execute(sa.select(connections.c.secrets)).scalars().all()
    only_new = Vault([new_key])
    for token in tokens:
        values = only_new.decrypt(token)
        assert values["client_secret"] == client_secret() and values["webhook_secret"] == webhook_secret()
        assert values["refresh_token"] in emu.oauth.refresh_tokens
        assert not emu.oauth.refresh_tokens[values["refresh_token"]].revoked
    assert len(emu.oauth.access_tokens) > 3  # tokens were refreshed (and written) throughout
    emu.expire_tokens()
    assert hub.check_connection(conn.id).account_name  # the stored refresh token still works, under the new key
    assert hub.get_connection(conn.id).status == ConnectionStatus.ACTIVE
