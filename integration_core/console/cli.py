"""``integration-core console ...``: the console's logins. A password is prompted for (hidden) or read
from stdin; a token is generated and printed once. Only hashes are stored."""

from __future__ import annotations

import sys

import click

from ..bootstrap import hub_from_env
from ..cli.app import main
from .operators import PASSWORD, TOKEN, list_operators, new_token, remove_operator, set_operator


@main.group()
def console() -> None:
    """The operator console in the browser (served by ``serve`` under /console)."""


@console.group("operator")
def operator() -> None:
    """Console logins: set, list, remove."""


@operator.command("set")
@click.argument("name")
@click.option("--token", "use_token", is_flag=True, help="Generate a login token (printed once) instead of a password.")
@click.option("--tenant", "tenant_id", help="Limit the login to this tenant's connections, tasks and events.")
@click.option("--one-time", is_flag=True, help="The password or token works for one sign-in only.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def operator_set(name: str, use_token: bool, tenant_id: str | None, one_time: bool, password_stdin: bool) -> None:
    """Create the login NAME, or give it a new password/token (its open sessions end)."""

    if use_token and password_stdin:
        raise click.UsageError("--token generates the secret; --password-stdin does not go with it")
    if use_token:
        secret = new_token()
    elif password_stdin:
        secret = sys.stdin.readline().rstrip("\n")
    else:
        secret = click.prompt("password", hide_input=True, confirmation_prompt=True)
    op = set_operator(hub_from_env().engine, name, secret, kind=TOKEN if use_token else PASSWORD,
                      tenant_id=tenant_id, one_time=one_time)
    scope = f"tenant {op.tenant_id}" if op.tenant_id else "every tenant"
    click.echo(f"console login {op.name} set ({op.kind}, {scope}{', one-time' if op.one_time else ''})")
    if use_token:
        click.echo(f"token (shown only now): {secret}")


@operator.command("list")
def operator_list() -> None:
    """Logins, their kind, tenant limit and last sign-in (never a secret)."""

    rows = list_operators(hub_from_env().engine)
    if not rows:
        click.echo("no console logins (create one: integration-core console operator set NAME)")
        return
    for op in rows:
        last = op.last_login_at.strftime("%Y-%m-%d %H:%M:%S") if op.last_login_at else "never"
        state = "" if op.usable else " (spent)"
        click.echo(f"{op.name}\t{op.kind}{' one-time' if op.one_time else ''}{state}\t"
                   f"{op.tenant_id or '*'}\tlast sign-in {last}")


@operator.command("remove")
@click.argument("name")
def operator_remove(name: str) -> None:
    """Delete a login; its open sessions end at their next request."""

    remove_operator(hub_from_env().engine, name)
    click.echo(f"removed console login {name}")
