"""The root command group. Every other module of this package adds its commands to :data:`main`."""

from __future__ import annotations

import logging
from typing import Any

import click

from ..errors import IntegrationError


class _Group(click.Group):
    """Turns the core's typed errors into one clear line and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IntegrationError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """Keep accounting systems in step with your billing platform."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
