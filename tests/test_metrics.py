"""Prometheus metrics at /metrics of a served hub after demo-like traffic: invoices pushed by the
scheduler, a payment webhook applied, a forged one refused, a token refreshed (issue 12, metrics)."""

from __future__ import annotations

import re
import time
from typing import Any

import requests

from integration_core.hub import Hub
from integration_core.models import TaskStatus
from integration_core.server import running
from tests.workers.helpers import invoice, tasks
from tests.workers.zoho import zoho_connection

from .test_inbound_support import RecordingHost, ledger_connection


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_show_pushes_webhooks_and_the_outbox(hub: Hub, zoho_emulator: Any) -> None:
    hub.plugins.set_host(RecordingHost())
    setup = ledger_connection(hub, "acme", "prod")
    conn, _ = zoho_connection(hub, zoho_emulator, tenant="globex")
    for n in range(3):
        hub.submit_invoice("acme", "prod", invoice(n))
        hub.submit_invoice("globex", "prod", invoice(n))
    zoho_emulator.expire_tokens()  # the first Zoho push refreshes the access token
    with running(hub, scheduler=True) as srv:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(t.status == TaskStatus.DONE for t in tasks(hub)):
            time.sleep(0.2)
        body, headers = setup.book.pay(setup.secret, setup.remote_invoice)
        assert requests.post(srv.url + setup.path(), data=body, headers=headers, timeout=10).status_code == 200
        assert requests.post(srv.url + setup.path(), data=body, headers={}, timeout=10).status_code == 401
        assert requests.post(srv.url + "/v1/webhooks/nosuch/acme/prod", data=b"{}", timeout=10).status_code == 404
        r = requests.get(srv.url + "/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert sample(text, "integration_core_pushes_total", provider="ledger", outcome="done") >= 3
    assert sample(text, "integration_core_pushes_total", provider="zoho_books", outcome="done") >= 3
    assert sample(text, "integration_core_push_duration_seconds_count", provider="zoho_books") >= 3
    assert sample(text, "integration_core_webhooks_total", provider="ledger", outcome="ok") >= 1
    assert sample(text, "integration_core_webhooks_total", provider="ledger", outcome="unauthorized") >= 1
    assert sample(text, "integration_core_webhooks_total", provider="unknown", outcome="not_found") >= 1
    assert sample(text, "integration_core_token_refreshes_total", provider="zoho_books", outcome="ok") >= 1
    assert sample(text, "integration_core_outbox_tasks", provider="ledger", status="done") == 3
    assert sample(text, "integration_core_outbox_tasks", provider="zoho_books", status="pending") == 0
    assert "integration_core_outbox_oldest_pending_age_seconds" in text
    assert "integration_core_rate_limit_waits_total" in text or "integration_core_rate_limit_waits" in text
    assert conn.id not in text  # no connection ids or tenants as labels
