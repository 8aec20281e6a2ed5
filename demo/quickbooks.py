"""The demo's second tenant: the same core and host, on QuickBooks Online (its local emulator).

One app for every company (Intuit's model): the company is picked at consent and comes back as
``realmId``. Two invoices are pushed; a payment made in QuickBooks covers the first in part and the
second in full, and Intuit's signed webhook (ids only) brings each share back to the host once.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import requests

TENANT = "globex"
CLIENT_ID = "ABdemoQuickBooksAppClientId00000000000000000000"
CLIENT_SECRET = "demo-quickbooks-client-secret"
VERIFIER_TOKEN = "demo-quickbooks-verifier-token"


def run(hub: Any, billing: Any, checks: Any, environment: str, public_url: str, timeout: float,
        wait_for: Callable[..., Any], table: Callable[..., None], money: Callable[[Any], str]) -> tuple[Any, str]:
    """Run the QuickBooks tenant's part; returns (the emulator, to stop at the end; the company id)."""
    from quickbooks.emulator import Emulator

    from integration_core import outbox

    emulator = Emulator().start()
    callback = public_url + "/v1/oauth/callback"
    emulator.add_app(CLIENT_ID, CLIENT_SECRET, [callback])
    realm = emulator.add_company(name="Globex (emulated QuickBooks)")
    hook_url = f"{public_url}/v1/webhooks/quickbooks/{TENANT}/{environment}"
    emulator.configure_webhooks(CLIENT_ID, hook_url, VERIFIER_TOKEN)
    print(f"   QuickBooks emulator at {emulator.base_url}; company {realm} (US, USD)")
    hank = billing.add_customer(TENANT, environment, "Hank Hopper", "hank@globex.example")
    invoices = [billing.add_invoice(TENANT, environment, hank.id, [("Hosting, January", "400.00")],
                                    issue_date="2026-01-10"),
                billing.add_invoice(TENANT, environment, hank.id, [("Setup", "150.00")], issue_date="2026-01-11")]
    conn = hub.add_connection(
        tenant_id=TENANT, environment_id=environment, provider="quickbooks", name="Globex QuickBooks",
        values={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "environment": emulator.base_url,
                "webhook_verifier_token": VERIFIER_TOKEN})
    emulator.next_consent(realm)
    page = requests.get(hub.start_authorization(conn.id, callback), timeout=30)  # consent → our callback
    checks.expect(page.status_code == 200 and hub.get_connection(conn.id).status == "active",
                  "QuickBooks: the consent came back with the company id and the connection is active",
                  f"HTTP {page.status_code}: {page.text[:200]}")
    checks.expect(hub.get_connection(conn.id).settings.get("realm_id") == realm,
                  f"QuickBooks: the connection learned company {realm} from the redirect")
    for inv in invoices:
        hub.submit_invoice(TENANT, environment, inv)

    def settled() -> list[Any] | None:
        found = [outbox.find_task(hub, conn.id, i.id) for i in invoices]
        return found if all(t is not None and t.status in ("done", "failed", "dead") for t in found) else None

    tasks = wait_for(settled, timeout, "the scheduler to push the QuickBooks invoices")
    for inv, task in zip(invoices, tasks, strict=True):
        checks.expect(task.status == "done", f"QuickBooks: {inv.number} was pushed", str(task.last_error))
    remote = [t.remote_id for t in tasks]
    emulator.deliver_webhooks()  # the creations we made ourselves: acknowledged, nothing to apply
    emulator.record_payment(realm, {remote[0]: "250.00", remote[1]: "150.00"})
    deliveries = emulator.deliver_webhooks()
    checks.expect([d.status for d in deliveries] == [200], "QuickBooks: the signed payment webhook answered 200",
                  str([(d.status, d.error) for d in deliveries]))
    again = emulator.webhooks.post(hook_url, deliveries[0].body, VERIFIER_TOKEN) if deliveries else None
    checks.expect(again is not None and again.status == 200, "QuickBooks: the same delivery again answered 200")
    forged = emulator.webhooks.post(hook_url, deliveries[0].body, "not-the-verifier-token") if deliveries else None
    checks.expect(forged is not None and forged.status == 401, "QuickBooks: a delivery signed with another token "
                  "is refused (401)")
    def fetched() -> list[str] | None:  # thin webhook: the notice is stored, the outbox fetches the Payment
        found = [billing.invoice(i.id)["status"] for i in invoices]
        return found if "open" not in found else None

    try:
        status = wait_for(fetched, timeout, "the outbox to fetch the QuickBooks payment the webhook named")
    except TimeoutError:
        status = [billing.invoice(i.id)["status"] for i in invoices]
    checks.expect(status == ["partially_paid", "paid"], "QuickBooks: one payment across two invoices: the first "
                  "partially paid, the second paid", str(status))
    paid = [Decimal(p["amount"]) for p in billing.payments() if p["invoice_id"] in {i.id for i in invoices}]
    checks.expect(sorted(paid) == [Decimal("150"), Decimal("250")], "QuickBooks: each invoice's share recorded "
                  "once although the webhook came twice", str(paid))
    qbo = {r["Id"]: r for r in emulator.invoices(realm)}
    table(["invoice", "QuickBooks Id", "DocNumber", "total", "balance", "host status"],
          [[i.number, r, qbo[r]["DocNumber"], money(qbo[r]["TotalAmt"]), money(qbo[r]["Balance"]), s]
           for i, r, s in zip(invoices, remote, status, strict=True)])
    return emulator, realm


def side_by_side(hub: Any, billing: Any, zoho_tenant: str) -> list[list[Any]]:
    """One row per tenant: its provider and what its invoices became at the host."""
    rows = []
    for conn in hub.list_connections():
        if conn.tenant_id not in (zoho_tenant, TENANT):
            continue
        host = billing.invoices(conn.tenant_id)
        states = ", ".join(sorted(f"{i['number']} {i['status']}" for i in host))
        rows.append([conn.tenant_id, conn.provider, conn.status, len(host), states])
    return rows
