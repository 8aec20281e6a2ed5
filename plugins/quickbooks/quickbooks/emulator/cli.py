"""``integration-core quickbooks emulator``: run the emulator as a standalone process."""

from __future__ import annotations

import click

from integration_core.emulation.wsgi import default_redirect_uri

DEMO_CLIENT_ID = "ABdemoClientIdForTheQuickBooksEmulator0000000000"
DEMO_CLIENT_SECRET = "demo-client-secret-emulator"


def run_emulator(port: int = 0, host: str = "127.0.0.1", seed: bool = False, verbose: bool = False,
                 redirect_uri: str | None = None) -> None:
    from .server import Emulator

    emu = Emulator(verbose=verbose)
    emu.start(host, port)
    click.echo(f"QuickBooks Online emulator listening on {emu.base_url}")
    click.echo(f"  OAuth, API (/v3/company/...) and control (/_emulator/) on {emu.base_url}")
    if seed:
        redirect_uri = redirect_uri or default_redirect_uri()
        emu.add_app(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, [redirect_uri])
        realm = emu.add_company(name="Demo Company", currencies={"EUR": "1.08"}, multicurrency=True)
        tokens = emu.issue_tokens(DEMO_CLIENT_ID, realm)
        click.echo(f"  client_id={DEMO_CLIENT_ID} client_secret={DEMO_CLIENT_SECRET}")
        click.echo(f"  redirect_uri={redirect_uri}  (registered for the demo app)")
        click.echo(f"  realm_id={realm} (US, home USD, multicurrency with EUR at 1.08)")
        click.echo(f"  refresh_token={tokens['refresh_token']}")
    try:
        emu.serve_forever_started()
    finally:
        emu.stop()
