"""Shared helpers of the console tests: a served Hub with two tenants' connections, logins, forms."""

from __future__ import annotations

import re
from typing import Any

import requests

from integration_core.console.operators import set_operator
from integration_core.hub import Hub

PASSWORD = "correct horse battery"
LIMITED_PASSWORD = "tenant two only pass"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def add_operators(hub: Hub) -> None:
    set_operator(hub.engine, "admin", PASSWORD)
    set_operator(hub.engine, "t2-support", LIMITED_PASSWORD, tenant_id="t2")


def login(base: str, name: str = "admin", secret: str = PASSWORD) -> requests.Session:
    """A browser-like session signed in to the console at ``base`` (…/console)."""
    s = requests.Session()
    page = s.get(base + "/login", timeout=10)
    assert page.status_code == 200
    answer = s.post(base + "/login", data={"csrf": csrf_of(page.text), "name": name, "secret": secret},
                    allow_redirects=False, timeout=30)
    assert answer.status_code == 303, answer.text[:500]
    return s


def post(s: requests.Session, base: str, page_path: str, action_path: str, **extra: Any) -> requests.Response:
    """Submit a console form the way the browser does: the page's CSRF token, then the action."""
    page = s.get(base + page_path, timeout=10)
    return s.post(base + action_path, data={"csrf": csrf_of(page.text), **extra}, allow_redirects=False, timeout=30)
