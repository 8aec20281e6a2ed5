"""The demo scenario, narrated, with a check after every step; exit 0 only when every check holds.

What happens, all on 127.0.0.1, nothing contacts a real Zoho host:

1. A local Zoho Books emulator starts (accounts server + Books API); an OAuth client and an organization
   with base currency USD are registered in it, EUR is added with an exchange rate.
2. A billing application (the reference host, its own SQLite file) has customers and invoices.
3. A ``zoho_books`` connection is created through the Hub (client secret and webhook secret encrypted),
   then authorized: the consent URL is followed like a browser would, and the emulator's redirect lands
   on our ``/v1/oauth/callback`` over HTTP.
4. ``integration-core serve`` runs as a separate process: webhook dispatcher + outbound scheduler.
5. Four invoices are submitted; the scheduler pushes them; the one in GBP (not enabled in the Zoho
   organization) fails with the provider's message.
6. Things happen in "Zoho" and it sends signed webhooks to our server: a payment (delivered twice),
   a void, two customers created (one matching an existing host customer's email), a vendor, a payment
   on an invoice made in Zoho directly, and one forged delivery.
7. A summary of Zoho, the host and the inbox, then the checks.
8. Payments both ways: a card payment recorded in billing is pushed to Zoho (``hub.submit_payment``) and
   Zoho's webhooks about it record nothing (no echo); a partial payment made in Zoho comes back to billing
   through Zoho's customer-payment webhook. Billing and Zoho agree on what is still open.
9. A second tenant on QuickBooks Online (its local emulator) through the same core and host: OAuth with
   the company id in the redirect, two invoices pushed, one payment across both brought back by Intuit's
   signed thin webhook, each share once; a table shows both tenants side by side.
10. The operator console: its URL and a one-time login are printed at the end. With ``--serve`` the
   emulator and the server keep running (Ctrl-C ends them), so the demo's data stays browsable there,
   with one more failed invoice (JPY) to fix and retry from the browser.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
TENANT = "acme"
ENVIRONMENT = "production"
CLIENT_ID = "1000.DEMOCLIENT"
CLIENT_SECRET = "demo-client-secret-0000"
WEBHOOK_SECRET = "DemoWebhookSecret2026"


class Checks:
    """Expectations, recorded as they are checked; the exit code is whether all of them held."""

    def __init__(self) -> None:
        self.results: list[tuple[bool, str, str]] = []

    def expect(self, ok: bool, what: str, detail: str = "") -> bool:
        self.results.append((bool(ok), what, detail))
        mark = "ok " if ok else "FAIL"
        print(f"   [{mark}] {what}" + (f"  ({detail})" if detail and not ok else ""))
        return bool(ok)

    @property
    def failed(self) -> list[tuple[bool, str, str]]:
        return [r for r in self.results if not r[0]]


def step(title: str) -> None:
    print(f"\n== {title}")


def table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("   " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("   " + "  ".join("-" * w for w in widths))
    if not rows:
        print("   (none)")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def short(text: str | None, width: int = 70) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def money(value: Any) -> str:
    return f"{Decimal(str(value)):,.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="Keep the run's files here (default: a temporary directory, removed).")
    parser.add_argument("--timeout", type=float, default=60.0, help="Seconds to wait for the scheduler.")
    parser.add_argument("--serve", action="store_true",
                        help="Keep the server and the emulator running after the checks (Ctrl-C ends them), "
                             "so the operator console can browse the demo's data.")
    parser.add_argument("--screenshots", metavar="DIR",
                        help="Save console screenshots (overview, the failed GBP task) into DIR with headless "
                             "Chromium (needs selenium, chromium and chromium-driver).")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="ic-demo-"))
    if args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    checks = Checks()
    reported: list[bool] = []

    def report_then_serve(console_url: str, login: str) -> None:
        """``--serve``: the checks' result first, then keep everything up until Ctrl-C."""
        reported.append(report(checks))
        print(f"\n== Serving until Ctrl-C. Operator console: {console_url}")
        print(f"   {login}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\n   stopping")

    try:
        run(workdir, checks, args.timeout, serve=report_then_serve if args.serve else None,
            screenshots=Path(args.screenshots).resolve() if args.screenshots else None)
    except Exception as exc:  # the demo must say what went wrong, not just crash
        checks.expect(False, "the scenario ran to the end", f"{type(exc).__name__}: {exc}")
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if reported and not checks.failed:
        return 0
    return 0 if report(checks) else 1


def report(checks: Checks) -> bool:
    step("Result")
    if checks.failed:
        print(f"   {len(checks.failed)} of {len(checks.results)} checks FAILED:")
        for _, what, detail in checks.failed:
            print(f"   - {what}" + (f": {detail}" if detail else ""))
        return False
    print(f"   all {len(checks.results)} checks passed: invoices went out, payments, voids and customers came back,")
    print("   replays changed nothing, a forged webhook was refused, and the one failure said what to fix.")
    return True


def run(workdir: Path, checks: Checks, timeout: float, *, serve: Callable[[str, str], None] | None = None,
        screenshots: Path | None = None) -> None:
    from zoho_books.emulator import Emulator

    from integration_core import inbound, mapping, outbox
    from integration_core.config import Config
    from integration_core.hub import Hub
    from integration_core.models import LineItem
    from reference_host import ReferenceHost

    # The demo makes a fresh key file on purpose; the "back it up" warning is for real deployments.
    logging.getLogger("integration_core.vault").setLevel(logging.ERROR)
    print(f"integration-core demo: billing app → Zoho Books and back (files in {workdir})")

    step("1. Start a local Zoho Books emulator")
    emulator = Emulator().start()
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    callback = public_url + "/v1/oauth/callback"
    emulator.add_client(CLIENT_ID, CLIENT_SECRET, [callback])
    org = emulator.add_organization(name="Acme Corp (emulated)", currency_code="USD")
    emulator.add_currency(org, "EUR", exchange_rate="1.08")
    sales_tax = emulator.add_tax(org, "NY Sales Tax", "8.875")
    print(f"   emulator at {emulator.base_url}; organization {org} (base USD, EUR at 1.08, "
          f"{sales_tax['tax_name']} {sales_tax['tax_percentage']}%); GBP not enabled")

    server: subprocess.Popen[bytes] | None = None
    qbo_emulator: Any = None  # the QuickBooks tenant's emulator (step 10b)
    log_path = workdir / "serve.log"
    try:
        step("2. The billing application (reference host) has customers and invoices")
        billing = ReferenceHost(workdir / "billing.sqlite3")
        ada = billing.add_customer(TENANT, ENVIRONMENT, "Ada Lovelace", "ada@analytical.example", "Analytical Ltd")
        bob = billing.add_customer(TENANT, ENVIRONMENT, "Bob Babbage", "bob@engines.example")
        carol = billing.add_customer(TENANT, ENVIRONMENT, "Carol Clarke", "carol@london.example")
        dan = billing.add_customer(TENANT, ENVIRONMENT, "Dan Dijkstra", "dan@paths.example")
        inv_paid = billing.add_invoice(TENANT, ENVIRONMENT, ada.id, [("Consulting, January", "1000.00"),
                                                                     ("Travel", "200.00")], issue_date="2026-01-05")
        inv_void = billing.add_invoice(TENANT, ENVIRONMENT, bob.id, [("Support plan", "300.00")],
                                       issue_date="2026-01-06")
        inv_eur = billing.add_invoice(TENANT, ENVIRONMENT, ada.id, [("Workshop Berlin", "500.00")], currency="EUR",
                                      issue_date="2026-01-07")
        inv_gbp = billing.add_invoice(TENANT, ENVIRONMENT, carol.id, [("Training London", "75.00")],
                                      currency="GBP", issue_date="2026-01-08")
        inv_tax = billing.add_invoice(TENANT, ENVIRONMENT, bob.id, [
            LineItem(description="Analytical seats", product_code="SEAT", quantity="3", unit_price="49.99",
                     discount_percent="10", tax_rate="8.875", tax_name="NY Sales Tax"),
            LineItem(description="Installation", amount="100.00", tax_rate="8.875", tax_name="NY Sales Tax")],
            issue_date="2026-01-09")
        ours = [inv_paid, inv_void, inv_eur, inv_gbp, inv_tax]
        table(["invoice", "customer", "total", "currency"],
              [[i.number, i.customer.name, money(i.total), i.currency] for i in ours])
        print(f"   (and {dan.name} <{dan.email}>, a customer with no invoice yet)")

        step("3. Create the Zoho Books connection and authorize it (OAuth)")
        config = Config(database_url=f"sqlite:///{workdir / 'integration-core.sqlite3'}",
                        key_file=str(workdir / "integration-core.key"), public_url=public_url,
                        scheduler_interval=0.5)
        hub = Hub(config, host=billing)
        conn = hub.add_connection(
            tenant_id=TENANT, environment_id=ENVIRONMENT, provider="zoho_books", name="Acme Zoho Books",
            values={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "organization_id": org,
                    "accounts_server": emulator.base_url, "webhook_secret": WEBHOOK_SECRET},
        )
        print(f"   connection {conn.id}: status {conn.status}")
        env = dict(os.environ)
        env.update(IC_DATABASE_URL=config.database_url, IC_KEY_FILE=config.key_file, IC_PUBLIC_URL=public_url,
                   IC_SCHEDULER_INTERVAL="0.5", IC_HOST="reference_host:from_env",
                   # The inbox of step 8 shows what the webhooks brought. Scheduled reconciliation would add,
                   # whenever its first run happens to follow the first push, an "already linked" event for
                   # the contact we created; it has its own tests (tests/test_reconcile_zoho.py).
                   IC_RECONCILE_INTERVAL="0",
                   REFERENCE_HOST_DB=str(billing.path),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
        with log_path.open("wb") as log_file:
            server = subprocess.Popen(
                [sys.executable, "-m", "integration_core", "-v", "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=workdir, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            )

        def healthy() -> bool:
            if server is not None and server.poll() is not None:
                raise RuntimeError(f"integration-core serve exited: {log_path.read_text()[-2000:]}")
            try:
                return requests.get(public_url + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, 30, "integration-core serve to answer /healthz")
        print(f"   integration-core serve is running at {public_url} (webhooks + OAuth callback + scheduler)")
        consent = hub.start_authorization(conn.id, callback)
        redirect = requests.get(consent, allow_redirects=False, timeout=10)
        location = redirect.headers.get("Location", "")
        checks.expect(redirect.status_code == 302 and location.startswith(callback),
                      "the consent page redirects to our callback", f"HTTP {redirect.status_code} {location[:80]}")
        page = requests.get(location, timeout=30)
        checks.expect(page.status_code == 200 and "connected" in page.text.lower(),
                      "our callback completed the authorization", f"HTTP {page.status_code}: {page.text[:200]}")
        checks.expect(hub.get_connection(conn.id).status == "active", "the connection is active")
        replay = requests.get(location, timeout=30)
        checks.expect(replay.status_code == 400, "replaying the callback is refused (single-use state)")
        assert "code" in parse_qs(urlsplit(location).query)

        step("4. Submit the invoices; the scheduler pushes them to Zoho")
        for inv in ours:
            hub.submit_invoice(TENANT, ENVIRONMENT, inv)
        hub.submit_invoice(TENANT, ENVIRONMENT, inv_paid)  # a duplicate submission changes nothing

        def settled() -> list[Any] | None:
            tasks = [outbox.find_task(hub, conn.id, i.id) for i in ours]
            return tasks if all(t is not None and t.status in ("done", "failed", "dead") for t in tasks) else None

        tasks = {t.local_id: t for t in wait_for(settled, timeout, "the scheduler to push every invoice")}
        table(["invoice", "task", "status", "attempts", "remote id / error"],
              [[i.number, tasks[i.id].id, tasks[i.id].status, tasks[i.id].attempts,
                tasks[i.id].remote_id or short(tasks[i.id].last_error)] for i in ours])
        for inv in (inv_paid, inv_void, inv_eur, inv_tax):
            checks.expect(tasks[inv.id].status == "done", f"{inv.number} ({inv.currency}) was pushed")
        gbp = tasks[inv_gbp.id]
        checks.expect(gbp.status == "failed" and "GBP" in (gbp.last_error or ""),
                      "the GBP invoice failed with a message naming the missing currency", str(gbp.last_error))
        remote = {i.id: tasks[i.id].remote_id for i in ours}

        step("5. Things happen in Zoho; it sends signed webhooks to our server")
        hook_url = f"{public_url}/v1/webhooks/zoho_books/{TENANT}/{ENVIRONMENT}"
        print(f"   webhook URL (integration-core connections webhook-url): {hook_url}")
        deliveries: list[list[Any]] = []

        def sent(what: str, delivery: Any, expected: int) -> None:
            deliveries.append([what, delivery.status, delivery.response.decode(errors="replace")[:90]])
            checks.expect(delivery.status == expected, f"webhook '{what}' answered {expected}",
                          f"got {delivery.status} {delivery.response[:200]!r}")

        _, d = emulator.record_payment(org, remote[inv_paid.id], date="2026-01-20", webhook_url=hook_url,
                                       secret=WEBHOOK_SECRET)
        sent(f"{inv_paid.number} paid", d, 200)
        again = emulator.send_webhook(hook_url, "invoice", emulator.invoice_webhook(org, remote[inv_paid.id]),
                                      WEBHOOK_SECRET)
        sent(f"{inv_paid.number} paid (Zoho retries the same delivery)", again, 200)
        _, d = emulator.void_invoice(org, remote[inv_void.id], webhook_url=hook_url, secret=WEBHOOK_SECRET)
        sent(f"{inv_void.number} voided", d, 200)
        grace, d = emulator.create_contact(org, "Grace Hopper", email="grace@navy.example", webhook_url=hook_url,
                                           secret=WEBHOOK_SECRET)
        sent("customer Grace Hopper created in Zoho", d, 200)
        dan_zoho, d = emulator.create_contact(org, "Dan Dijkstra (Zoho)", email="DAN@paths.example",
                                              webhook_url=hook_url, secret=WEBHOOK_SECRET)
        sent("customer Dan created in Zoho (same email as a host customer)", d, 200)
        _, d = emulator.create_contact(org, "Paper Supplies Ltd", contact_type="vendor",
                                       email="sales@paper.example", webhook_url=hook_url, secret=WEBHOOK_SECRET)
        sent("vendor Paper Supplies created in Zoho", d, 200)
        foreign = emulator.create_invoice(org, grace["contact_id"], [{"name": "Zoho-only item", "rate": "80.00"}])
        _, d = emulator.record_payment(org, foreign["invoice_id"], date="2026-01-21", webhook_url=hook_url,
                                       secret=WEBHOOK_SECRET)
        sent(f"{foreign['invoice_number']} (made in Zoho) paid", d, 200)
        forged = emulator.send_webhook(hook_url, "invoice", emulator.invoice_webhook(org, remote[inv_eur.id]),
                                       "NotTheRightSecret1")
        sent("forged delivery (wrong secret)", forged, 401)
        table(["delivery", "HTTP", "answer"], deliveries)

        step("6. What is in Zoho Books now")
        zoho_invoices = emulator.invoices(org)
        table(["number", "customer", "total", "currency", "status", "balance"],
              [[i["invoice_number"], i["customer_name"], money(i["total"]), i["currency_code"], i["status"],
                money(i["balance"])] for i in zoho_invoices])
        by_number = {i["invoice_number"]: i for i in zoho_invoices}
        for inv, status in ((inv_paid, "paid"), (inv_void, "void")):
            z = by_number.get(inv.number)
            checks.expect(z is not None and z["status"] == status and Decimal(str(z["total"])) == inv.total,
                          f"Zoho has {inv.number} for {money(inv.total)} {inv.currency}, {status}")
        z_eur = by_number.get(inv_eur.number)
        checks.expect(z_eur is not None and z_eur["currency_code"] == "EUR", f"Zoho has {inv_eur.number} in EUR")
        checks.expect(inv_gbp.number not in by_number, f"Zoho has no {inv_gbp.number} (GBP is not enabled there)")
        ada_contacts = {c["currency_code"]: c for c in emulator.contacts(org) if c["email"] == ada.email}
        table(["Zoho contact", "name", "currency"],
              [[c["contact_id"], c["contact_name"], code] for code, c in sorted(ada_contacts.items())])
        checks.expect(sorted(ada_contacts) == ["EUR", "USD"],
                      f"{ada.name}, billed in USD and EUR, has one Zoho contact per currency")
        checks.expect(all(by_number[i.number]["customer_id"] == ada_contacts.get(i.currency, {}).get("contact_id")
                          for i in (inv_paid, inv_eur) if i.number in by_number),
                      "each of her invoices is on the contact of its currency")
        z_tax = by_number.get(inv_tax.number) or {}
        totals = inv_tax.totals()
        print(f"   taxed invoice {inv_tax.number}: ours subtotal {money(totals.subtotal)} + tax "
              f"{money(totals.tax_total)} = {money(inv_tax.total)}; Zoho {money(z_tax.get('sub_total', 0))} + "
              f"{money(z_tax.get('tax_total', 0))} = {money(z_tax.get('total', 0))}")
        checks.expect(Decimal(str(z_tax.get("total", "0"))) == inv_tax.total
                      and Decimal(str(z_tax.get("tax_total", "0"))) == totals.tax_total,
                      f"Zoho computed the same tax and total for {inv_tax.number} ({money(inv_tax.total)} USD)")
        checks.expect(len(emulator.items(org)) == 1, "its product code became one Zoho item")
        checks.expect(sum(1 for i in zoho_invoices if i["invoice_number"] == inv_paid.number) == 1,
                      f"exactly one Zoho invoice for {inv_paid.number} despite the duplicate submission")

        step("7. What is in the billing application (host) now")
        host_invoices = billing.invoices(TENANT)
        names = {c["id"]: c["name"] for c in billing.customers(TENANT)}
        table(["invoice", "customer", "total", "currency", "status", "paid"],
              [[i["number"], names[i["customer_id"]], money(i["total"]), i["currency"], i["status"],
                money(i["paid"])] for i in host_invoices])
        payments = billing.payments()
        print()
        table(["payment", "invoice", "amount", "currency", "date", "payment key"],
              [[p["id"], p["invoice_id"], money(p["amount"]), p["currency"], p["paid_on"], p["payment_key"]]
               for p in payments])
        customers = billing.customers(TENANT)
        print()
        table(["customer", "name", "email", "origin"], [[c["id"], c["name"], c["email"], c["origin"]]
                                                        for c in customers])
        checks.expect(billing.invoice(inv_paid.id)["status"] == "paid", f"host invoice {inv_paid.number} is paid")
        checks.expect(len(payments) == 1 and Decimal(payments[0]["amount"]) == inv_paid.total,
                      f"exactly one payment of {money(inv_paid.total)} although the webhook came twice",
                      f"{len(payments)} payment(s)")
        checks.expect(billing.invoice(inv_void.id)["status"] == "void", f"host invoice {inv_void.number} is void")
        checks.expect(billing.invoice(inv_eur.id)["status"] == "open", f"host invoice {inv_eur.number} is still open")
        emails = [c["email"] for c in customers]
        checks.expect(emails.count("grace@navy.example") == 1, "Grace (created in Zoho) is now a host customer")
        checks.expect(emails.count("dan@paths.example") == 1, "Dan was linked to the existing host customer, "
                      "not duplicated")
        checks.expect("sales@paper.example" not in emails, "the vendor did not become a customer")
        with hub.engine.connect() as db:
            linked = mapping.local_id(db, conn.id, mapping.CUSTOMER, str(dan_zoho["contact_id"]))
        checks.expect(linked == dan.id, f"Zoho contact {dan_zoho['contact_id']} ⇄ host customer {dan.id}")

        step("8. The inbox: every webhook event, what it did, and why")
        events = list(reversed(inbound.list_events(hub, connection_id=conn.id)))
        table(["event", "kind", "status", "deliveries", "reason"],
              [[e["id"], e["kind"], e["status"], e["deliveries"], e["reason"] or ""] for e in events])
        paid_events = [e for e in events if e["kind"] == "invoice_paid" and e["status"] == "applied"]
        checks.expect(len(paid_events) == 1 and paid_events[0]["deliveries"] == 2,
                      "the paid event was stored once, delivered twice, applied once")
        reasons = [e["reason"] or "" for e in events if e["status"] == "ignored"]
        checks.expect(any(f"invoice {foreign['invoice_id']} was not created from this side" in r for r in reasons),
                      "the Zoho-only invoice's payment is ignored, with the reason")
        checks.expect(any("vendor" in r for r in reasons), "the vendor is ignored, with the reason")
        checks.expect(not any(e["status"] == "failed" for e in events), "no inbox event failed")
        checks.expect(len(events) == 6, "six events in the inbox (the forged delivery stored nothing)",
                      f"{len(events)} events")

        step("9. Failed outbound tasks (for an operator: fix the cause, then `integration-core tasks retry ID`)")
        failed = outbox.list_tasks(hub, status="failed", connection_id=conn.id)
        for t in failed:
            print(f"   task {t.id} (invoice {t.local_id}): {t.last_error}")
        checks.expect(len(failed) == 1, "exactly one failed task (the GBP invoice)")
        if screenshots is not None:
            from .screenshots import take_screenshots

            saved = take_screenshots(env, workdir, public_url, [(f"/tasks/{gbp.id}", "console-failed-task.png", 1250)],
                                     screenshots)
            checks.expect(len(saved) == 1, "the failed task's page was saved", ", ".join(map(str, saved)))

        step("10. The operator fixes the cause (adds GBP in Zoho) and retries the task from the command line")
        emulator.add_currency(org, "GBP", exchange_rate="1.27")
        command = [sys.executable, "-m", "integration_core", "tasks", "retry", str(gbp.id)]
        print("   $ integration-core tasks retry", gbp.id)
        answer = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
        print("   " + (answer.stdout.strip() or answer.stderr.strip()))
        checks.expect(answer.returncode == 0, "the retry command succeeded", answer.stderr[-500:])
        retried = wait_for(lambda: (t := outbox.get_task(hub, gbp.id)).status in ("done", "failed", "dead") and t,
                           timeout, "the scheduler to push the retried task")
        print(f"   task {retried.id}: {retried.status}, remote id {retried.remote_id}")
        z_gbp = {i["invoice_number"]: i for i in emulator.invoices(org)}.get(inv_gbp.number)
        checks.expect(retried.status == "done" and z_gbp is not None and z_gbp["currency_code"] == "GBP",
                      f"{inv_gbp.number} is now in Zoho, in GBP", str(retried.last_error))

        step("10a. Payments both ways: one recorded in billing goes to Zoho, a partial one made in Zoho comes back")
        payments_both_ways(hub, conn.id, billing, emulator, org, remote[inv_eur.id], inv_eur, hook_url, checks,
                           timeout)

        step("10b. A second tenant, on QuickBooks Online, through the same core and host")
        from . import quickbooks as qbo_tenant

        qbo_emulator, _realm = qbo_tenant.run(hub, billing, checks, ENVIRONMENT, public_url, timeout, wait_for, table,
                                              money)
        print()
        table(["tenant", "provider", "connection", "invoices", "at the host"],
              qbo_tenant.side_by_side(hub, billing, TENANT))

        step("11. The operator console (integration-core serve mounts it under /console)")
        console_url = public_url + "/console/"
        unauthenticated = requests.get(console_url, allow_redirects=False, timeout=10)
        checks.expect(unauthenticated.status_code == 303 and "/console/login" in unauthenticated.headers["Location"],
                      "the console answers and asks for a login first", f"HTTP {unauthenticated.status_code}")
        print("   $ integration-core console operator set demo --token --one-time")
        made = subprocess.run([sys.executable, "-m", "integration_core", "console", "operator", "set", "demo",
                               "--token", "--one-time"], cwd=workdir, env=env, capture_output=True, text=True,
                              timeout=60)
        checks.expect(made.returncode == 0, "a one-time console login was made", made.stderr[-500:])
        token = made.stdout.split("token (shown only now): ", 1)[-1].strip()
        login = f"operator demo, token {token} (one-time: it works for one sign-in)"

        step("12. Metrics for Prometheus (integration-core serve answers GET /metrics)")
        exposition = requests.get(public_url + "/metrics", timeout=10).text

        def total(name: str, outcome: str) -> float:
            return sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
                       if line.startswith(name + "{") and f'outcome="{outcome}"' in line)

        pushed = total("integration_core_pushes_total", "done")
        answered = total("integration_core_webhooks_total", "ok")
        print(f"   $ curl {public_url}/metrics   → {pushed:.0f} pushes done, {answered:.0f} webhooks answered ok")
        checks.expect(pushed > 0 and answered > 0, "the metrics count the pushes and the webhooks",
                      f"pushes {pushed}, webhooks {answered}")
        if serve is not None or screenshots is not None:
            inv_jpy = billing.add_invoice(TENANT, ENVIRONMENT, dan.id, [("Tokyo meetup", "12000")], currency="JPY",
                                          issue_date="2026-01-09")
            hub.submit_invoice(TENANT, ENVIRONMENT, inv_jpy)
            jpy = wait_for(lambda: (t := outbox.find_task(hub, conn.id, inv_jpy.id)) and t.status == "failed" and t,
                           timeout, "the JPY invoice to fail")
            print(f"   one more invoice, {inv_jpy.number} in JPY, failed like the GBP one did (task {jpy.id}).")
            print("   To fix it from the console: enable JPY in the emulated organization, then press Retry:")
            print(f"   $ curl -X POST {emulator.base_url}/_emulator/orgs/{org}/currencies "
                  "-H 'Content-Type: application/json' -d '{\"code\": \"JPY\", \"exchange_rate\": \"0.0067\"}'")
        if screenshots is not None:
            from .screenshots import take_screenshots

            saved = take_screenshots(env, workdir, public_url, [("/", "console-overview.png", 800)], screenshots)
            checks.expect(len(saved) == 1, "the console's overview was saved", ", ".join(map(str, saved)))
        print(f"   console: {console_url}")
        print(f"   login:   {login}")
        if serve is None:
            print("   (it stops with the demo; `make demo ARGS=--serve` keeps it and the data browsable)")
        hub.engine.dispose()
        if serve is not None:
            serve(console_url, login)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        emulator.stop()
        if qbo_emulator is not None:
            qbo_emulator.stop()
        if checks.failed and log_path.exists():
            print("\n-- last lines of the server log --")
            print("\n".join(log_path.read_text(errors="replace").splitlines()[-25:]))


def payments_both_ways(hub: Any, connection_id: str, billing: Any, emulator: Any, org: str,
                       remote_id: str, invoice: Any, hook_url: str, checks: Checks, timeout: float) -> None:
    """Step 10a: a card payment recorded in billing reaches Zoho (its echo records nothing), then a partial
    payment made in Zoho reaches billing through Zoho's customer-payment webhook."""
    from integration_core import inbound, outbox

    # Zoho's workflow webhooks for customer payments and invoices, to our URL (what an operator configures).
    emulator.subscribe_webhooks(org, hook_url, WEBHOOK_SECRET, modules=("payment", "invoice"))
    ours = billing.add_payment(TENANT, ENVIRONMENT, invoice.id, "200.00", method="card", reference="ch_demo_0001",
                               paid_on=dt.date(2026, 1, 22))
    print(f"   billing records {ours.id}: 200.00 {ours.currency} by card on {invoice.number}; "
          f"hub.submit_payment queues it")
    hub.submit_payment(TENANT, ENVIRONMENT, ours)
    task = wait_for(lambda: (t := outbox.find_task(hub, connection_id, ours.id, entity_type="payment"))
                    and t.status in ("done", "failed", "dead") and t, timeout, "the scheduler to push the payment")
    emulator.wait_webhooks()
    zoho_payments = [p for p in emulator.payments(org) if p["reference_number"] == ours.id]
    checks.expect(task.status == "done" and len(zoho_payments) == 1
                  and Decimal(str(zoho_payments[0]["amount"])) == Decimal("200.00")
                  and zoho_payments[0]["payment_mode"] == "creditcard",
                  f"Zoho has exactly one payment {ours.id} of 200.00 EUR (creditcard) on {invoice.number}",
                  str(task.last_error))

    def echoes() -> list[dict[str, Any]] | None:
        rows = [e for e in inbound.list_events(hub, connection_id=connection_id)
                if "pushed from this side" in (e["reason"] or "")]
        return rows or None

    echoed = wait_for(echoes, timeout, "Zoho's webhooks about our own payment")
    checks.expect(len(billing.payments(invoice.id)) == 1,
                  "Zoho's webhooks about that payment recorded nothing in billing (no echo)",
                  f"{len(echoed)} echo event(s), {len(billing.payments(invoice.id))} payment(s)")

    made, _ = emulator.record_payment(org, remote_id, amount="100.00", date="2026-01-23",
                                      payment_mode="banktransfer")
    print(f"   in Zoho, a partial payment {made['payment_id']} of 100.00 EUR by bank transfer on {invoice.number}")
    emulator.wait_webhooks()
    wait_for(lambda: len(billing.payments(invoice.id)) == 2 or None, timeout, "billing to record the Zoho payment")
    zoho_invoice = next(i for i in emulator.invoices(org) if i["invoice_id"] == remote_id)
    host_invoice = billing.invoice(invoice.id)
    table(["payment", "amount", "date", "payment key (origin)"],
          [[p["id"], money(p["amount"]), p["paid_on"], p["payment_key"]] for p in billing.payments(invoice.id)])
    print(f"   Zoho: {invoice.number} {zoho_invoice['status']}, balance {money(zoho_invoice['balance'])}; billing: "
          f"{host_invoice['status']}, paid {money(host_invoice['paid'])} of {money(host_invoice['total'])}")
    checks.expect(host_invoice["status"] == "partially_paid" and host_invoice["paid"] == Decimal("300.00"),
                  f"billing has both payments on {invoice.number} (300.00 of 500.00), partially paid")
    checks.expect(zoho_invoice["status"] == "partially_paid"
                  and Decimal(str(zoho_invoice["balance"])) == Decimal("200.00"),
                  f"Zoho and billing agree: 200.00 EUR still open on {invoice.number}")
