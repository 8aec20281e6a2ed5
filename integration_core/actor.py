"""Who is acting: an operator name carried through a request, so every audit row written while it is
handled (by the Hub, the outbox or the inbox) says who did it, without threading it through every call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ACTOR: ContextVar[str | None] = ContextVar("integration_core_actor", default=None)


def current_actor() -> str | None:
    """The actor of the current thread/context (``None``: the system itself, e.g. the scheduler)."""
    return _ACTOR.get()


@contextmanager
def acting_as(actor: str | None) -> Iterator[None]:
    """``with acting_as("console:alice"): hub.disable(...)``: audit rows written inside name the actor."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)
