"""The dispatcher under a real gunicorn (several worker processes), and ``integration-core serve``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from integration_core import mapping
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.store.schema import inbox_events
from integration_core.testing import free_port, wait_until
from reference_host import ReferenceHost

from .test_inbound_support import ledger_connection

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env(config: Config, billing: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(IC_DATABASE_URL=config.database_url, IC_KEY_FILE=config.key_file, IC_HOST="reference_host:from_env",
               REFERENCE_HOST_DB=str(billing), PYTHONPATH=str(ROOT))
    return env


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            return requests.get(url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    assert wait_until(up, timeout=30), "server did not become healthy"


@pytest.fixture
def billing_setup(hub: Hub, tmp_path: Path) -> Iterator[tuple[ReferenceHost, object, str]]:
    billing = ReferenceHost(tmp_path / "billing.sqlite3")
    setup = ledger_connection(hub, "acme", "prod")
    customer = billing.add_customer("acme", "prod", "Ada", "ada@example.com")
    inv = billing.add_invoice("acme", "prod", customer.id, [("Consulting", "120.00")])
    contact = setup.book.create_contact("Ada", "ada@example.com")
    remote = setup.book.create_invoice(inv, contact.id)
    with hub.engine.begin() as db:
        mapping.link(db, setup.conn.id, mapping.INVOICE, inv.id, remote.id)
    yield billing, setup, remote.id


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("app", ["integration_core.webhooks:app_from_env()", "integration_core.webhooks:gunicorn_app"])
def test_gunicorn_workers_apply_concurrent_duplicates_once(hub: Hub, config: Config, tmp_path: Path, app: str,
                                                            billing_setup) -> None:  # type: ignore[no-untyped-def]
    billing, setup, remote_id = billing_setup
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "-w", "3", "--threads", "4", "-b", f"127.0.0.1:{port}", app],
        cwd=ROOT, env=_env(config, billing.path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        body, headers = setup.book.pay(setup.secret, remote_id)
        codes: list[int] = []
        barrier = threading.Barrier(12)

        def deliver() -> None:
            barrier.wait()
            codes.append(requests.post(url + setup.path(), data=body, headers=headers, timeout=30).status_code)

        threads = [threading.Thread(target=deliver) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [200] * 12
        assert requests.post(url + setup.path(), data=body, headers={}, timeout=10).status_code == 401
        assert requests.get(url + setup.path(), timeout=10).status_code == 405
        assert requests.post(url + "/v1/webhooks/ledger/acme/nope", data=body, headers=headers,
                             timeout=10).status_code == 404
        big = b"x" * (config.max_webhook_bytes + 1)
        assert requests.post(url + setup.path(), data=iter([big]), headers=headers, timeout=30).status_code == 413
    finally:
        _stop(proc)
    assert len(billing.payments()) == 1
    assert billing.invoice(billing.payments()[0]["invoice_id"])["status"] == "paid"
    with hub.engine.connect() as db:
        (row,) = db.execute(sa.select(inbox_events)).fetchall()
    assert (row.status, row.deliveries) == ("applied", 12)


def test_integration_core_serve_command(hub: Hub, config: Config, billing_setup) -> None:  # type: ignore[no-untyped-def]
    billing, setup, remote_id = billing_setup
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "integration-core"), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-scheduler"],
        cwd=ROOT, env=_env(config, billing.path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        body, headers = setup.book.pay(setup.secret, remote_id)
        r = requests.post(url + setup.path(), data=body, headers=headers, timeout=10)
        assert r.status_code == 200 and r.json()["applied"] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    assert billing.invoice(billing.payments()[0]["invoice_id"])["status"] == "paid"
