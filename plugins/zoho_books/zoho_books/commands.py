"""``integration-core zoho-books …``: run the local emulator, show the region table."""

from __future__ import annotations

import click

from .regions import table_rows


class _LazyGroup(click.Group):
    """Imports the emulator command only when it is asked for (it pulls in the whole emulator)."""

    lazy = {"emulator": ("zoho_books.emulator.cli", "emulator_command")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name]
            try:
                import importlib

                command = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise click.ClickException(f"the Zoho Books emulator is not available: {exc}") from None
            return command if isinstance(command, click.Command) else None
        return super().get_command(ctx, cmd_name)


@click.group(name="zoho-books", cls=_LazyGroup)
def zoho_books_group() -> None:
    """Zoho Books provider tools."""


@zoho_books_group.command(name="regions")
def regions_command() -> None:
    """Print Zoho's data centres: region code, accounts server, API host."""
    rows = [("code", "region", "accounts server", "API host"), *table_rows()]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
