"""`integration-core zoho-books emulator`: run the emulator as a standalone process."""

from __future__ import annotations

import click

from integration_core.emulation.wsgi import default_redirect_uri

DEMO_CLIENT_ID = "1000.EMULATORDEMOCLIENT"
DEMO_CLIENT_SECRET = "emulator-demo-secret"


def run_emulator(port: int = 0, host: str = "127.0.0.1", seed: bool = False, verbose: bool = False,
                 redirect_uri: str | None = None) -> None:
    """Start the emulator, print its base URL (and demo ids when seeding), block until Ctrl-C."""
    from .server import Emulator

    emu = Emulator(verbose=verbose)
    emu.start(host, port)
    click.echo(f"Zoho Books emulator listening on {emu.base_url}")
    click.echo(f"  accounts server: {emu.base_url}   api: {emu.api_url}   control: {emu.base_url}/_emulator/")
    if seed:
        redirect_uri = redirect_uri or default_redirect_uri()
        emu.add_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, [redirect_uri])
        org_id = emu.add_organization(name="Demo Org", currency_code="USD")
        emu.add_currency(org_id, "EUR", "1.08")
        tokens = emu.issue_tokens(DEMO_CLIENT_ID, org_id)
        click.echo(f"  client_id={DEMO_CLIENT_ID} client_secret={DEMO_CLIENT_SECRET}")
        click.echo(f"  redirect_uri={redirect_uri}  (registered for the demo client)")
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
@click.option("--redirect-uri", help="The demo client's redirect URI (default: <IC_PUBLIC_URL>/v1/oauth/callback, "
              "where `integration-core serve` receives it).")
@click.option("--verbose", is_flag=True, help="Log every request.")
def emulator_command(port: int, host: str, seed: bool, verbose: bool, redirect_uri: str | None) -> None:
    """Run a local Zoho Books emulator (accounts server + Books API v3 + /_emulator control API)."""
    run_emulator(port, host, seed=seed, verbose=verbose, redirect_uri=redirect_uri)
