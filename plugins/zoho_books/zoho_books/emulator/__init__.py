"""A faithful local Zoho Books (accounts + Books API v3) for tests, demos and benchmarks.

Import cost is kept small: the server modules load only when `Emulator` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .signing import SIGNATURE_HEADER, sign, verify

if TYPE_CHECKING:
    from .server import Emulator

__all__ = ["SIGNATURE_HEADER", "Emulator", "sign", "verify"]


def __getattr__(name: str) -> Any:
    if name == "Emulator":
        from .server import Emulator

        return Emulator
    raise AttributeError(name)
