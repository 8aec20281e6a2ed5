"""The emulator over real HTTP: OAuth, API shapes, query grammar, requestid, SyncToken, faults, limits."""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import hashlib
import hmac
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from qbo_helpers import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, Api, company, fault


def _basic() -> tuple[str, str]:
    return (CLIENT_ID, CLIENT_SECRET)


def _consent(emu, realm: str | None = None, scope: str = "com.intuit.quickbooks.accounting") -> dict[str, str]:
    emu.next_consent(realm)
    answer = requests.get(f"{emu.base_url}/connect/oauth2", params={
        "client_id": CLIENT_ID, "response_type": "code", "scope": scope, "redirect_uri": REDIRECT_URI,
        "state": "st-1"}, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def _token(emu, **form: str) -> requests.Response:
    return requests.post(f"{emu.base_url}/oauth2/v1/tokens/bearer", data=form, auth=_basic(),
                         headers={"Accept": "application/json"}, timeout=5)


def test_oauth_code_flow_realm_rotation_and_revoke(qbo_emulator_factory) -> None:
    emu = qbo_emulator_factory(rotate_after=0)  # rotate on every refresh
    realm, _ = company(emu)
    params = _consent(emu)
    assert params["realmId"] == realm and params["state"] == "st-1"
    tokens = _token(emu, grant_type="authorization_code", code=params["code"], redirect_uri=REDIRECT_URI).json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 3600
    assert tokens["x_refresh_token_expires_in"] > 0
    # the code is single use
    again = _token(emu, grant_type="authorization_code", code=params["code"], redirect_uri=REDIRECT_URI)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    rotated = _token(emu, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    stale = _token(emu, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
    bad_client = requests.post(f"{emu.base_url}/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, "wrong"),
                               data={"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]},
                               timeout=5)
    assert bad_client.status_code == 401 and bad_client.json()["error"] == "invalid_client"
    revoke = requests.post(f"{emu.base_url}/v2/oauth2/tokens/revoke", json={"token": rotated["refresh_token"]},
                           auth=_basic(), timeout=5)
    assert revoke.status_code == 200
    after = _token(emu, grant_type="refresh_token", refresh_token=rotated["refresh_token"])
    assert after.status_code == 400
    api = requests.get(f"{emu.base_url}/v3/company/{realm}/preferences",
                       headers={"Authorization": f"Bearer {rotated['access_token']}", "Accept": "application/json"},
                       timeout=5)
    assert api.status_code == 401 and api.json()["fault"]["error"][0]["code"] == "3200"


def test_refresh_keeps_the_value_within_the_rotation_period(qbo_emulator) -> None:
    company(qbo_emulator)
    tokens = _token(qbo_emulator, grant_type="authorization_code", code=_consent(qbo_emulator)["code"],
                    redirect_uri=REDIRECT_URI).json()
    again = _token(qbo_emulator, grant_type="refresh_token", refresh_token=tokens["refresh_token"]).json()
    assert again["refresh_token"] == tokens["refresh_token"] and again["access_token"] != tokens["access_token"]


def test_consent_refused_and_redirect_mismatch(qbo_emulator) -> None:
    company(qbo_emulator)
    qbo_emulator.next_consent(deny=True)
    answer = requests.get(f"{qbo_emulator.base_url}/connect/oauth2", params={
        "client_id": CLIENT_ID, "response_type": "code", "scope": "com.intuit.quickbooks.accounting",
        "redirect_uri": REDIRECT_URI, "state": "s"}, allow_redirects=False, timeout=5)
    assert "error=access_denied" in answer.headers["Location"]
    bad = requests.get(f"{qbo_emulator.base_url}/connect/oauth2", params={
        "client_id": CLIENT_ID, "response_type": "code", "scope": "x", "redirect_uri": "http://evil/",
        "state": "s"}, allow_redirects=False, timeout=5)
    assert bad.status_code == 400


def test_gateway_errors_expired_and_other_realm(qbo_emulator) -> None:
    _realm, api = company(qbo_emulator)
    other = qbo_emulator.add_company()
    forbidden = requests.get(f"{qbo_emulator.base_url}/v3/company/{other}/preferences", headers=api.headers(),
                             timeout=5)
    assert forbidden.status_code == 403 and forbidden.json()["fault"]["error"][0]["code"] == "3100"
    qbo_emulator.expire_tokens()
    expired = api.get("/preferences")
    body = expired.json()
    assert expired.status_code == 401 and body["fault"]["type"] == "AUTHENTICATION"
    assert isinstance(body["time"], int)  # epoch milliseconds in the gateway shape


def test_customer_create_read_and_names_unique_across_lists(qbo_emulator) -> None:
    realm, api = company(qbo_emulator)
    created = api.post("/customer", {"DisplayName": "Adam's Candy Shop", "PrimaryEmailAddr": {"Address": "a@x.io"}})
    assert created.status_code == 200
    customer = created.json()["Customer"]
    assert customer["SyncToken"] == "0" and customer["CurrencyRef"]["value"] == "USD"
    assert api.get(f"/customer/{customer['Id']}").json()["Customer"]["DisplayName"] == "Adam's Candy Shop"
    qbo_emulator.add_name(realm, "Vendor", "Supplier Ltd")
    clash = api.post("/customer", {"DisplayName": "supplier ltd"})
    assert clash.status_code == 400 and fault(clash)[0] == "6240"
    missing = api.get("/customer/999")
    assert missing.status_code == 400 and fault(missing)[0] == "610"
    unknown = api.post("/customer", {"DisplayName": "X", "Nickname": "y"})
    assert fault(unknown)[0] == "2010"


def test_query_grammar_escaping_and_empty_answer(qbo_emulator) -> None:
    _realm, api = company(qbo_emulator)
    for name in ("Adam's Candy Shop", "Bob", "Carol"):
        api.post("/customer", {"DisplayName": name, "PrimaryEmailAddr": {"Address": f"{name[0].lower()}@x.io"}})
    found = api.query(r"select * from Customer where DisplayName = 'Adam\'s Candy Shop'").json()["QueryResponse"]
    assert [c["DisplayName"] for c in found["Customer"]] == ["Adam's Candy Shop"]
    doubled = api.query("SELECT * FROM Customer WHERE DisplayName = 'Adam''s Candy Shop'")
    assert doubled.status_code == 400 and fault(doubled)[0] == "4000" and "QueryParserError" in fault(doubled)[1]
    curly = api.query("SELECT * FROM Customer WHERE DisplayName = 'Adam\u2019s'")
    assert fault(curly)[0] == "4000"
    orq = api.query("SELECT * FROM Customer WHERE DisplayName = 'Bob' OR DisplayName = 'Carol'")
    assert fault(orq)[0] == "4000"
    assert api.query("SELECT * FROM Customer WHERE DisplayName = 'Nobody'").json()["QueryResponse"] == {}
    count = api.query("SELECT COUNT(*) FROM Customer").json()["QueryResponse"]
    assert count == {"totalCount": 3}
    page = api.query("SELECT * FROM Customer ORDERBY DisplayName DESC STARTPOSITION 2 MAXRESULTS 1").json()
    assert [c["DisplayName"] for c in page["QueryResponse"]["Customer"]] == ["Bob"]
    like = api.query("SELECT * FROM Customer WHERE DisplayName LIKE 'Ca%'").json()["QueryResponse"]["Customer"]
    assert [c["DisplayName"] for c in like] == ["Carol"]
    inq = api.query("SELECT * FROM Customer WHERE PrimaryEmailAddr IN ('b@x.io', 'c@x.io')").json()
    assert len(inq["QueryResponse"]["Customer"]) == 2
    bad_field = api.query("SELECT * FROM Customer WHERE Notes = 'x'")
    assert fault(bad_field)[0] == "4001"


def test_items_need_an_income_account(qbo_emulator) -> None:
    _realm, api = company(qbo_emulator)
    missing = api.post("/item", {"Name": "Plan", "Type": "Service"})
    assert fault(missing)[0] == "2020"
    ok = api.post("/item", {"Name": "Plan", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    assert ok.status_code == 200
    dup = api.post("/item", {"Name": "plan", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    assert fault(dup)[0] == "6240"


def _invoice(api: Api, customer_id: str, amount: str = "100.00", **extra) -> requests.Response:
    body = {"CustomerRef": {"value": customer_id}, "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail",
                                                             "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}],
            **extra}
    return api.post("/invoice", body, requestid=extra.pop("_rid", None)) if "_rid" in extra else api.post(
        "/invoice", body)


def test_invoice_math_doc_numbers_void_and_stale_token(qbo_emulator) -> None:
    _realm, api = company(qbo_emulator)
    cid = api.post("/customer", {"DisplayName": "Dora"}).json()["Customer"]["Id"]
    inv = _invoice(api, cid, "100.00", DocNumber="INV-1").json()["Invoice"]
    assert Decimal(str(inv["TotalAmt"])) == Decimal("100") and inv["Line"][-1]["DetailType"] == "SubTotalLineDetail"
    assert fault(_invoice(api, cid, DocNumber="INV-1"))[0] == "6140"
    assert fault(_invoice(api, cid, DocNumber="X" * 22))[0] == "2050"
    in_detail = api.post("/invoice", {"CustomerRef": {"value": cid}, "Line": [{
        "Amount": 5, "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Amount": 5}}]})
    assert fault(in_detail)[0] == "2010"
    math = api.post("/invoice", {"CustomerRef": {"value": cid}, "Line": [{
        "Amount": 10, "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 3, "UnitPrice": 3}}]})
    assert math.status_code == 400
    stale = api.post("/invoice", {"Id": inv["Id"], "SyncToken": "7"}, operation="void")
    assert fault(stale)[0] == "5010"
    voided = api.post("/invoice", {"Id": inv["Id"], "SyncToken": inv["SyncToken"]}, operation="void").json()
    assert voided["Invoice"]["TotalAmt"] == 0 and voided["Invoice"]["PrivateNote"] == "Voided"
    assert voided["Invoice"]["SyncToken"] == "1"


def test_auto_numbering_when_custom_numbers_are_off(qbo_emulator) -> None:
    _realm, api = company(qbo_emulator, custom_txn_numbers=False)
    cid = api.post("/customer", {"DisplayName": "Eve"}).json()["Customer"]["Id"]
    first = _invoice(api, cid, DocNumber="MINE-1").json()["Invoice"]
    second = _invoice(api, cid).json()["Invoice"]
    assert first["DocNumber"] == "1001" and second["DocNumber"] == "1002"


def test_requestid_replays_the_original_answer(qbo_emulator) -> None:
    realm, api = company(qbo_emulator)
    body = {"DisplayName": "Frank"}
    one = api.post("/customer", body, requestid="rid-1")
    two = api.post("/customer", body, requestid="rid-1")
    assert one.content == two.content
    assert len(qbo_emulator.customers(realm)) == 1
    assert api.post("/customer", body, requestid="r" * 51).status_code == 400


def test_multicurrency_and_tax_rules(qbo_emulator) -> None:
    _realm, api = company(qbo_emulator, multicurrency=True, currencies={"EUR": "1.10"})
    eur = api.post("/customer", {"DisplayName": "Euro GmbH", "CurrencyRef": {"value": "EUR"}}).json()["Customer"]
    mismatch = _invoice(api, eur["Id"], CurrencyRef={"value": "USD"})
    assert fault(mismatch)[0] == "6000" and "currency" in fault(mismatch)[1].lower()
    inv = _invoice(api, eur["Id"], "100.00", ExchangeRate=1.1).json()["Invoice"]
    assert inv["CurrencyRef"]["value"] == "EUR" and Decimal(str(inv["HomeTotalAmt"])) == Decimal("110")
    no_rate = _invoice(api, eur["Id"], "10.00").json()["Invoice"]
    assert no_rate["ExchangeRate"] == 1  # QUICKBOOKS.md §5: omitted rate stored as 1
    assert api.get("/exchangerate", sourcecurrencycode="EUR").json()["ExchangeRate"]["Rate"] == 1.1
    _off_realm, off = company(qbo_emulator)
    rejected = off.post("/customer", {"DisplayName": "Foreign", "CurrencyRef": {"value": "EUR"}})
    assert fault(rejected)[0] == "6000"
    _uk_realm, uk = company(qbo_emulator, country="GB", home_currency="GBP")
    cid = uk.post("/customer", {"DisplayName": "Brit"}).json()["Customer"]["Id"]
    assert fault(_invoice(uk, cid))[0] == "6000"
    taxed = uk.post("/invoice", {"CustomerRef": {"value": cid}, "GlobalTaxCalculation": "TaxExcluded", "Line": [{
        "Amount": 100, "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "1"}}}]}).json()["Invoice"]
    assert Decimal(str(taxed["TotalAmt"])) == Decimal("120")
    us_taxed = _invoice(api, api.post("/customer", {"DisplayName": "Taxed"}).json()["Customer"]["Id"], "100.00")
    assert Decimal(str(us_taxed.json()["Invoice"]["TotalAmt"])) == Decimal("100")  # Services item is not taxable


def test_payment_across_two_invoices_and_cdc(qbo_emulator) -> None:
    realm, api = company(qbo_emulator)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    cid = api.post("/customer", {"DisplayName": "Gina"}).json()["Customer"]["Id"]
    a = _invoice(api, cid, "100.00").json()["Invoice"]
    b = _invoice(api, cid, "50.00").json()["Invoice"]
    payment = qbo_emulator.record_payment(realm, {a["Id"]: "60.00", b["Id"]: "50.00"})
    assert payment["UnappliedAmt"] == 0
    assert api.get(f"/invoice/{a['Id']}").json()["Invoice"]["Balance"] == 40
    too_much = api.post("/payment", {"CustomerRef": {"value": cid}, "TotalAmt": 50, "Line": [
        {"Amount": 50, "LinkedTxn": [{"TxnId": a["Id"], "TxnType": "Invoice"}]}]})
    assert fault(too_much)[0] == "6000"
    cdc = api.get("/cdc", entities="Invoice,Payment", changedSince=start.isoformat()).json()
    groups = cdc["CDCResponse"][0]["QueryResponse"]
    assert {i["Id"] for i in groups[0]["Invoice"]} == {a["Id"], b["Id"]}
    assert groups[1]["Payment"][0]["Id"] == payment["Id"]
    old = api.get("/cdc", entities="Invoice", changedSince=(start - dt.timedelta(days=31)).isoformat())
    assert old.status_code == 400


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    handler = type("R", (_Receiver,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("fmt", ["classic", "cloudevents"])
def test_webhooks_signed_thin_and_held_back_on_failure(qbo_emulator, receiver, fmt) -> None:
    handler, url = receiver
    realm, api = company(qbo_emulator)
    qbo_emulator.configure_webhooks(CLIENT_ID, url, "vtoken", fmt)
    cid = api.post("/customer", {"DisplayName": "Hank"}).json()["Customer"]["Id"]
    handler.status = 500
    first = qbo_emulator.deliver_webhooks()
    assert first[0].status == 500 and qbo_emulator.webhooks.pending(CLIENT_ID) == 1
    _invoice(api, cid)
    handler.status = 200
    sent = qbo_emulator.deliver_webhooks()
    assert sent[-1].status == 200 and qbo_emulator.webhooks.pending(CLIENT_ID) == 0
    headers, body = handler.received[-1]
    expected = base64.b64encode(hmac.new(b"vtoken", body, hashlib.sha256).digest()).decode()
    assert headers["intuit-signature"] == expected
    data = json.loads(body)
    if fmt == "classic":
        entities = data["eventNotifications"][0]["dataChangeEvent"]["entities"]
        assert data["eventNotifications"][0]["realmId"] == realm
        assert [(e["name"], e["operation"]) for e in entities] == [("Customer", "Create"), ("Invoice", "Create")]
    else:
        assert [e["type"] for e in data] == ["qbo.customer.created.v1", "qbo.invoice.created.v1"]
        assert all(e["intuitaccountid"] == realm and e["data"] == {} for e in data)


def test_rate_limit_and_concurrency_answer_429_3001(qbo_emulator_factory) -> None:
    emu = qbo_emulator_factory(rate_limit_per_minute=5)
    _realm, api = company(emu)
    statuses = [api.get("/preferences").status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    throttled = api.get("/preferences")
    assert b'code="3001"' in throttled.content and throttled.headers["Content-Type"].startswith("application/xml")
    emu2 = qbo_emulator_factory(max_concurrent=2)
    realm2, _api2 = company(emu2)
    emu2.set_latency(0.3)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(lambda _: Api(emu2, realm2).get("/preferences").status_code, range(4)))
    assert codes.count(429) >= 1 and codes.count(200) >= 2


def test_fault_injection_kinds(qbo_emulator) -> None:
    realm, api = company(qbo_emulator)
    qbo_emulator.fail_next(1, path_prefix=f"/v3/company/{realm}/customer")
    failed = api.post("/customer", {"DisplayName": "Ivy"})
    assert failed.status_code == 500 and fault(failed)[0] == "10000"
    assert qbo_emulator.customers(realm) == []
    qbo_emulator.lose_next_response(1, method="POST")
    with pytest.raises(requests.RequestException):
        api.post("/customer", {"DisplayName": "Ivy"}, requestid="lost-1")
    assert len(qbo_emulator.customers(realm)) == 1  # committed before the answer was lost
    replay = api.post("/customer", {"DisplayName": "Ivy"}, requestid="lost-1")
    assert replay.status_code == 200 and len(qbo_emulator.customers(realm)) == 1
    qbo_emulator.rate_limit_next(1)
    assert api.get("/preferences").status_code == 429
    control = requests.get(f"{qbo_emulator.base_url}/_emulator/faults", timeout=5).json()
    assert control["fired"] == {"error": 1, "lost": 1, "rate_limit": 1}


def test_control_api_creates_companies_and_payments(qbo_emulator) -> None:
    base = qbo_emulator.base_url + "/_emulator"
    requests.post(f"{base}/apps", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                        "redirect_uris": [REDIRECT_URI]}, timeout=5).raise_for_status()
    realm = requests.post(f"{base}/companies", json={"name": "Ctl Co"}, timeout=5).json()["realm_id"]
    api = Api(qbo_emulator, realm)
    assert api.get(f"/companyinfo/{realm}").json()["CompanyInfo"]["CompanyName"] == "Ctl Co"
    config = requests.post(f"{base}/config", json={"rate_limit_per_minute": 7}, timeout=5).json()
    assert config["rate_limit_per_minute"] == 7 and qbo_emulator.limiter.config.per_minute == 7
    assert requests.post(f"{base}/nope", timeout=5).status_code == 404


def test_payment_void_and_delete_unapply_and_show_in_cdc(qbo_emulator) -> None:
    realm, api = company(qbo_emulator)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    cid = api.post("/customer", {"DisplayName": "Hal"}).json()["Customer"]["Id"]
    a = _invoice(api, cid, "100.00").json()["Invoice"]
    b = _invoice(api, cid, "50.00").json()["Invoice"]
    first = qbo_emulator.record_payment(realm, {a["Id"]: "60.00", b["Id"]: "50.00"})
    second = qbo_emulator.record_payment(realm, {a["Id"]: "10.00"})
    stale = api.post("/payment", {"Id": first["Id"], "SyncToken": "9", "sparse": True}, operation="update",
                     include="void")
    assert fault(stale)[0] == "5010"
    voided = api.post("/payment", {"Id": first["Id"], "SyncToken": first["SyncToken"], "sparse": True},
                      operation="update", include="void").json()["Payment"]
    assert voided["TotalAmt"] == 0 and all(line["Amount"] == 0 for line in voided["Line"])
    assert api.get(f"/invoice/{a['Id']}").json()["Invoice"]["Balance"] == 90  # the second payment stays
    assert api.get(f"/invoice/{b['Id']}").json()["Invoice"]["Balance"] == 50
    gone = api.post("/payment", {"Id": second["Id"], "SyncToken": second["SyncToken"]}, operation="delete").json()
    assert gone["Payment"] == {"status": "Deleted", "domain": "QBO", "Id": second["Id"]}
    assert fault(api.get(f"/payment/{second['Id']}"))[0] == "610"
    invoice_a = api.get(f"/invoice/{a['Id']}").json()["Invoice"]
    assert invoice_a["Balance"] == 100 and invoice_a["LinkedTxn"] == []
    payments = {p["Id"]: p for p in api.get("/cdc", entities="Payment", changedSince=start.isoformat()).json()[
        "CDCResponse"][0]["QueryResponse"][0]["Payment"]}
    assert payments[second["Id"]]["status"] == "Deleted" and "Line" not in payments[second["Id"]]
    assert payments[first["Id"]]["TotalAmt"] == 0
    changes = [(c.entity, c.entity_id, c.operation) for c in qbo_emulator.store.companies[realm].changes]
    assert ("Payment", first["Id"], "Void") in changes and ("Payment", second["Id"], "Delete") in changes


def test_invoice_discount_line_and_allow_discount_switch(qbo_emulator) -> None:
    _realm, api = company(qbo_emulator, allow_discount=True)
    cid = api.post("/customer", {"DisplayName": "Ida"}).json()["Customer"]["Id"]
    line = {"Amount": 200, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}
    amount = api.post("/invoice", {"CustomerRef": {"value": cid}, "Line": [line, {
        "Amount": 15, "DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": False}}]}).json()
    assert amount["Invoice"]["TotalAmt"] == 185
    assert [x["DetailType"] for x in amount["Invoice"]["Line"]] == ["SalesItemLineDetail", "SubTotalLineDetail",
                                                                   "DiscountLineDetail"]
    percent = api.post("/invoice", {"CustomerRef": {"value": cid}, "Line": [line, {
        "DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": 10}}]})
    assert percent.json()["Invoice"]["TotalAmt"] == 180
    assert api.get("/preferences").json()["Preferences"]["SalesFormsPrefs"]["AllowDiscount"] is True
    _realm, off = company(qbo_emulator)  # AllowDiscount off (default): a discount line is refused
    cid2 = off.post("/customer", {"DisplayName": "Ida"}).json()["Customer"]["Id"]
    refused = off.post("/invoice", {"CustomerRef": {"value": cid2}, "Line": [line, {
        "Amount": 1, "DetailType": "DiscountLineDetail", "DiscountLineDetail": {"PercentBased": False}}]})
    assert fault(refused)[0] == "6000"


def test_control_api_voids_and_deletes_payments(qbo_emulator) -> None:
    realm, api = company(qbo_emulator)
    cid = api.post("/customer", {"DisplayName": "Jo"}).json()["Customer"]["Id"]
    inv = _invoice(api, cid, "80.00").json()["Invoice"]
    base = f"{qbo_emulator.base_url}/_emulator/companies/{realm}/payments"
    one = requests.post(base, json={"applications": {inv["Id"]: "30.00"}}, timeout=5).json()["payment"]
    two = requests.post(base, json={"applications": {inv["Id"]: "20.00"}}, timeout=5).json()["payment"]
    assert requests.post(f"{base}/{one['Id']}/void", timeout=5).json()["payment"]["TotalAmt"] == 0
    assert requests.post(f"{base}/{two['Id']}/delete", timeout=5).json()["status"] == "Deleted"
    assert requests.post(f"{base}/{two['Id']}/refund", timeout=5).status_code in (400, 404)
    assert api.get(f"/invoice/{inv['Id']}").json()["Invoice"]["Balance"] == 80
