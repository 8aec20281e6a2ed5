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
from .errors import ConfigurationError
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
