"""What a provider hook gets for one connection: settings, decrypted secrets, HTTP session, cache."""

from __future__ import annotations

import threading
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import requests

from .metrics import token_refreshed
from .models import Connection


class Secrets:
    """Decrypted secrets of one connection. Never printed: ``repr`` shows names only."""

    def __init__(
        self,
        values: Mapping[str, str],
        save: Callable[[dict[str, str | None]], Mapping[str, str] | None] | None = None,
        load: Callable[[], dict[str, str]] | None = None,
        fallback: Mapping[str, str] | None = None,
    ) -> None:
        """``save`` gets only the changed keys (``None``: removed) and merges them into the stored set under
        the connection's row lock; it returns the stored set after the merge (or ``None``)."""
        self._values = dict(values)
        self._save = save
        self._load = load
        self.written: set[str] = set()  # the keys changed through this object (to undo a failed flow)
        # The provider-level secrets: read when the connection has no value of its own, never written back.
        self._fallback = dict(fallback or {})

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name, self._fallback.get(name, default))

    def __getitem__(self, name: str) -> str:
        return self._values[name] if name in self._values else self._fallback[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values or name in self._fallback

    def names(self) -> list[str]:
        return sorted({*self._values, *self._fallback})

    def update(self, **values: str | None) -> None:
        """Change these secrets and persist them encrypted (``None`` removes one). Only these keys are
        written: a change another process made to other keys meanwhile (an operator's new webhook secret)
        is kept, and this object then holds the merged set."""
        changes = {key: None if value is None else str(value) for key, value in values.items()}
        self.written.update(changes)
        for key, value in changes.items():
            if value is None:
                self._values.pop(key, None)
            else:
                self._values[key] = value
        if self._save is not None:
            merged = self._save(changes)
            if merged is not None:
                self._values = dict(merged)

    def reload(self) -> None:
        """Read the stored secrets again (another thread or process may have refreshed a token)."""
        if self._load is not None:
            self._values = self._load()

    def __repr__(self) -> str:
        return f"Secrets(names={self.names()!r})"

    __str__ = __repr__


_SESSION: requests.Session | None = None
_SESSION_LOCK = threading.Lock()


def shared_session() -> requests.Session:
    """One pooled ``requests.Session`` per process, shared by every provider call."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=32, pool_maxsize=64)
            _SESSION.mount("http://", adapter)
            _SESSION.mount("https://", adapter)
        return _SESSION


_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _thread_lock(key: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


_CACHES: dict[str, dict[str, Any]] = {}


class Mappings:
    """A provider's own remembered links, such as a product code and the remote item made for it, kept in the
    core's mapping table (per connection and entity type) so they outlive the process. Without a store (tests,
    tools) they live in memory."""

    def __init__(
        self,
        get: Callable[[str, str], str | None] | None = None,
        put: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self._get, self._put = get, put
        self._memory: dict[tuple[str, str], str] = {}

    def get(self, entity_type: str, local_id: str) -> str | None:
        if self._get is None:
            return self._memory.get((entity_type, local_id))
        return self._get(entity_type, local_id)

    def remember(self, entity_type: str, local_id: str, remote_id: str) -> None:
        if self._put is None:
            self._memory[(entity_type, local_id)] = remote_id
        else:
            self._put(entity_type, local_id, remote_id)


class AppContext:
    """The ``app`` argument of the provider-level hooks (``verify_app_webhook``, ``route_webhook``): the
    provider's own settings and decrypted secrets (``providers configure``), without any connection."""

    def __init__(self, provider: str, settings: Mapping[str, Any], secrets: Secrets) -> None:
        self.provider = provider
        self.settings: Mapping[str, Any] = dict(settings)
        self.secrets = secrets
        self.http = shared_session()

    def __repr__(self) -> str:
        return f"AppContext(provider={self.provider!r}, secrets={self.secrets!r})"


class ProviderContext:
    """The ``ctx`` argument of every provider hook. Its settings fall back to the provider-level
    settings (``defaults``), as its secrets do (:class:`Secrets` ``fallback``)."""

    def __init__(
        self,
        connection: Connection,
        secrets: Secrets,
        *,
        save_settings: Callable[[dict[str, Any]], Mapping[str, Any] | None] | None = None,
        process_lock: Callable[[str], AbstractContextManager[None]] | None = None,
        session: requests.Session | None = None,
        mappings: Mappings | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self.record = connection
        self.secrets = secrets
        self._settings = dict(connection.settings)
        self._defaults = dict(defaults or {})
        self._save_settings = save_settings
        self._process_lock = process_lock
        self.http = session or shared_session()
        self.mappings = mappings or Mappings()
        self.requests_made = 0
        self.metered = False
        self.settings_written: set[str] = set()
        self.meter: Callable[[int], None] | None = None  # set by the outbox while it drains this connection

    def note_request(self, count: int = 1) -> None:
        """Providers call this *before* each request that counts against the account's rate limit.

        While the outbox drains the connection, this spends the shared budget for the request: it returns
        once the request fits the account's window (sleeping briefly if needed), or raises
        ``RateLimitedError`` (nothing sent) when the window has no room for a while."""
        self.metered = True
        self.requests_made += count
        if self.meter is not None:
            self.meter(count)

    def note_token_refresh(self, ok: bool) -> None:
        """Providers call this after each access-token refresh (``ok`` False when it was refused or failed):
        it feeds the ``integration_core_token_refreshes`` metric."""
        token_refreshed(self.record.provider, ok)

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def provider(self) -> str:
        return self.record.provider

    @property
    def settings(self) -> Mapping[str, Any]:
        return ChainMap(self._settings, self._defaults) if self._defaults else self._settings

    def update_settings(self, **values: Any) -> None:
        """Persist non-secret settings learned at run time (e.g. the API host from a token response).
        Only these keys are written (merged under the row lock), as with :meth:`Secrets.update`."""
        self._settings.update(values)
        self.settings_written.update(values)
        if self._save_settings is not None:
            merged = self._save_settings(dict(values))
            if merged is not None:
                self._settings = dict(merged)

    @property
    def cache(self) -> dict[str, Any]:
        """A per-connection, per-process cache for lookups that rarely change (currencies, base currency)."""
        return _CACHES.setdefault(self.record.id, {})

    @contextmanager
    def exclusive(self, purpose: str = "refresh") -> Iterator[None]:
        """Serialize a critical section (a token refresh) across threads and, on PostgreSQL, processes.

        Callers re-read ``secrets`` inside it: whoever waited finds the fresh token and does not refresh.
        """
        key = f"{self.record.id}:{purpose}"
        with _thread_lock(key):
            if self._process_lock is None:
                yield
            else:
                with self._process_lock(key):
                    yield

    def __repr__(self) -> str:
        r = self.record
        return (
            f"ProviderContext(id={r.id!r}, provider={r.provider!r}, tenant={r.tenant_id!r}, env={r.environment_id!r})"
        )
