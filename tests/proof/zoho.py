"""Shared helpers of the proof tests: a Hub connection to the Zoho Books emulator, authorized through the
real OAuth dance over HTTP, and invoice factories. No test lives here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import sqlalchemy as sa

from integration_core.hub import Hub
from integration_core.models import Connection, Invoice
from integration_core.store.schema import entity_mappings, outbox_tasks

CLIENT_ID = "1000.PROOFCLIENT"
REDIRECT_URI = "http://127.0.0.1:9/v1/oauth/callback"


def client_secret(tag: str = "") -> str:
    return f"proof-client-secret-{tag}-7c1e94b2d05f"


def webhook_secret(tag: str = "") -> str:
    return f"WhProof{tag}9f3k2m8q1z"


def zoho_connection(
    hub: Hub,
    emulator: Any,
    *,
    tenant: str = "t1",
    env: str = "live",
    org_id: str | None = None,
    tag: str = "",
    client_id: str = CLIENT_ID,
    settings: Mapping[str, str] | None = None,
) -> Connection:
    """Add a zoho_books connection for (tenant, env) to ``emulator`` and authorize it like an operator would:
    start_authorization → the emulator's consent redirect → complete_authorization."""
    secret = client_secret(tag)
    emulator.add_client(client_id, secret, [REDIRECT_URI])
    org_id = org_id or emulator.add_organization(name=f"Org {tenant}/{env}", currency_code="USD")
    values = {
        "client_id": client_id,
        "client_secret": secret,
        "organization_id": org_id,
        "accounts_server": emulator.base_url,
        "webhook_secret": webhook_secret(tag),
        **(settings or {}),
    }
    conn = hub.add_connection(tenant_id=tenant, environment_id=env, provider="zoho_books", name=f"Zoho {tenant}",
                              values=values)
    url = hub.start_authorization(conn.id, REDIRECT_URI)
    location = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    hub.complete_authorization(params.pop("state"), params.pop("code"), params)
    return hub.get_connection(conn.id)


def make_invoice(n: int, customers: int, *, currency: str = "USD", prefix: str = "P") -> Invoice:
    c = n % customers
    return Invoice.from_dict({
        "id": f"{prefix.lower()}inv-{n:05d}",
        "number": f"{prefix}-{n:05d}",
        "customer": {"id": f"{prefix.lower()}cust-{c:04d}", "name": f"Proof Customer {prefix}{c:04d}",
                     "email": f"{prefix.lower()}c{c:04d}@proof.example"},
        "currency": currency,
        "issue_date": "2026-01-10",
        "due_date": "2026-02-10",
        "lines": [{"description": "Subscription", "amount": f"{100 + n % 37}.{n % 100:02d}"},
                  {"description": "Support", "amount": "9.90"}],
    })


def task_counts(hub: Hub) -> dict[str, int]:
    t = outbox_tasks.c
    with hub.engine.connect() as db:
        return dict(db.execute(sa.select(t.status, sa.func.count()).group_by(t.status)).all())  # type: ignore[arg-type]


def mappings(hub: Hub, connection_id: str, entity_type: str) -> dict[str, str]:
    m = entity_mappings.c
    with hub.engine.connect() as db:
        rows = db.execute(sa.select(m.local_id, m.remote_id).where(
            m.connection_id == connection_id, m.entity_type == entity_type)).all()
    return {r.local_id: r.remote_id for r in rows}


def push_host_invoices(hub: Hub, host: Any, tenant: str, env: str, count: int, *, customers: int = 20,
                       prefix: str = "") -> list[Invoice]:
    """Create ``count`` invoices in the host's billing store, submit them and push them (no faults) until idle:
    each then has a remote invoice and an invoice mapping, as if synced from our side."""
    from integration_core.outbox import Outbound, OutboundSettings

    store = host.store
    people = [store.add_customer(tenant, env, f"Host {prefix}{tenant}-{env} {i:03d}",
                                 f"{prefix}{tenant}.{env}.{i:03d}@host.example") for i in range(customers)]
    invoices = [store.add_invoice(tenant, env, people[n % customers].id,
                                  [("Plan", f"{50 + n}.00"), ("Seats", "12.50")], issue_date="2026-01-05")
                for n in range(count)]
    for inv in invoices:
        hub.submit_invoice(tenant, env, inv)
    fast = OutboundSettings(backoff_base=0.001, backoff_cap=0.01, lease_seconds=5.0)
    drain(hub, Outbound(hub, f"setup-{tenant}-{env}", fast))
    return invoices


def drain(hub: Hub, outbound: Any, timeout: float = 60.0) -> None:
    """Tick until no pending or in-flight task is left on an active connection."""
    import time

    from integration_core.outbox import pending_work

    deadline = time.monotonic() + timeout
    while pending_work(hub):
        if outbound.tick().attempted == 0:
            time.sleep(0.005)
        if time.monotonic() > deadline:
            raise AssertionError(f"outbox not idle after {timeout}s: {task_counts(hub)}")
