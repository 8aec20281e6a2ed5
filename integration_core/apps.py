"""Provider-level settings and secrets (an app's client id and secret, its webhook verifier token), and the
vault-wide operations over every stored secret (connections' and providers').

A provider declares them in ``ProviderInfo.app_fields``; ``integration-core providers configure NAME`` sets
them. Secrets are encrypted with the connections' :class:`~integration_core.vault.KeyRing` and included in
``keys rotate``. Every connection of the provider falls back to them (``ProviderContext.settings``,
``Secrets.get``) for a field it has no value of its own for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import audit
from .context import AppContext, Secrets
from .errors import ConfigurationError, UnknownProviderError
from .store.db import lock_rows
from .store.schema import connections, provider_configs, utcnow

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)


class ProviderApps:
    """``hub.apps``: the provider-level configuration of each installed provider."""

    CACHE_SECONDS = 5.0  # another process's ``configure`` is seen within this time; this process's at once

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._cache: dict[str, tuple[float, dict[str, Any], dict[str, str]]] = {}
        self.keys_backfilled = 0  # account keys this process set (backfill_account_keys), for the CLI

    def load(self, provider: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The provider's settings and decrypted secrets (both empty when it was never configured)."""
        cached = self._cache.get(provider)
        if cached is not None and time.monotonic() - cached[0] < self.CACHE_SECONDS:
            return dict(cached[1]), dict(cached[2])
        with self.hub.engine.connect() as db:
            row = db.execute(sa.select(provider_configs).where(provider_configs.c.provider == provider)).first()
        settings, secrets = ({}, {}) if row is None else (dict(row.settings or {}), self.hub.keys.decrypt(row.secrets))
        self._cache[provider] = (time.monotonic(), settings, secrets)
        return dict(settings), dict(secrets)

    def context(self, provider: str) -> AppContext:
        settings, secrets = self.load(provider)
        return AppContext(provider, settings, Secrets(secrets))

    def configure(self, provider: str, values: Mapping[str, str], *, unset: tuple[str, ...] = ()) -> dict[str, Any]:
        """Set (and ``unset``) provider-level values; secret fields go to the vault only. Returns the
        non-secret settings and the names of the stored secrets."""
        info = self.hub.provider_info(provider)
        fields = {f.name: f for f in info.app_fields}
        if not fields:
            raise ConfigurationError(f"provider {provider} has no provider-level settings")
        unknown = sorted((set(values) | set(unset)) - set(fields))
        if unknown:
            raise ConfigurationError(
                f"unknown provider setting(s) for {provider}: {', '.join(unknown)}; expected: {', '.join(fields)}"
            )
        for key, value in values.items():
            if not str(value).strip():
                raise ConfigurationError(f"{key} must not be empty (use --unset to remove it)")
            if fields[key].choices and value not in fields[key].choices:
                raise ConfigurationError(f"{key} must be one of {', '.join(fields[key].choices)}")
        with self.hub.engine.begin() as db:
            query = sa.select(provider_configs).where(provider_configs.c.provider == provider)
            row = db.execute(lock_rows(db, query)).first()
            settings = dict(row.settings or {}) if row is not None else {}
            secrets = self.hub.keys.decrypt(row.secrets) if row is not None else {}
            for key in unset:
                settings.pop(key, None)
                secrets.pop(key, None)
            for key, value in values.items():
                (secrets if fields[key].secret else settings)[key] = str(value)
            stored = {"settings": settings, "secrets": self.hub.keys.encrypt(secrets) if secrets else None,
                      "updated_at": utcnow()}
            if row is None:
                db.execute(provider_configs.insert().values(provider=provider, **stored))
            else:
                db.execute(provider_configs.update().where(provider_configs.c.provider == provider).values(**stored))
            changed = ", ".join(sorted({*values, *unset}))
            audit.record(db, "provider", provider, "configured", changed or None)
        self._cache.pop(provider, None)
        return {"provider": provider, "settings": settings, "secrets": sorted(secrets)}

    def show(self, provider: str) -> dict[str, Any]:
        settings, secrets = self.load(provider)
        return {"provider": provider, "settings": settings, "secrets": sorted(secrets)}

    def account_key(self, provider: str, settings: Mapping[str, Any]) -> str | None:
        """The provider's ``account_key`` for a connection's settings (``None`` without the hook)."""
        try:
            hooks = self.hub.provider(provider)
            if not hooks.implements("account_key"):
                return None
            key = hooks.account_key(settings=dict(settings))
        except Exception as exc:  # a connection must stay writable whatever the provider says
            log.warning("account_key of %s raised %s", provider, exc.__class__.__name__)
            return None
        return str(key)[:200] if key else None

    def backfill_account_keys(self, provider: str | None = None) -> int:
        """Give every connection without an account key the key its provider's ``account_key`` hook computes
        from its settings (connections created before the column existed, or written by a process of an older
        version). Returns how many were set.

        A plain read finds the candidates (the hook is pure Python, so a connection whose key is still unknown,
        e.g. one waiting for its authorization, costs no lock); only rows that get a key are locked, re-read and
        written, each key from the settings read under the lock and only while the row still has none, so
        processes doing this at once, and a concurrent settings write, agree. Run when the Hub starts, by
        provider-level routing before it records an event as unrouted, and by ``connections account-keys``."""
        names = [provider] if provider is not None else self.hub.plugins.provider_names()
        names = [n for n in names if self._has_account_key(n)]
        if not names:
            return 0
        c = connections.c
        missing = sa.select(c.id, c.provider, c.settings).where(c.provider.in_(names), c.account_key.is_(None))
        with self.hub.engine.connect() as db:
            rows = db.execute(missing.order_by(c.id)).fetchall()
        ids = [r.id for r in rows if self.account_key(r.provider, r.settings or {})]
        count = 0
        for start in range(0, len(ids), 500):
            with self.hub.engine.begin() as db:
                chunk = db.execute(lock_rows(db, missing.where(c.id.in_(ids[start:start + 500])).order_by(c.id)))
                for row in chunk.fetchall():
                    key = self.account_key(row.provider, row.settings or {})
                    if not key:
                        continue
                    db.execute(connections.update().where(c.id == row.id, c.account_key.is_(None))
                               .values(account_key=key))
                    audit.record(db, "connection", row.id, "account_key", f"account key {key} set from its settings",
                                 connection_id=row.id)
                    count += 1
        if count:
            log.info("account keys set for %d connection(s)", count)
            self.keys_backfilled += count
        return count

    def without_account_key(self, provider: str | None = None) -> list[Any]:
        """The connections of providers with provider-level webhooks that still have no account key (their
        settings do not name the account yet, e.g. waiting for authorization): such webhooks cannot reach them."""
        names = [provider] if provider is not None else self.hub.plugins.provider_names()
        c = connections.c
        query = (sa.select(c.id, c.provider, c.tenant_id, c.environment_id, c.status)
                 .where(c.provider.in_([n for n in names if self._has_account_key(n)]), c.account_key.is_(None))
                 .order_by(c.provider, c.tenant_id, c.environment_id))
        with self.hub.engine.connect() as db:
            return list(db.execute(query).fetchall())

    def _has_account_key(self, provider: str) -> bool:
        try:
            return self.hub.provider(provider).implements("account_key")
        except UnknownProviderError:  # an uninstalled provider's connections keep what they have
            return False


# --- every stored secret -------------------------------------------------------------------------------


def store_has_secrets(engine: sa.Engine) -> bool:
    with engine.connect() as db:
        for table in (connections, provider_configs):
            if db.execute(sa.select(table.c.secrets).where(table.c.secrets.is_not(None)).limit(1)).first():
                return True
    return False


def rotate_secrets(hub: Hub) -> int:
    """Re-encrypt every stored secret (connections and providers) under the first key; rows rewritten."""
    count = 0
    vault = hub.keys.current()
    with hub.engine.begin() as db:
        for table, key in ((connections, connections.c.id), (provider_configs, provider_configs.c.provider)):
            rows = db.execute(lock_rows(db, sa.select(key.label("key"), table.c.secrets))).fetchall()
            for row in rows:
                if not row.secrets:
                    continue
                db.execute(table.update().where(key == row.key).values(secrets=vault.rotate(row.secrets)))
                count += 1
        audit.record(db, "connection", None, "keys_rotated", f"{count} secret row(s) re-encrypted")
    return count


def secrets_readable_by_primary_key(hub: Hub) -> bool:
    with hub.engine.connect() as db:
        tokens = [*db.execute(sa.select(connections.c.secrets)).scalars(),
                  *db.execute(sa.select(provider_configs.c.secrets)).scalars()]
    vault = hub.keys.current()
    return all(vault.readable_by_primary(t) for t in tokens if t)
