"""A connection that falls back to its provider's provider-level webhook secret (``apps.py``): a new value set
with the real CLI (``providers configure``, another process) is used by the running dispatcher's next
webhook at once, and the old one is refused at once, although the dispatcher caches connection contexts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import requests

from integration_core import mapping
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.providers.ledger import SIGNATURE_HEADER, sign
from integration_core.server import running

from .test_inbound_support import RecordingHost

ROOT = Path(__file__).resolve().parents[1]


def configure(config: Config, secret: str) -> None:
    """``integration-core providers configure faulty --secret webhook_secret`` in its own process."""
    env = {**os.environ, "IC_DATABASE_URL": config.database_url, "IC_KEY_FILE": str(config.key_file),
           "IC_SECRET_WEBHOOK_SECRET": secret, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "integration_core", "providers", "configure", "faulty",
                           "--secret", "webhook_secret"], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr


def test_a_new_provider_level_webhook_secret_takes_effect_at_once(hub: Hub, config: Config) -> None:
    host = RecordingHost()
    hub.plugins.set_host(host)
    old, new = "whsec-provider-old-" + uuid.uuid4().hex[:8], "whsec-provider-new-" + uuid.uuid4().hex[:8]
    configure(config, old)
    account = "acct-" + uuid.uuid4().hex[:10]
    conn = hub.add_connection(tenant_id="acme", environment_id="prod", provider="faulty", name="acme books",
                              values={"account": account, "api_key": "k-" + account})  # no webhook secret of its own
    with hub.engine.begin() as db:
        mapping.link(db, conn.id, mapping.INVOICE, "INV-1", "R-1")
    sent = 0

    def post(url: str, secret: str) -> int:
        nonlocal sent
        sent += 1
        data = {"invoice_id": "R-1", "amount": "10.00", "currency": "USD", "paid_on": "2026-01-15",
                "payment_id": f"P-{sent}"}
        body = json.dumps({"type": "invoice.paid", "data": data}).encode()
        headers = {SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"}
        return requests.post(url, data=body, headers=headers, timeout=30).status_code

    with running(hub) as srv:
        url = srv.url + "/v1/webhooks/faulty/acme/prod"
        assert post(url, old) == 200  # the provider-level secret verifies; the context is cached now
        assert post(url, new) == 401
        configure(config, new)
        assert post(url, new) == 200  # at once: no waiting for any cache to expire
        assert post(url, old) == 401  # and the old one no longer opens it, cached or not
        assert post(url, new) == 200
    assert sorted(host.payments) == ["payment:P-1", "payment:P-3", "payment:P-5"]
