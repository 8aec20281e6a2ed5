"""`integration-core zoho-books emulator`: run the emulator as a standalone process."""

from __future__ import annotations

import click

DEMO_CLIENT_ID = "1000.EMULATORDEMOCLIENT"
DEMO_CLIENT_SECRET = "emulator-demo-secret"
DEMO_REDIRECT_URI = "http://127.0.0.1:8765/oauth/callback"


def run_emulator(port: int = 0, host: str = "127.0.0.1", seed: bool = False, verbose: bool = False) -> None:
    """Start the emulator, print its base URL (and demo ids when seeding), block until Ctrl-C."""
    from .server import Emulator

    emu = Emulator(verbose=verbose)
    emu.start(host, port)
    click.echo(f"Zoho Books emulator listening on {emu.base_url}")
    click.echo(f"  accounts server: {emu.base_url}   api: {emu.api_url}   control: {emu.base_url}/_emulator/")
    if seed:
        emu.add_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, [DEMO_REDIRECT_URI])
        org_id = emu.add_organization(name="Demo Org", currency_code="USD")
        emu.add_currency(org_id, "EUR", "1.08")
        tokens = emu.issue_tokens(DEMO_CLIENT_ID, org_id)
        click.echo(f"  client_id={DEMO_CLIENT_ID} client_secret={DEMO_CLIENT_SECRET}")
        click.echo(f"  redirect_uri={DEMO_REDIRECT_URI}")
        click.echo(f"  organization_id={org_id} (base USD, EUR at 1.08)")
        click.echo(f"  refresh_token={tokens['refresh_token']}")
        click.echo(f"  access_token={tokens['access_token']}")
    try:
        emu.serve_forever_started()
    finally:
        emu.stop()


@click.command("emulator")
@click.option("--port", default=8780, show_default=True, type=int, help="Port on the loopback interface (0: any).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; keep it loopback.")
@click.option("--seed/--no-seed", default=False, help="Create a demo client and organization and print their ids.")
@click.option("--verbose", is_flag=True, help="Log every request.")
def emulator_command(port: int, host: str, seed: bool, verbose: bool) -> None:
    """Run a local Zoho Books emulator (accounts server + Books API v3 + /_emulator control API)."""
    run_emulator(port, host, seed=seed, verbose=verbose)
