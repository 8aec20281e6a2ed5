"""What a newcomer following docs/getting-started.md with the standalone emulator met (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from integration_core.testing import free_port


def test_control_api_refuses_unknown_keys_with_the_accepted_ones(zoho_emulator: Any) -> None:
    org = zoho_emulator.add_organization(name="Org", currency_code="USD")
    ctl = zoho_emulator.base_url + "/_emulator"
    r = requests.post(f"{ctl}/orgs/{org}/invoices/123/pay", json={"webhook_url": "http://x"}, timeout=10)
    assert r.status_code == 400
    message = r.json()["message"]
    assert "webhook_url" in message and "accepted: amount, date, payment_mode, webhook" in message
    r = requests.post(f"{ctl}/orgs/{org}/invoices/123/void", json={"webhook": {"uri": "http://x"}}, timeout=10)
    assert r.status_code == 400 and "uri" in r.json()["message"]
    r = requests.post(f"{ctl}/faults/latency", json={"second": 1}, timeout=10)
    assert r.status_code == 400 and "seconds" in r.json()["message"]
    assert requests.post(f"{ctl}/faults/latency", json={"seconds": 0}, timeout=10).status_code == 200


def test_seed_registers_the_callback_serve_receives(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, IC_PUBLIC_URL="https://billing.example.com")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "integration-core"), "zoho-books", "emulator", "--seed",
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("redirect_uri=" in line for line in lines):
            line = proc.stdout.readline().decode() if proc.stdout else ""
            if not line and proc.poll() is not None:
                break
            lines.append(line)
        printed = next(line for line in lines if "redirect_uri=" in line)
        assert "redirect_uri=https://billing.example.com/v1/oauth/callback" in printed
        client = next(line for line in lines if "client_id=" in line).split("client_id=")[1].split()[0]
        answer = requests.get(f"http://127.0.0.1:{port}/oauth/v2/auth", allow_redirects=False, timeout=10, params={
            "client_id": client, "redirect_uri": "https://billing.example.com/v1/oauth/callback",
            "response_type": "code", "scope": "ZohoBooks.fullaccess.all", "state": "s", "access_type": "offline"})
        assert answer.status_code == 302, answer.text
        location = answer.headers["Location"]
        assert location.startswith("https://billing.example.com/v1/oauth/callback")
        assert "error" not in parse_qs(urlsplit(location).query)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
