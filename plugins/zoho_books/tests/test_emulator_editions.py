"""The emulator as real organizations run Zoho Books: editions, taxes, items, precision, custom fields, updates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import requests
from zoho_books.emulator.server import Emulator

CLIENT_ID = "1000.EDITIONS"
GSTIN = "29AAACB1234C1Z5"


class Org:
    """An authorized client of one organization, answers parsed with exact decimals."""

    def __init__(self, emu: Emulator, currency: str = "USD", **settings: Any) -> None:
        self.emu = emu
        emu.add_client(CLIENT_ID, "secret", ["http://127.0.0.1:9/cb"])
        self.org_id = emu.add_organization(name="Org", currency_code=currency, **settings)
        self.token = emu.issue_tokens(CLIENT_ID, self.org_id)["access_token"]

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        return requests.request(method, self.emu.api_url + path, params={"organization_id": self.org_id,
                                **kw.pop("params", {})}, headers={"Authorization": f"Zoho-oauthtoken {self.token}"},
                                timeout=10, **kw)

    def ok(self, method: str, path: str, resource: str, **kw: Any) -> dict[str, Any]:
        answer = self.call(method, path, **kw)
        assert answer.status_code in (200, 201), answer.text
        return answer.json(parse_float=Decimal)[resource]

    def refused(self, method: str, path: str, **kw: Any) -> str:
        answer = self.call(method, path, **kw)
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["code"] == 2
        return str(body["message"])

    def tax(self, name: str, pct: Any, **extra: Any) -> str:
        return str(self.emu.add_tax(self.org_id, name, pct, **extra)["tax_id"])

    def contact(self, name: str, **fields: Any) -> str:
        return str(self.ok("POST", "/contacts", "contact", json={"contact_name": name, **fields})["contact_id"])


@pytest.fixture
def india(zoho_emulator: Emulator) -> tuple[Org, dict[str, str]]:
    org = Org(zoho_emulator, "INR", edition="in", state_code="KA", country="India")
    igst = org.tax("IGST18", 18, tax_specific_type="igst")
    cgst = org.tax("CGST9", 9, tax_specific_type="cgst")
    sgst = org.tax("SGST9", 9, tax_specific_type="sgst")
    gst = str(zoho_emulator.add_tax_group(org.org_id, "GST18", [cgst, sgst])["tax_group_id"])
    return org, {"igst": igst, "gst": gst}


def test_india_gstin_is_checked_and_named(india: tuple[Org, dict[str, str]]) -> None:
    org, _ = india
    assert "gst_no" in org.refused("POST", "/contacts", json={"contact_name": "B", "gst_treatment": "business_gst"})
    bad = org.refused("POST", "/contacts", json={"contact_name": "B", "gst_treatment": "business_gst",
                                                   "gst_no": "ZOHO-N/A"})
    assert bad == "Invalid value passed for gst_no"
    assert "gst_treatment" in org.refused("POST", "/contacts", json={"contact_name": "B", "gst_treatment": "b2b"})
    assert "place_of_contact" in org.refused("POST", "/contacts", json={"contact_name": "B", "place_of_contact": "XX"})
    assert org.emu.contacts(org.org_id) == []
    cid = org.contact("B", gst_treatment="business_gst", gst_no=GSTIN.lower(), place_of_contact="TN")
    assert org.ok("GET", f"/contacts/{cid}", "contact")["gst_no"] == GSTIN


def test_india_igst_across_states_cgst_sgst_within(india: tuple[Org, dict[str, str]]) -> None:
    org, taxes = india
    tn = org.contact("Chennai Co", gst_treatment="business_gst", gst_no=GSTIN, place_of_contact="TN")
    line = {"name": "Consulting", "rate": "1000.00", "quantity": 2, "hsn_or_sac": "998311"}
    inter = org.ok("POST", "/invoices", "invoice", json={"customer_id": tn, "line_items": [
        {**line, "tax_id": taxes["igst"]}]})
    # place of supply falls back to the contact's place_of_contact
    assert inter["place_of_supply"] == "TN" and inter["gst_treatment"] == "business_gst"
    assert inter["line_items"][0]["hsn_or_sac"] == "998311"
    assert [(t["tax_name"], t["tax_amount"]) for t in inter["taxes"]] == [("IGST18", Decimal("360.00"))]
    assert inter["total"] == Decimal("2360.00")
    # an intra-state supply needs CGST+SGST; IGST is refused
    assert "tax_id" in org.refused("POST", "/invoices", json={"customer_id": tn, "place_of_supply": "KA",
                                                              "line_items": [{**line, "tax_id": taxes["igst"]}]})
    intra = org.ok("POST", "/invoices", "invoice", json={"customer_id": tn, "place_of_supply": "KA",
                                                          "line_items": [{**line, "tax_id": taxes["gst"]}]})
    assert sorted((t["tax_name"], t["tax_amount"]) for t in intra["taxes"]) == [
        ("CGST9", Decimal("180.00")), ("SGST9", Decimal("180.00"))]
    assert intra["total"] == Decimal("2360.00")
    # a consumer without place of contact: the organization's state
    local = org.contact("Walk-in")
    own = org.ok("POST", "/invoices", "invoice", json={"customer_id": local, "line_items": [
        {**line, "tax_id": taxes["gst"]}]})
    assert own["place_of_supply"] == "KA" and own["gst_treatment"] == "consumer"


def test_india_items_take_intra_or_inter_tax_by_supply(india: tuple[Org, dict[str, str]]) -> None:
    org, taxes = india
    item = org.ok("POST", "/items", "item", json={
        "name": "Audit", "rate": 500, "sku": "AUD", "hsn_or_sac": "998221", "tax_id": taxes["igst"],
        "item_tax_preferences": [{"tax_id": taxes["gst"], "tax_specification": "intra"},
                                 {"tax_id": taxes["igst"], "tax_specification": "inter"}]})
    assert item["tax_id"] == ""  # item tax_id is not available in India (items.yml:514-521): ignored
    tn = org.contact("TN Co", place_of_contact="TN")
    ka = org.contact("KA Co", place_of_contact="KA")
    inter = org.ok("POST", "/invoices", "invoice", json={"customer_id": tn, "line_items": [
        {"item_id": item["item_id"]}]})
    intra = org.ok("POST", "/invoices", "invoice", json={"customer_id": ka, "line_items": [
        {"item_id": item["item_id"], "quantity": 2}]})
    assert inter["line_items"][0]["tax_id"] == taxes["igst"] and inter["line_items"][0]["hsn_or_sac"] == "998221"
    assert inter["total"] == Decimal("590.00")
    assert intra["line_items"][0]["tax_id"] == taxes["gst"] and intra["total"] == Decimal("1180.00")


def test_uk_vat_exclusive_and_inclusive(zoho_emulator: Emulator) -> None:
    org = Org(zoho_emulator, "GBP", edition="uk", country="United Kingdom")
    vat = org.tax("VAT20", 20)
    cid = org.contact("London Ltd", vat_treatment="uk", vat_reg_no="GB123456789")
    assert "vat_reg_no" in org.refused("POST", "/contacts", json={"contact_name": "X", "vat_reg_no": "1"})
    assert "vat_treatment" in org.refused("POST", "/contacts", json={"contact_name": "X", "vat_treatment": "eu"})
    plain = org.ok("POST", "/invoices", "invoice", json={"customer_id": cid, "line_items": [
        {"name": "Plan", "rate": "49.99", "quantity": 2, "tax_id": vat}]})
    assert plain["vat_treatment"] == "uk"  # from the contact
    assert (plain["sub_total"], plain["tax_total"], plain["total"]) == (
        Decimal("99.98"), Decimal("20.00"), Decimal("119.98"))
    inclusive = org.ok("POST", "/invoices", "invoice", json={"customer_id": cid, "is_inclusive_tax": True,
                                                              "line_items": [{"name": "Plan", "rate": "120.00",
                                                                              "tax_id": vat}]})
    assert (inclusive["tax_total"], inclusive["total"]) == (Decimal("20.00"), Decimal("120.00"))
    discounted = org.ok("POST", "/invoices", "invoice", json={
        "customer_id": cid, "discount": "10%", "line_items": [
            {"name": "Plan", "rate": "100.00", "quantity": 3, "discount": "5%", "tax_id": vat},
            {"name": "Setup", "rate": "25.00", "discount_amount": "5.00"}]})
    # 285.00 + 20.00 = 305.00, less 10% = 274.50; VAT on 285.00 x 0.9 = 51.30
    assert (discounted["sub_total"], discounted["discount_total"], discounted["tax_total"], discounted["total"]) == (
        Decimal("305.00"), Decimal("30.50"), Decimal("51.30"), Decimal("325.80"))


def test_jpy_rounds_to_the_yen(zoho_emulator: Emulator) -> None:
    org = Org(zoho_emulator, "JPY", edition="global", country="Japan")
    ten = org.tax("CT10", 10)
    cid = org.contact("Tokyo KK")
    inv = org.ok("POST", "/invoices", "invoice", json={"customer_id": cid, "line_items": [
        {"name": "Seats", "rate": "1234.5", "quantity": 3, "tax_id": ten}]})
    assert inv["price_precision"] == 0
    assert (inv["sub_total"], inv["tax_total"], inv["total"]) == (Decimal("3704"), Decimal("370"), Decimal("4074"))


def test_off_edition_fields_ignored_or_refused(zoho_emulator: Emulator) -> None:
    org = Org(zoho_emulator, "GBP", edition="uk")
    cid = org.contact("Ignored", gst_no=GSTIN, tax_treatment="vat_registered")
    stored = org.ok("GET", f"/contacts/{cid}", "contact")
    assert "gst_no" not in stored and "tax_treatment" not in stored
    org.emu.configure_organization(org.org_id, off_edition_fields="refuse")
    assert "gst_no" in org.refused("POST", "/contacts", json={"contact_name": "Refused", "gst_no": GSTIN})


def test_gulf_and_south_africa_treatments(zoho_emulator: Emulator) -> None:
    org = Org(zoho_emulator, "AED", edition="gcc", state_code="DU")
    assert "tax_reg_no" in org.refused("POST", "/contacts", json={"contact_name": "X",
                                                                   "tax_treatment": "vat_registered"})
    cid = org.contact("Dubai LLC", tax_treatment="vat_registered", tax_reg_no="100123456700003", country_code="AB")
    inv = org.ok("POST", "/invoices", "invoice", json={"customer_id": cid, "line_items": [{"name": "X", "rate": 1}]})
    assert inv["place_of_supply"] == "AB" and inv["tax_treatment"] == "vat_registered"
    za = Org(zoho_emulator, "ZAR", edition="za")
    buyer = za.contact("Cape Co", tax_treatment="vat_registered", tax_reg_no="4123456789")
    assert "is_reverse_charge_applied" in za.refused("POST", "/invoices", json={
        "customer_id": buyer, "line_items": [{"name": "X", "rate": 1}]})


def test_custom_fields_known_only(zoho_emulator: Emulator) -> None:
    org = Org(zoho_emulator)
    org.emu.add_custom_field(org.org_id, "invoice", "cf_service_start", "Service start", "date")
    org.emu.add_custom_field(org.org_id, "contact", "cf_subscription", "Subscription")
    cid = org.contact("Custom", custom_fields=[{"api_name": "cf_subscription", "value": "sub_1"}])
    assert org.ok("GET", f"/contacts/{cid}", "contact")["custom_fields"][0]["value"] == "sub_1"
    inv = org.ok("POST", "/invoices", "invoice", json={"customer_id": cid, "line_items": [{"name": "X", "rate": 1}],
                                                        "custom_fields": [{"api_name": "cf_service_start",
                                                                           "value": "2024-05-01"}]})
    assert [(f["api_name"], f["value"]) for f in inv["custom_fields"]] == [("cf_service_start", "2024-05-01")]
    assert "custom_fields" in org.refused("POST", "/invoices", json={
        "customer_id": cid, "line_items": [{"name": "X", "rate": 1}],
        "custom_fields": [{"api_name": "cf_subscription", "value": "x"}]})


def test_contact_update_replaces_given_fields_only(zoho_emulator: Emulator) -> None:
    org = Org(zoho_emulator)
    cid = org.contact("Ada", contact_persons=[{"first_name": "Ada", "email": "ada@old.example",
                                               "is_primary_contact": True}])
    org.contact("Taken")
    assert org.call("PUT", f"/contacts/{cid}", json={"contact_name": "Taken"}).json()["code"] == 3062
    updated = org.ok("PUT", f"/contacts/{cid}", "contact", json={
        "contact_persons": [{"first_name": "Ada", "email": "ada@new.example", "is_primary_contact": True}],
        "billing_address": {"address": "1 Loop", "state": "CA", "country": "USA"}})
    assert updated["email"] == "ada@new.example" and updated["contact_name"] == "Ada"
    assert updated["billing_address"]["state"] == "CA"
    rows = org.ok("GET", "/contacts", "contacts", params={"email": "ada@new.example"})
    assert [r["contact_id"] for r in rows] == [cid]
    assert org.call("PUT", "/contacts/1", json={"contact_name": "Nobody"}).status_code == 404


def test_fixture_seeds_the_edition_of_new_organizations(zoho_emulator_factory: Any) -> None:
    emu = zoho_emulator_factory(org_defaults={"edition": "in", "state_code": "KA"})
    org = Org(emu, "INR", country="India")
    assert emu.state.org(org.org_id).edition == "in"
    assert org.ok("GET", f"/organizations/{org.org_id}", "organization")["address"]["state_code"] == "KA"
    control = requests.post(emu.base_url + "/_emulator/orgs", json={"name": "Gulf", "currency_code": "AED",
                                                                    "edition": "gcc"}, timeout=10).json()
    assert emu.state.org(control["org_id"]).edition == "gcc"
    changed = requests.post(emu.base_url + f"/_emulator/orgs/{control['org_id']}/settings",
                            json={"off_edition_fields": "refuse"}, timeout=10).json()
    assert changed["off_edition_fields"] == "refuse" and changed["edition"] == "gcc"
    bad = requests.post(emu.base_url + f"/_emulator/orgs/{control['org_id']}/settings", json={"edition": "xx"},
                        timeout=10)
    assert bad.status_code == 400 and "edition" in bad.json()["message"]
