"""The plugin is found through its distribution's entry point; its CLI command runs the emulator."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import time

import requests


def test_distribution_declares_one_provider_entry_point_and_a_pytest_plugin() -> None:
    dist = importlib.metadata.distribution("integration-core-quickbooks")
    providers = [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "integration_core.providers"]
    assert providers == [("quickbooks", "quickbooks.plugin")]
    assert [ep.value for ep in dist.entry_points if ep.group == "pytest11"] == ["quickbooks.emulator.pytest_plugin"]


def test_providers_command_lists_it() -> None:
    version = importlib.metadata.version("integration-core-quickbooks")
    out = subprocess.run([sys.executable, "-m", "integration_core", "providers"], capture_output=True, text=True,
                         check=True).stdout
    assert f"quickbooks\t{version}\tQuickBooks Online" in out.splitlines()


def test_emulator_command_serves_until_stopped() -> None:
    from integration_core.testing import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "integration_core", "quickbooks", "emulator", "--port", str(port),
                             "--seed"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        assert health.json()["status"] == "ok"
        companies = requests.post(f"http://127.0.0.1:{port}/_emulator/companies", json={}, timeout=5)
        assert companies.json()["realm_id"].isdigit()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
