"""The QuickBooks provider driven by the core's Hub and outbox (SQLite store, encrypted secrets) against
the emulator over real HTTP."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from qbo_helpers import CLIENT_ID, CLIENT_SECRET, authorize, qbo_connection
from quickbooks import operations

from integration_core.errors import AuthError, PermanentError
from integration_core.models import ConnectionStatus, Customer, Invoice, TaskStatus
from integration_core.outbox import OutboundSettings, find_task
from integration_core.scheduler import drain_until_idle

FAST = OutboundSettings(backoff_base=0.001, backoff_cap=0.01, lease_seconds=5.0, park_seconds=0.2, max_attempts=8,
                        batch_size=50)


def invoice(n: int | str, *, customer: int = 1, amount: str = "100.00", currency: str = "USD",
            **kw: Any) -> Invoice:
    data = {"id": f"inv-{n}", "number": f"INV-{n}",
            "customer": {"id": f"cust-{customer}", "name": f"Customer {customer}", "email": f"c{customer}@example.com"},
            "currency": currency, "issue_date": "2026-01-10", "due_date": "2026-02-10",
            "lines": [{"description": "Subscription", "amount": amount}], **kw}
    return Invoice.from_dict(data)


def ours(emu: Any, realm: str) -> dict[str, int]:
    """How many QuickBooks invoices carry each of our references."""
    counts: dict[str, int] = {}
    for inv in emu.invoices(realm):
        counts[inv.get("PrivateNote", "")] = counts.get(inv.get("PrivateNote", ""), 0) + 1
    return counts


def calls(emu: Any, realm: str) -> int:
    return sum(emu.request_counts(realm).values())


def test_oauth_through_the_hub_stores_realm_and_refreshes(ic_hub, qbo_emulator) -> None:
    conn, realm = qbo_connection(ic_hub, qbo_emulator, company_config={"name": "Hub Co"})
    assert conn.status == ConnectionStatus.ACTIVE and conn.settings["realm_id"] == realm
    assert "client_secret" not in conn.settings
    result = ic_hub.check_connection(conn.id)
    assert result.account_name == "Hub Co" and result.base_currency == "USD"
    qbo_emulator.expire_tokens()
    assert ic_hub.check_connection(conn.id).account_name == "Hub Co"  # 401 → refresh → retry
    ic_hub.disconnect(conn.id)
    assert ic_hub.get_connection(conn.id).status == ConnectionStatus.PENDING_AUTH
    assert "refresh_token" not in ic_hub.context(conn.id).secrets
    assert all(rt.grant.revoked for rt in qbo_emulator.oauth.refresh_tokens.values())


def test_authorization_for_another_company_is_refused(ic_hub, qbo_emulator) -> None:
    conn, realm = qbo_connection(ic_hub, qbo_emulator)
    other = qbo_emulator.add_company()
    with pytest.raises(AuthError, match=realm):
        authorize(ic_hub, ic_hub.get_connection(conn.id), qbo_emulator, other)


def test_settings_are_checked(ic_hub, qbo_emulator) -> None:
    from integration_core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="environment"):
        ic_hub.add_connection(tenant_id="t", environment_id="e", provider="quickbooks", name="q",
                              values={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                      "environment": "http://intuit.example.com"})


def test_rotating_refresh_token_two_concurrent_workers(ic_hub, qbo_emulator_factory) -> None:
    emu = qbo_emulator_factory(rotate_after=0)  # every refresh rotates; the old value dies at once
    conn, _realm = qbo_connection(ic_hub, emu)
    for _ in range(3):
        emu.expire_tokens()
        before = emu.oauth.refreshes
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def work(barrier: threading.Barrier = barrier, errors: list[BaseException] = errors) -> None:
            try:
                barrier.wait()
                ic_hub.check_connection(conn.id)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert emu.oauth.refreshes - before == 1  # the second worker used the first one's token
        stored = ic_hub.context(conn.id).secrets["refresh_token"]
        live = [v for v, rt in emu.oauth.refresh_tokens.items() if rt.superseded_at is None]
        assert live == [stored]  # the latest refresh token is the one stored


def test_invoices_pushed_exactly_once_one_call_each(ic_hub, qbo_emulator) -> None:
    _conn, realm = qbo_connection(ic_hub, qbo_emulator)
    ic_hub.submit_invoice("t1", "prod", invoice(0))
    drain_until_idle(ic_hub, 30, settings=FAST)
    first = qbo_emulator.request_counts(realm)
    assert first.get("POST /item") == 1  # the billing item was created with the income account
    before = calls(qbo_emulator, realm)
    n = 20
    for i in range(1, n + 1):
        ic_hub.submit_invoice("t1", "prod", invoice(i))
        ic_hub.submit_invoice("t1", "prod", invoice(i))  # submitted twice
    drain_until_idle(ic_hub, 60, settings=FAST)
    assert calls(qbo_emulator, realm) - before == n  # steady state: one request per invoice
    refs = ours(qbo_emulator, realm)
    assert len(refs) == n + 1 and set(refs.values()) == {1}
    assert len(qbo_emulator.customers(realm)) == 1
    item = next(i for i in qbo_emulator.records(realm, "Item") if i["Name"] == "Billing services")
    assert item["IncomeAccountRef"]["value"] == "1"
    assert all(inv["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] == item["Id"]
               for inv in qbo_emulator.invoices(realm))
    assert qbo_emulator.limiter.rejected == 0


@pytest.mark.parametrize("custom_numbers", [True, False])
def test_lost_response_is_adopted_not_duplicated(ic_hub, qbo_emulator, custom_numbers) -> None:
    conn, realm = qbo_connection(ic_hub, qbo_emulator, company_config={"custom_txn_numbers": custom_numbers})
    ic_hub.submit_invoice("t1", "prod", invoice(0))
    drain_until_idle(ic_hub, 30, settings=FAST)
    qbo_emulator.lose_next_response(1, method="POST", path_prefix=f"/v3/company/{realm}/invoice")
    ic_hub.submit_invoice("t1", "prod", invoice(1))
    qbo_emulator.lose_next_response(1, method="POST", path_prefix=f"/v3/company/{realm}/invoice", as_error=True)
    ic_hub.submit_invoice("t1", "prod", invoice(2))
    drain_until_idle(ic_hub, 30, settings=FAST)
    refs = ours(qbo_emulator, realm)
    assert refs == {f"integration-core invoice inv-{i}": 1 for i in range(3)}
    for i in (1, 2):
        task = find_task(ic_hub, conn.id, f"inv-{i}")
        remote = next(r for r in qbo_emulator.invoices(realm) if r["PrivateNote"].endswith(f"inv-{i}"))
        assert task.status == TaskStatus.DONE and task.remote_id == remote["Id"]
        assert (remote["DocNumber"] == f"INV-{i}") == custom_numbers


def test_customer_name_held_by_a_vendor_and_email_match(ic_hub, qbo_emulator) -> None:
    _conn, realm = qbo_connection(ic_hub, qbo_emulator)
    qbo_emulator.add_name(realm, "Vendor", "Customer 1")
    qbo_emulator.add_name(realm, "Customer", "Existing Two", PrimaryEmailAddr={"Address": "c2@example.com"})
    ic_hub.submit_invoice("t1", "prod", invoice(1, customer=1))
    ic_hub.submit_invoice("t1", "prod", invoice(2, customer=2))
    drain_until_idle(ic_hub, 30, settings=FAST)
    names = {c["DisplayName"] for c in qbo_emulator.customers(realm)}
    assert "Customer 1 (c1@example.com)" in names  # the vendor keeps its name; ours gets a variant
    by_ref = {inv["PrivateNote"]: inv["CustomerRef"]["value"] for inv in qbo_emulator.invoices(realm)}
    existing = next(c for c in qbo_emulator.customers(realm) if c["DisplayName"] == "Existing Two")
    assert by_ref["integration-core invoice inv-2"] == existing["Id"]  # matched by email


def test_apostrophe_names_are_queried_with_backslash_escape(ic_hub, qbo_emulator) -> None:
    conn, realm = qbo_connection(ic_hub, qbo_emulator)
    qbo_emulator.add_name(realm, "Customer", "Adam's Candy Shop")
    data = invoice(1).to_dict()
    data["customer"] = {"id": "cust-adam", "name": "Adam's Candy Shop", "email": None}
    ic_hub.submit_invoice("t1", "prod", Invoice.from_dict(data))
    drain_until_idle(ic_hub, 30, settings=FAST)
    task = find_task(ic_hub, conn.id, "inv-1")
    assert task.status == TaskStatus.DONE, task.last_error
    assert len(qbo_emulator.customers(realm)) == 1  # the clash found the same customer by its quoted name


def test_foreign_currency_uses_a_customer_in_that_currency_and_sends_the_rate(ic_hub, qbo_emulator) -> None:
    conn, realm = qbo_connection(ic_hub, qbo_emulator,
                                 company_config={"multicurrency": True, "currencies": {"EUR": "1.08"}})
    ic_hub.submit_invoice("t1", "prod", invoice(1, amount="10.00"))
    ic_hub.submit_invoice("t1", "prod", invoice(2, amount="20.00", currency="EUR"))
    ic_hub.submit_invoice("t1", "prod", invoice(3, amount="30.00", currency="EUR"))
    ic_hub.submit_invoice("t1", "prod", invoice(4, amount="5.00", currency="JPY"))
    drain_until_idle(ic_hub, 30, settings=FAST)
    by_ref = {inv["PrivateNote"]: inv for inv in qbo_emulator.invoices(realm)}
    eur = by_ref["integration-core invoice inv-2"]
    assert eur["CurrencyRef"]["value"] == "EUR" and Decimal(str(eur["ExchangeRate"])) == Decimal("1.08")
    customers = {c["Id"]: c for c in qbo_emulator.customers(realm)}
    assert customers[eur["CustomerRef"]["value"]]["CurrencyRef"]["value"] == "EUR"
    assert by_ref["integration-core invoice inv-3"]["CustomerRef"] == eur["CustomerRef"]
    assert customers[by_ref["integration-core invoice inv-1"]["CustomerRef"]["value"]]["CurrencyRef"]["value"] == "USD"
    failed = find_task(ic_hub, conn.id, "inv-4")
    assert failed.status == TaskStatus.FAILED and "JPY" in (failed.last_error or "")


def test_home_currency_only_company_refuses_foreign_invoices_clearly(ic_hub, qbo_emulator) -> None:
    conn, realm = qbo_connection(ic_hub, qbo_emulator)
    ic_hub.submit_invoice("t1", "prod", invoice(1, currency="EUR"))
    drain_until_idle(ic_hub, 30, settings=FAST)
    task = find_task(ic_hub, conn.id, "inv-1")
    assert task.status == TaskStatus.FAILED and "multicurrency is off" in (task.last_error or "")
    assert qbo_emulator.invoices(realm) == []


def test_non_us_company_needs_a_tax_code(ic_hub, qbo_emulator) -> None:
    conn, _realm = qbo_connection(ic_hub, qbo_emulator, company_config={"country": "GB", "home_currency": "GBP"})
    ic_hub.submit_invoice("t1", "prod", invoice(1, currency="GBP"))
    drain_until_idle(ic_hub, 30, settings=FAST)
    task = find_task(ic_hub, conn.id, "inv-1")
    assert task.status == TaskStatus.FAILED and "tax_code" in (task.last_error or "")
    conn2, realm2 = qbo_connection(ic_hub, qbo_emulator, tenant="t2",
                                   company_config={"country": "GB", "home_currency": "GBP"}, tax_code="1")
    ic_hub.submit_invoice("t2", "prod", invoice(2, currency="GBP", amount="120.00"))
    drain_until_idle(ic_hub, 30, settings=FAST)
    assert find_task(ic_hub, conn2.id, "inv-2").status == TaskStatus.DONE
    pushed = qbo_emulator.invoices(realm2)[0]
    assert Decimal(str(pushed["TotalAmt"])) == Decimal("120")  # tax-inclusive: the billed total stands


def test_void_rereads_a_stale_sync_token(ic_hub, qbo_emulator) -> None:
    conn, realm = qbo_connection(ic_hub, qbo_emulator)
    ic_hub.submit_invoice("t1", "prod", invoice(1))
    drain_until_idle(ic_hub, 30, settings=FAST)
    remote = qbo_emulator.invoices(realm)[0]
    qbo_emulator.edit_after_next_read(realm, "Invoice", remote["Id"])
    operations.void_remote_invoice(ic_hub.context(conn.id), remote["Id"])
    voided = qbo_emulator.invoices(realm)[0]
    assert voided["PrivateNote"] == "Voided" and voided["TotalAmt"] == 0
    assert voided["SyncToken"] == "2"  # the concurrent edit, then our void
    counts = qbo_emulator.request_counts(realm)
    assert counts["GET /invoice/{id}"] == 2 and counts["POST /invoice"] == 3  # create, stale void, void


def test_duplicate_doc_number_of_another_invoice_fails_clearly(ic_hub, qbo_emulator) -> None:
    conn, realm = qbo_connection(ic_hub, qbo_emulator)
    from qbo_helpers import Api

    api = Api(qbo_emulator, realm)
    cid = api.post("/customer", {"DisplayName": "Someone"}).json()["Customer"]["Id"]
    api.post("/invoice", {"CustomerRef": {"value": cid}, "DocNumber": "INV-1", "Line": [
        {"Amount": 1, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    ic_hub.submit_invoice("t1", "prod", invoice(1))
    drain_until_idle(ic_hub, 30, settings=FAST)
    task = find_task(ic_hub, conn.id, "inv-1")
    assert task.status == TaskStatus.FAILED and "INV-1" in (task.last_error or "")


def test_server_errors_and_throttling_are_retried(ic_hub, qbo_emulator) -> None:
    conn, realm = qbo_connection(ic_hub, qbo_emulator)
    qbo_emulator.fail_next(1, status=503, method="POST", path_prefix=f"/v3/company/{realm}/invoice")
    qbo_emulator.rate_limit_next(1, path_prefix=f"/v3/company/{realm}/query")
    ic_hub.submit_invoice("t1", "prod", invoice(1))
    drain_until_idle(ic_hub, 30, settings=FAST)
    task = find_task(ic_hub, conn.id, "inv-1")
    assert task.status == TaskStatus.DONE and ours(qbo_emulator, realm) == {"integration-core invoice inv-1": 1}


def test_rate_limit_hook() -> None:
    from quickbooks import plugin

    class Ctx:
        settings = {"client_id": "x", "environment": "sandbox", "rate_limit_per_minute": "300"}

    limit = plugin.rate_limit(ctx=Ctx())
    assert (limit.requests, limit.per_seconds, limit.concurrency) == (300, 60, 10)
    assert limit.metered and limit.costs == {"find_invoice": 1, "upsert_contact": 2, "push_invoice": 1}


def test_customer_hook_directly_with_unqueryable_name(ic_hub, qbo_emulator) -> None:
    conn, realm = qbo_connection(ic_hub, qbo_emulator)
    ctx = ic_hub.context(conn.id)
    first = operations.upsert_contact(ctx, Customer(id="c-9", name="Zoë\u2019s Shop"))
    # another host customer of that name (a different create, so no requestid replay): the name clash is
    # resolved by a LIKE lookup, since the typographic apostrophe cannot appear in a query
    second = operations.upsert_contact(ctx, Customer(id="c-10", name="Zoë\u2019s Shop"))
    assert first == second and len(qbo_emulator.customers(realm)) == 1
    assert qbo_emulator.request_counts(realm)["GET /query"] >= 1
    with pytest.raises(PermanentError):
        operations.push_invoice(ctx, invoice(5, currency="EUR"), first)
