"""Typed errors: the class of a failure decides what the core does next (retry, pause, fail)."""

from __future__ import annotations


class IntegrationError(Exception):
    """Base of every error the core raises or expects from a provider."""


class ProviderError(IntegrationError):
    """A provider call failed; subclasses say whether trying again can help."""

    def __init__(self, message: str, *, code: str | int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class TransientError(ProviderError):
    """Network error, timeout, 5xx: the same request may succeed later.

    ``uncertain`` is True when the remote side may have applied a write although we saw an
    error (a lost response); the core then looks the record up before any re-create.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | int | None = None,
        retry_after: float | None = None,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.uncertain = uncertain


class RateLimitedError(TransientError):
    """The provider refused for rate: wait ``retry_after`` seconds (its hint, or the documented window)."""


class AuthError(ProviderError):
    """Credentials refused (refresh denied, consent revoked): the connection needs re-authorization."""


class PermanentError(ProviderError):
    """The provider rejected the data (validation): retrying unchanged cannot help; an operator must act."""


class WebhookRejected(IntegrationError):
    """A webhook failed verification or parsing; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class UnknownProviderError(IntegrationError):
    """A connection names a provider that is not installed."""

    def __init__(self, name: str, installed: list[str]) -> None:
        listing = ", ".join(sorted(installed)) or "none"
        super().__init__(f"unknown provider {name!r}; installed providers: {listing}")
        self.name = name
        self.installed = sorted(installed)


class ConfigurationError(IntegrationError):
    """Bad settings or input from an operator: the message says what to change."""


class DatabaseFileChanged(ConfigurationError):
    """The SQLite file this process opened was deleted or replaced: writing on would go to a file nobody
    will read again. The process must stop (and an operator restore or re-create the database)."""


class NotFoundError(IntegrationError):
    """A connection, task or event that was asked for does not exist."""
