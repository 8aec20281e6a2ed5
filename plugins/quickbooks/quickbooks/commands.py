"""``integration-core quickbooks …``: run the local emulator."""

from __future__ import annotations

import click


@click.group(name="quickbooks")
def quickbooks_group() -> None:
    """QuickBooks Online provider tools."""


@quickbooks_group.command(name="emulator", context_settings={"ignore_unknown_options": False})
@click.option("--port", default=8790, show_default=True, type=int, help="Port on the loopback interface (0: any).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; keep it loopback.")
@click.option("--seed/--no-seed", default=False, help="Create a demo app and company and print their ids.")
@click.option("--redirect-uri", help="The demo app's redirect URI (default: <IC_PUBLIC_URL>/v1/oauth/callback, "
              "where `integration-core serve` receives it).")
@click.option("--verbose", is_flag=True, help="Log every request.")
def emulator_command(port: int, host: str, seed: bool, verbose: bool, redirect_uri: str | None) -> None:
    """Run a local QuickBooks Online emulator (Intuit OAuth + v3 API + /_emulator control API)."""
    from .emulator.cli import run_emulator  # imported on use: the emulator is not needed otherwise

    run_emulator(port, host, seed=seed, verbose=verbose, redirect_uri=redirect_uri)
