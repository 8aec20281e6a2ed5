"""pytest fixtures for the Zoho Books emulator (registered through the pytest11 entry point).

Imports stay lazy so merely having the plugin installed costs nothing for unrelated test runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .server import Emulator


@pytest.fixture
def zoho_emulator_factory() -> Iterator[Callable[..., Emulator]]:
    """Build started emulators with custom limits (`Emulator(**kwargs)`); all are stopped at teardown."""
    from .server import Emulator

    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        emu = Emulator(**kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def zoho_emulator(zoho_emulator_factory: Callable[..., Emulator]) -> Emulator:
    """A started emulator with default (Zoho's real) limits, empty of clients and organizations."""
    return zoho_emulator_factory()
