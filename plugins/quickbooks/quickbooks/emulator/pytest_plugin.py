"""pytest fixtures for the QuickBooks Online emulator (registered through the pytest11 entry point).

Imports stay lazy so merely having the plugin installed costs nothing for unrelated test runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .server import Emulator


@pytest.fixture
def qbo_emulator_factory() -> Iterator[Callable[..., Emulator]]:
    """Build started emulators with custom settings (``Emulator(**kwargs)``); all are stopped at teardown."""
    from integration_core.emulation.wsgi import emulator_factory

    from .server import Emulator

    with emulator_factory(Emulator) as make:
        yield make


@pytest.fixture
def qbo_emulator(qbo_emulator_factory: Callable[..., Emulator]) -> Emulator:
    """A started emulator with QuickBooks' real limits, no apps and no companies."""
    return qbo_emulator_factory()
