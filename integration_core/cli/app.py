"""The root command group. Every other module of this package adds its commands to :data:`main`."""

from __future__ import annotations

import logging
from typing import Any

import click
import sqlalchemy as sa

from ..bootstrap import set_existing_database_only
from ..errors import IntegrationError


def database_error_line(exc: sa.exc.SQLAlchemyError) -> str:
    """One line for an operator: what the database said, never the statement, its parameters or the URL."""
    if isinstance(exc, sa.exc.ArgumentError | sa.exc.NoSuchModuleError):
        return "IC_DATABASE_URL is not a usable database URL (expected sqlite:///PATH or postgresql://HOST/DB)"
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        said = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
        hint = ""
        if "unable to open database file" in said:
            hint = " (does its directory exist, and may this user write there?)"
        return f"database error: {said[:300]}{hint}"
    return f"database error: {type(exc).__name__}"


class _Group(click.Group):
    """Turns the core's typed errors and database errors into one clear line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IntegrationError as exc:
            raise click.ClickException(str(exc)) from None
        except sa.exc.SQLAlchemyError as exc:
            raise click.ClickException(database_error_line(exc)) from None


@click.group(cls=_Group)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Keep accounting systems in step with your billing platform."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    # Only `db upgrade` creates a database; every other command needs the existing one.
    previous = set_existing_database_only(ctx.invoked_subcommand != "db")
    ctx.call_on_close(lambda: set_existing_database_only(previous))
