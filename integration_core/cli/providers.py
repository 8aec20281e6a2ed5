"""Provider-level settings and secrets (an app's client id and secret, its webhook verifier token):
``providers configure NAME`` and ``providers show NAME``. Secrets are prompted (hidden), read from stdin
(``--secrets-stdin``) or from ``IC_SECRET_<NAME>``, never taken from arguments."""

from __future__ import annotations

import json

import click

from ..bootstrap import hub_from_env
from .admin import providers_cmd
from .connections import _read_secret


@providers_cmd.command("configure")
@click.argument("provider")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="A non-secret provider setting.")
@click.option("--secret", "secret_names", multiple=True, metavar="NAME",
              help="A secret to set (prompted; or --secrets-stdin, or IC_SECRET_NAME). Default: every secret field "
                   "not stored yet.")
@click.option("--secrets-stdin", is_flag=True, help="Read the secrets from stdin, one per line, in field order.")
@click.option("--unset", "unset", multiple=True, metavar="NAME", help="Remove a provider-level value.")
def providers_configure(provider: str, settings: tuple[str, ...], secret_names: tuple[str, ...], secrets_stdin: bool,
                        unset: tuple[str, ...]) -> None:
    """Set the provider-level settings and secrets that every connection of PROVIDER falls back to."""
    hub = hub_from_env()
    info = hub.provider_info(provider)
    fields = {f.name: f for f in info.app_fields}
    if not fields:
        raise click.ClickException(f"provider {provider} has no provider-level settings")
    values: dict[str, str] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        if key in fields and fields[key].secret:
            raise click.BadParameter(f"{key} is a secret: give it at the prompt, on stdin (--secrets-stdin) or as "
                                     f"IC_SECRET_{key.upper()}", param_hint="--set")
        values[key] = value
    stored = set(hub.apps.show(provider)["secrets"])
    wanted = list(secret_names) or [f.name for f in info.app_fields if f.secret and f.name not in stored
                                    and f.name not in unset]
    for name in wanted:
        if name not in fields or not fields[name].secret:
            raise click.BadParameter(f"{name} is not a provider-level secret of {provider}", param_hint="--secret")
        values[name] = _read_secret(name, fields[name].help, secrets_stdin)
    result = hub.apps.configure(provider, values, unset=unset)
    click.echo(f"configured {provider}: settings {', '.join(sorted(result['settings'])) or '-'}; "
               f"secrets {', '.join(result['secrets']) or '-'}")


@providers_cmd.command("show")
@click.argument("provider")
def providers_show(provider: str) -> None:
    """The provider-level settings and the names (never the values) of its secrets."""
    hub = hub_from_env()
    hub.provider_info(provider)
    click.echo(json.dumps(hub.apps.show(provider), indent=2, sort_keys=True))
