"""Operator commands around the store: schema upgrades, installed providers, encryption keys."""

from __future__ import annotations

import click

from ..bootstrap import hub_from_env
from ..config import Config
from ..plugins import Plugins
from ..store import create_engine_for, upgrade
from ..store.db import current_revision
from ..vault import generate_key, load_keys, read_key_file, write_key_file
from .app import main

# --- db ---------------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema (Alembic)."""

    cfg = Config.from_env()
    engine = create_engine_for(cfg.database_url)
    upgrade(engine, revision)
    click.echo(f"database at revision {current_revision(engine)}")


# --- providers --------------------------------------------------------------------------------------


@main.group("providers", invoke_without_command=True)
@click.pass_context
def providers_cmd(ctx: click.Context) -> None:
    """List installed providers (found through the ``integration_core.providers`` entry points); ``configure``
    and ``show`` their provider-level settings."""
    if ctx.invoked_subcommand is not None:
        return
    plugins = Plugins()
    for name in plugins.provider_names():
        info = plugins.provider(name).provider_info()
        title = info.title if info else "(no provider_info)"
        click.echo(f"{name}\t{plugins.version(name)}\t{title}")


# --- keys -------------------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Encryption keys of the secrets at rest."""


@keys.command("rotate")
def keys_rotate() -> None:
    """Put a new key first and re-encrypt every stored secret.

    With a key file, a new key is generated and prepended. With IC_KEYS, put the new key first in
    IC_KEYS yourself (``integration-core keys generate``), then run this.
    """
    cfg = Config.from_env()
    current: list[str] = []
    if not cfg.keys:
        current = load_keys((), cfg.key_file, create=False)
        write_key_file(cfg.key_file, [generate_key(), *current])
    try:
        hub = hub_from_env()
        count = hub.rotate_secrets()  # one transaction: every secret or none
    except BaseException:
        if current:
            write_key_file(cfg.key_file, current)  # leave the key file as it was
        raise
    total = len(cfg.keys) if cfg.keys else len(read_key_file(cfg.key_file))
    click.echo(f"re-encrypted {count} connection(s) under the first of {total} key(s)")
    click.echo("when every worker runs with the new key list, drop the old keys with: integration-core keys prune")


@keys.command("prune")
def keys_prune() -> None:
    """Drop every key but the first, after checking each stored secret is readable with the first alone."""
    cfg = Config.from_env()
    hub = hub_from_env()
    if not hub.secrets_readable_by_primary_key():
        raise click.ClickException("some secrets are not yet encrypted under the first key: run keys rotate first")
    if cfg.keys:
        click.echo("all secrets use the first key: remove the other keys from IC_KEYS")
        return
    current = read_key_file(cfg.key_file)
    write_key_file(cfg.key_file, current[:1])
    click.echo(f"dropped {len(current) - 1} old key(s)")


@keys.command("generate")
def keys_generate() -> None:
    """Print a new key (for IC_KEYS)."""
    click.echo(generate_key())
