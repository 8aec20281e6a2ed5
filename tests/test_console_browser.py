"""The console in a real headless Chromium against a served Hub, the Zoho Books emulator and the real
scheduler: the demo's failed GBP invoice found, read, fixed at the provider and retried with one click;
a tenant-limited login, a form without its CSRF token, and a contact named with a script tag."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from integration_core import server
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.models import Invoice
from integration_core.outbox import find_task
from tests.browser import start_browser
from tests.console_helpers import LIMITED_PASSWORD, PASSWORD, add_operators

pytest.importorskip("zoho_books")
pytest.importorskip("selenium")

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.workers.zoho import WEBHOOK_SECRET, zoho_connection

SCRIPT_CONTACT = "<script>document.title='pwned';alert(1)</script>"
ZOHO_CONTACT = "<script>document.title='pwned'</script> Supplies"


def _invoice(n: int, currency: str, name: str, email: str) -> Invoice:
    return Invoice.from_dict({
        "id": f"H-{n:04d}", "number": f"H-{n:04d}", "currency": currency, "issue_date": "2026-01-08",
        "customer": {"id": f"cust-{n}", "name": name, "email": email},
        "lines": [{"description": "Training London", "amount": "75.00"}],
    })


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def world(tmp_path: Path, zoho_emulator: Any) -> Iterator[dict[str, Any]]:
    """Tenant acme (Zoho org in USD without GBP: its GBP invoice fails, as in the demo) and tenant beta
    (its own org), served with the console and the real scheduler."""
    port = server.free_port()
    config = Config(database_url=f"sqlite:///{tmp_path / 'ic.sqlite3'}", key_file=str(tmp_path / "ic.key"),
                    public_url=f"http://127.0.0.1:{port}", scheduler_interval=0.2)
    hub = Hub(config)
    acme, acme_org = zoho_connection(hub, zoho_emulator, tenant="acme", env="production")
    beta, _ = zoho_connection(hub, zoho_emulator, tenant="beta", env="production")
    add_operators(hub)
    from integration_core.console.operators import set_operator

    set_operator(hub.engine, "beta-support", LIMITED_PASSWORD, tenant_id="beta")
    hub.submit_invoice("acme", "production", _invoice(41, "USD", "Ada Lovelace", "ada@analytical.example"))
    hub.submit_invoice("acme", "production", _invoice(42, "GBP", "Carol Clarke", "carol@london.example"))
    hub.submit_invoice("beta", "production", _invoice(7, "USD", SCRIPT_CONTACT, "evil@example.com"))
    with server.running(hub, port=port, scheduler=True) as srv:
        wait_until(lambda: all((t := find_task(hub, c.id, i)) is not None and t.status in ("done", "failed")
                               for c, i in ((acme, "H-0041"), (acme, "H-0042"), (beta, "H-0007"))),
                   60, "the scheduler to push the invoices")
        browser = start_browser()
        try:
            yield {"hub": hub, "base": srv.url + "/console", "acme": acme, "beta": beta, "org": acme_org,
                   "emulator": zoho_emulator, "browser": browser, "url": srv.url}
        finally:
            browser.quit()
    hub.engine.dispose()


def shows(b: Any, element_id: str | None, text: str, timeout: float = 15.0) -> None:
    """Wait until the element (by id; the page's h1 when None) contains ``text``: a click's page load
    may still be under way when click() returns."""
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    locator = (By.ID, element_id) if element_id else (By.TAG_NAME, "h1")
    WebDriverWait(b, timeout).until(ec.text_to_be_present_in_element(locator, text))


def sign_in(browser: Any, base: str, name: str, secret: str) -> None:
    browser.delete_all_cookies()
    browser.get(base + "/")
    assert "/console/login" in browser.current_url  # nobody gets in without signing in
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "secret").send_keys(secret)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 15).until(lambda d: "/login" not in d.current_url and d.find_elements(By.ID, "logout"))


def test_find_the_failed_gbp_invoice_fix_it_and_retry(world: dict[str, Any]) -> None:
    b, base, hub, emulator, org = world["browser"], world["base"], world["hub"], world["emulator"], world["org"]
    sign_in(b, base, "admin", PASSWORD)
    shows(b, None, "Overview")
    # From the overview's "failed now" count to the outbox filtered by failed tasks of the connection.
    b.find_element(By.LINK_TEXT, "Outbox").click()
    shows(b, None, "Outbox")
    b.find_element(By.CSS_SELECTOR, "select[name=status] option[value=failed]").click()
    b.find_element(By.CSS_SELECTOR, "form.filters button").click()
    WebDriverWait(b, 15).until(lambda d: "status=failed" in d.current_url)
    rows = b.find_elements(By.CSS_SELECTOR, "#tasks tr")[1:]
    assert len(rows) == 1 and "H-0042" in rows[0].text
    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    shows(b, "last-error", "GBP")
    error = b.find_element(By.ID, "last-error").text
    assert "GBP" in error  # the provider's own words say what to fix
    assert "failed" in b.find_element(By.ID, "task-status").text
    # The operator fixes the cause at the provider: GBP enabled in the organization (control API).
    answer = requests.post(f"{emulator.base_url}/_emulator/orgs/{org}/currencies",
                           json={"code": "GBP", "exchange_rate": "1.27"}, timeout=10)
    assert answer.status_code == 200, answer.text
    b.find_element(By.ID, "retry").click()
    shows(b, "ok", "Queued again")

    def done() -> bool:
        b.refresh()
        return b.find_element(By.ID, "task-status").text.startswith("done")

    wait_until(done, 30, "the retried task to be pushed")
    remote_id = b.find_element(By.ID, "remote-id").text
    assert remote_id and remote_id != "-"
    history = b.find_element(By.CSS_SELECTOR, "table.history").text
    assert "retry_requested" in history and "console:admin" in history
    zoho = {i["invoice_number"]: i for i in emulator.invoices(org)}
    assert zoho["H-0042"]["currency_code"] == "GBP" and str(zoho["H-0042"]["invoice_id"]) == remote_id
    assert find_task(hub, world["acme"].id, "H-0042").status == "done"


def test_tenant_limited_login_cannot_reach_another_tenants_task(world: dict[str, Any]) -> None:
    b, base, hub = world["browser"], world["base"], world["hub"]
    other = find_task(hub, world["acme"].id, "H-0042")
    own = find_task(hub, world["beta"].id, "H-0007")
    sign_in(b, base, "beta-support", LIMITED_PASSWORD)
    b.get(f"{base}/tasks/{other.id}")
    shows(b, None, "Not found")
    assert "GBP" not in b.page_source and "H-0042" not in b.page_source
    b.get(f"{base}/connections/{world['acme'].id}")
    shows(b, None, "Not found")
    b.get(f"{base}/tasks")
    assert "H-0007" in b.page_source and "H-0042" not in b.page_source
    b.get(f"{base}/tasks/{own.id}")
    assert "H-0007" in b.find_element(By.TAG_NAME, "h1").text


def test_an_action_without_the_csrf_token_is_refused(world: dict[str, Any]) -> None:
    b, base, hub = world["browser"], world["base"], world["hub"]
    task = find_task(hub, world["acme"].id, "H-0042")
    sign_in(b, base, "admin", PASSWORD)
    b.get(f"{base}/tasks/{task.id}")
    # A form that lost its token (as a forged one from another site would be): the console refuses it.
    b.execute_script("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    b.find_element(By.ID, "retry").click()
    shows(b, None, "Refused")
    assert find_task(hub, world["acme"].id, "H-0042").status == "failed"
    b.get(f"{base}/tasks/{task.id}")
    b.execute_script("document.querySelector('#retry').form.csrf.value = 'forged'")
    b.find_element(By.ID, "retry").click()
    shows(b, None, "Refused")
    assert find_task(hub, world["acme"].id, "H-0042").status == "failed"


def test_a_contact_named_with_a_script_tag_is_text(world: dict[str, Any]) -> None:
    b, base, emulator, hub = world["browser"], world["base"], world["emulator"], world["hub"]
    beta = world["beta"]
    org = hub.get_connection(beta.id).settings["organization_id"]
    hook = f"{world['url']}/v1/webhooks/zoho_books/beta/production"
    _, delivery = emulator.create_contact(org, ZOHO_CONTACT, email="script@example.com", webhook_url=hook,
                                          secret=WEBHOOK_SECRET)
    assert delivery.status in (200, 503), delivery.response
    sign_in(b, base, "admin", PASSWORD)
    task = find_task(hub, beta.id, "H-0007")
    b.get(f"{base}/tasks/{task.id}")
    assert SCRIPT_CONTACT in b.find_element(By.ID, "customer").text  # shown as the text it is
    b.find_element(By.LINK_TEXT, "Inbox").click()
    shows(b, None, "Inbox")
    b.find_elements(By.CSS_SELECTOR, "#events tr")[1].find_element(By.CSS_SELECTOR, "a").click()
    shows(b, "payload", ZOHO_CONTACT)
    assert ZOHO_CONTACT in b.find_element(By.ID, "payload").text  # the contact created in Zoho, as text
    b.get(f"{base}/search?q=evil%40example.com")
    assert SCRIPT_CONTACT in b.find_element(By.ID, "found-tasks").text
    # Had any of it run, the title would have changed and an alert would block the page.
    assert b.title != "pwned" and "pwned" not in b.title
    assert b.find_elements(By.CSS_SELECTOR, "main script") == []
