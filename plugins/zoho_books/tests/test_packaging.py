"""The plugin is found the way any third-party provider is: through its distribution's entry point."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys


def test_distribution_declares_one_provider_entry_point() -> None:
    dist = importlib.metadata.distribution("integration-core-zoho-books")
    providers = [ep for ep in dist.entry_points if ep.group == "integration_core.providers"]
    assert [(ep.name, ep.value) for ep in providers] == [("zoho_books", "zoho_books.plugin")]


def test_providers_command_lists_it_with_its_version() -> None:
    version = importlib.metadata.version("integration-core-zoho-books")
    out = subprocess.run([sys.executable, "-m", "integration_core", "providers"], capture_output=True, text=True,
                         check=True).stdout
    assert f"zoho_books\t{version}\tZoho Books" in out.splitlines()


def test_plugin_contributes_its_cli_commands_through_the_hook() -> None:
    out = subprocess.run([sys.executable, "-m", "integration_core", "zoho-books", "regions"], capture_output=True,
                         text=True, check=True).stdout
    assert "https://accounts.zohocloud.ca" in out and "https://www.zohoapis.ca" in out
