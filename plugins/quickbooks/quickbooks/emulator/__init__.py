"""A faithful local QuickBooks Online (Intuit OAuth + Accounting API v3) for tests, demos and benchmarks.

The server modules load only when ``Emulator`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Emulator

__all__ = ["Emulator"]


def __getattr__(name: str) -> Any:
    if name == "Emulator":
        from .server import Emulator

        return Emulator
    raise AttributeError(name)
