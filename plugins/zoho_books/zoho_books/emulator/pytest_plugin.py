"""pytest fixtures for the Zoho Books emulator (registered through the pytest11 entry point).

Imports stay lazy so merely having the plugin installed costs nothing for unrelated test runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .server import Emulator


@pytest.fixture
def zoho_emulator_factory() -> Iterator[Callable[..., Emulator]]:
    """Build started emulators with custom limits (`Emulator(**kwargs)`); all are stopped at teardown."""
    from integration_core.emulation.wsgi import emulator_factory

    from .server import Emulator

    with emulator_factory(Emulator) as make:
        yield make


@pytest.fixture
def zoho_emulator(zoho_emulator_factory: Callable[..., Emulator]) -> Emulator:
    """A started emulator with default (Zoho's real) limits, empty of clients and organizations."""
    return zoho_emulator_factory()
