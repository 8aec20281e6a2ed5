"""pytest fixtures for the QuickBooks Online emulator (registered through the pytest11 entry point)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .server import Emulator


@pytest.fixture
def qbo_emulator_factory() -> Iterator[Callable[..., Emulator]]:
    """Build started emulators with custom settings (``Emulator(**kwargs)``); all are stopped at teardown."""
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
def qbo_emulator(qbo_emulator_factory: Callable[..., Emulator]) -> Emulator:
    """A started emulator with QuickBooks' real limits, no apps and no companies."""
    return qbo_emulator_factory()
