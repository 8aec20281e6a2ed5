"""The Hub: the public API a host uses (connections, submit, webhooks), over the store and plugins."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets as pysecrets
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import audit
from .config import Config
from .context import ProviderContext, Secrets
from .errors import AuthError, ConfigurationError, IntegrationError, NotFoundError
from .models import Connection, ConnectionStatus, Invoice, ProviderInfo, SyncSettings
from .plugins import Plugins
from .store import create_engine_for, upgrade
from .store.db import is_postgres
from .store.schema import connections, oauth_states, utcnow
from .vault import Vault, load_keys

if TYPE_CHECKING:
    from .outbound import SubmitResult

log = logging.getLogger(__name__)

OAUTH_STATE_TTL_SECONDS = 15 * 60


def _row_to_connection(row: Any) -> Connection:
    return Connection(
        id=row.id,
        tenant_id=row.tenant_id,
        environment_id=row.environment_id,
        provider=row.provider,
        name=row.name,
        settings=dict(row.settings or {}),
        status=row.status,
        sync=SyncSettings(invoices_outbound=row.invoices_outbound, customers_inbound=row.customers_inbound),
    )


class Hub:
    """One per process. Thread-safe: every method opens its own transaction."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        engine: sa.Engine | None = None,
        plugins: Plugins | None = None,
        host: Any = None,
        auto_upgrade: bool = True,
    ) -> None:
        self.config = config or Config.from_env()
        self.engine = engine or create_engine_for(self.config.database_url)
        if auto_upgrade:
            upgrade(self.engine)
        self._key_file_mtime: float | None = None
        self.vault = Vault(self._load_keys())
        self.plugins = plugins or Plugins()
        if host is not None:
            self.plugins.set_host(host)

    def _load_keys(self) -> list[str]:
        """Keys from IC_KEYS or the key file. A key file is generated only for an empty store: a missing
        file beside a database that holds secrets is a misconfiguration, not a first run."""
        try:
            keys = load_keys(self.config.keys, self.config.key_file, create=False)
            self._key_file_mtime = self._key_file_stamp()
            return keys
        except ConfigurationError:
            with self.engine.connect() as db:
                has_secrets = db.execute(
                    sa.select(sa.func.count()).select_from(connections).where(connections.c.secrets.is_not(None))
                ).scalar_one()
            if has_secrets:
                raise ConfigurationError(
                    f"no key file at {self.config.key_file} and IC_KEYS is not set, but the database holds "
                    f"encrypted secrets: point IC_KEY_FILE (or IC_KEYS) at the keys they were written with"
                ) from None
            keys = load_keys(self.config.keys, self.config.key_file, create=True)
            self._key_file_mtime = self._key_file_stamp()
            return keys

    def _key_file_stamp(self) -> float | None:
        try:
            return os.stat(self.config.key_file).st_mtime_ns if not self.config.keys else None
        except OSError:
            return None

    def _current_vault(self) -> Vault:
        """Re-read the key file if it changed (a rotation elsewhere), so no process keeps writing under a
        key that is about to be dropped."""
        stamp = self._key_file_stamp()
        if stamp is not None and stamp != self._key_file_mtime:
            self.vault = Vault(self._load_keys())
        return self.vault

    def _encrypt(self, secrets: dict[str, str]) -> str:
        return self._current_vault().encrypt(secrets)

    def _decrypt(self, token: str | None) -> dict[str, str]:
        """Decrypt; on failure re-read the key file once, so a running worker follows a rotation."""
        try:
            return self.vault.decrypt(token)
        except ConfigurationError:
            if self.config.keys:
                raise
            self.vault = Vault(self._load_keys())
            return self.vault.decrypt(token)

    # --- providers -------------------------------------------------------------------------------

    def provider(self, name: str) -> Any:
        return self.plugins.provider(name)

    def provider_info(self, name: str) -> ProviderInfo:
        return self.provider(name).provider_info()

    # --- connections -----------------------------------------------------------------------------

    def add_connection(
        self,
        *,
        tenant_id: str,
        environment_id: str,
        provider: str,
        name: str,
        values: Mapping[str, str],
        sync: SyncSettings | None = None,
    ) -> Connection:
        """Create a connection. ``values`` holds settings and secrets together; the provider's fields say
        which are secret, and those go to the vault only."""
        for label, value in (("tenant_id", tenant_id), ("environment_id", environment_id), ("name", name)):
            if not value or not str(value).strip() or "/" in str(value):
                raise ConfigurationError(f"{label} must be a non-empty string without '/'")
        info = self.provider_info(provider)
        settings, secret_values = self._split_values(provider, info, dict(values), require_all=True)
        status = ConnectionStatus.PENDING_AUTH if info.oauth else ConnectionStatus.ACTIVE
        sync = sync or SyncSettings()
        conn_id = str(uuid.uuid4())
        now = utcnow()
        with self.engine.begin() as db:
            exists = db.execute(
                sa.select(connections.c.id).where(
                    connections.c.provider == provider,
                    connections.c.tenant_id == tenant_id,
                    connections.c.environment_id == environment_id,
                )
            ).first()
            if exists:
                raise ConfigurationError(
                    f"a {provider} connection for tenant {tenant_id!r} / environment {environment_id!r} "
                    f"already exists ({exists.id})"
                )
            db.execute(
                connections.insert().values(
                    id=conn_id,
                    tenant_id=tenant_id,
                    environment_id=environment_id,
                    provider=provider,
                    name=name,
                    settings=settings,
                    secrets=self._encrypt(secret_values),
                    status=status,
                    invoices_outbound=sync.invoices_outbound,
                    customers_inbound=sync.customers_inbound,
                    rate_window_count=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            audit.record(db, "connection", conn_id, "created", f"{provider} {name}", connection_id=conn_id)
        return self.get_connection(conn_id)

    def _split_values(
        self, provider: str, info: ProviderInfo, values: dict[str, str], *, require_all: bool
    ) -> tuple[dict[str, Any], dict[str, str]]:
        fields = {f.name: f for f in info.fields}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) for {provider}: {', '.join(unknown)}; expected: {', '.join(fields)}"
            )
        if require_all:
            for f in info.fields:
                if f.name not in values and f.default is not None:
                    values[f.name] = f.default
            missing = [f.name for f in info.fields if f.required and not values.get(f.name)]
            if missing:
                raise ConfigurationError(f"missing setting(s) for {provider}: {', '.join(missing)}")
        for key, value in values.items():
            choices = fields[key].choices
            if choices and value not in choices:
                raise ConfigurationError(f"{key} must be one of {', '.join(choices)}")
        normalized = self.provider(provider).validate_settings(values=values)
        if normalized is not None:
            values = dict(normalized)
        settings = {k: v for k, v in values.items() if not fields[k].secret}
        secret_values = {k: str(v) for k, v in values.items() if fields[k].secret}
        return settings, secret_values

    def update_connection(
        self,
        connection_id: str,
        *,
        values: Mapping[str, str] | None = None,
        name: str | None = None,
        sync: SyncSettings | None = None,
    ) -> Connection:
        """Change settings or secrets (e.g. a new webhook secret), the name, or the sync directions."""
        current = self.get_connection(connection_id)
        changes: dict[str, Any] = {}
        with self.engine.begin() as db:
            row = self._lock_row(db, connection_id)
            if values:
                # Only declared fields are validated; what the provider stored on its own (tokens, a learned
                # API host) is kept as it is.
                info = self.provider_info(current.provider)
                declared = {f.name for f in info.fields}
                stored_settings = dict(row.settings or {})
                stored_secrets = self._decrypt(row.secrets)
                merged = {k: v for k, v in {**stored_settings, **stored_secrets}.items() if k in declared}
                merged.update(values)
                settings, secret_values = self._split_values(current.provider, info, merged, require_all=True)
                changes["settings"] = {**stored_settings, **settings}
                changes["secrets"] = self._encrypt({**stored_secrets, **secret_values})
            if name:
                changes["name"] = name
            if sync is not None:
                changes["invoices_outbound"] = sync.invoices_outbound
                changes["customers_inbound"] = sync.customers_inbound
            if changes:
                changes["updated_at"] = utcnow()
                db.execute(connections.update().where(connections.c.id == connection_id).values(**changes))
                what = ", ".join(sorted(set(changes) - {"updated_at"}))
                keys = ", ".join(sorted(values or {}))
                audit.record(
                    db, "connection", connection_id, "updated", f"{what} {keys}".strip(), connection_id=connection_id
                )
        return self.get_connection(connection_id)

    def _lock_row(self, db: sa.Connection, connection_id: str) -> Any:
        query = sa.select(connections).where(connections.c.id == connection_id)
        if is_postgres(self.engine):
            query = query.with_for_update()
        row = db.execute(query).first()
        if row is None:
            raise NotFoundError(f"no connection {connection_id!r}")
        return row

    def get_connection(self, connection_id: str) -> Connection:
        with self.engine.connect() as db:
            row = db.execute(sa.select(connections).where(connections.c.id == connection_id)).first()
        if row is None:
            raise NotFoundError(f"no connection {connection_id!r}")
        return _row_to_connection(row)

    def find_connection(self, provider: str, tenant_id: str, environment_id: str) -> Connection | None:
        c = connections.c
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(connections).where(
                    c.provider == provider, c.tenant_id == tenant_id, c.environment_id == environment_id
                )
            ).first()
        return None if row is None else _row_to_connection(row)

    def list_connections(self, tenant_id: str | None = None, environment_id: str | None = None) -> list[Connection]:
        query = sa.select(connections).order_by(
            connections.c.tenant_id, connections.c.environment_id, connections.c.provider
        )
        if tenant_id is not None:
            query = query.where(connections.c.tenant_id == tenant_id)
        if environment_id is not None:
            query = query.where(connections.c.environment_id == environment_id)
        with self.engine.connect() as db:
            return [_row_to_connection(r) for r in db.execute(query)]

    def set_status(self, connection_id: str, status: str, reason: str | None = None) -> None:
        with self.engine.begin() as db:
            self._set_status(db, connection_id, status, reason)

    def _set_status(self, db: sa.Connection, connection_id: str, status: str, reason: str | None) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
        if reason:
            values.update(last_error=reason, last_error_at=utcnow())
        db.execute(connections.update().where(connections.c.id == connection_id).values(**values))
        audit.record(db, "connection", connection_id, f"status:{status}", reason, connection_id=connection_id)

    def disable(self, connection_id: str) -> None:
        self.get_connection(connection_id)
        self.set_status(connection_id, ConnectionStatus.DISABLED)

    def enable(self, connection_id: str) -> str:
        """Re-enable a connection. An OAuth connection is checked with the provider first: it becomes
        active only if its grant still works, else it waits for (re-)authorization. Returns the status."""
        conn = self.get_connection(connection_id)
        status = ConnectionStatus.ACTIVE
        reason = None
        if self.provider_info(conn.provider).oauth:
            try:
                self.provider(conn.provider).connect(connection=self.context(conn))
            except AuthError as exc:
                status, reason = ConnectionStatus.NEEDS_REAUTH, f"re-authorize: {exc}"
            except IntegrationError as exc:
                raise ConfigurationError(f"connection check failed, still disabled: {exc}") from exc
        self.set_status(connection_id, status, reason)
        if status == ConnectionStatus.ACTIVE:
            self._resume(connection_id)
        return status

    def disconnect(self, connection_id: str) -> None:
        """Revoke the grant at the provider (its ``disconnect`` hook) and wait for a new authorization.
        Queued work is kept: it resumes when the connection is authorized again."""
        conn = self.get_connection(connection_id)
        info = self.provider_info(conn.provider)
        self.provider(conn.provider).disconnect(connection=self.context(conn))
        status = ConnectionStatus.PENDING_AUTH if info.oauth else ConnectionStatus.DISABLED
        self.set_status(connection_id, status, "disconnected by an operator")

    def _resume(self, connection_id: str) -> None:
        from .outbound import resume_paused

        resume_paused(self, connection_id)

    # --- provider context ------------------------------------------------------------------------

    def _load_secrets(self, connection_id: str) -> dict[str, str]:
        with self.engine.connect() as db:
            token = db.execute(
                sa.select(connections.c.secrets).where(connections.c.id == connection_id)
            ).scalar_one_or_none()
        return self._decrypt(token)

    def _save_secrets(self, connection_id: str, values: dict[str, str]) -> None:
        with self.engine.begin() as db:
            db.execute(
                connections.update()
                .where(connections.c.id == connection_id)
                .values(secrets=self._encrypt(values), updated_at=utcnow())
            )

    def _save_settings(self, connection_id: str, values: dict[str, Any]) -> None:
        with self.engine.begin() as db:
            db.execute(
                connections.update()
                .where(connections.c.id == connection_id)
                .values(settings=values, updated_at=utcnow())
            )

    @contextmanager
    def _advisory_lock(self, key: str) -> Iterator[None]:
        """A PostgreSQL session advisory lock: the cross-process half of ``ProviderContext.exclusive``."""
        lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        with self.engine.connect() as db:
            db.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
            db.commit()
            try:
                yield
            finally:
                db.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                db.commit()

    def context(self, connection: Connection | str) -> ProviderContext:
        """The ``connection`` argument for provider hooks: secrets decrypted, write-backs persisted.

        Given an id, the connection and its secrets come from one read of its row."""
        if isinstance(connection, str):
            with self.engine.connect() as db:
                row = db.execute(sa.select(connections).where(connections.c.id == connection)).first()
            if row is None:
                raise NotFoundError(f"no connection {connection!r}")
            return self._context(_row_to_connection(row), self._decrypt(row.secrets))
        return self._context(connection, self._load_secrets(connection.id))

    def find_context(self, provider: str, tenant_id: str, environment_id: str) -> ProviderContext | None:
        """:meth:`find_connection` and :meth:`context` in one read (the webhook dispatcher's lookup)."""
        c = connections.c
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(connections).where(
                    c.provider == provider, c.tenant_id == tenant_id, c.environment_id == environment_id
                )
            ).first()
        return None if row is None else self._context(_row_to_connection(row), self._decrypt(row.secrets))

    def _context(self, connection: Connection, secret_values: dict[str, str]) -> ProviderContext:
        cid = connection.id
        secrets = Secrets(
            secret_values,
            save=lambda values: self._save_secrets(cid, values),
            load=lambda: self._load_secrets(cid),
        )
        return ProviderContext(
            connection,
            secrets,
            save_settings=lambda values: self._save_settings(cid, values),
            process_lock=self._advisory_lock if is_postgres(self.engine) else None,
        )

    def check_connection(self, connection_id: str) -> Any:
        """Ask the provider to verify the connection (``connect`` hook) and return what it found."""
        conn = self.get_connection(connection_id)
        return self.provider(conn.provider).connect(connection=self.context(conn))

    # --- OAuth -----------------------------------------------------------------------------------

    def start_authorization(self, connection_id: str, redirect_uri: str) -> str:
        """The URL to send the account owner to. A single-use ``state`` ties the callback to this connection."""
        conn = self.get_connection(connection_id)
        state = pysecrets.token_urlsafe(24)
        url = self.provider(conn.provider).authorization_url(
            connection=self.context(conn), redirect_uri=redirect_uri, state=state
        )
        if url is None:
            raise ConfigurationError(f"provider {conn.provider} needs no authorization")
        with self.engine.begin() as db:
            db.execute(
                oauth_states.insert().values(
                    state=state, connection_id=connection_id, redirect_uri=redirect_uri, created_at=utcnow()
                )
            )
            audit.record(db, "connection", connection_id, "authorization_started", connection_id=connection_id)
        return url

    def complete_authorization(self, state: str, code: str, params: Mapping[str, str] | None = None) -> Connection:
        """Finish the flow started by :meth:`start_authorization`; the connection becomes active."""
        with self.engine.begin() as db:
            row = db.execute(sa.select(oauth_states).where(oauth_states.c.state == state)).first()
            if row is None:
                raise ConfigurationError("unknown or already used authorization state")
            db.execute(oauth_states.delete().where(oauth_states.c.state == state))
        age = (utcnow() - row.created_at).total_seconds()
        if age > OAUTH_STATE_TTL_SECONDS:
            raise ConfigurationError("the authorization request expired; start it again")
        conn = self.get_connection(row.connection_id)
        ctx = self.context(conn)
        provider = self.provider(conn.provider)
        try:
            provider.complete_authorization(
                connection=ctx, code=code, redirect_uri=row.redirect_uri, params=dict(params or {})
            )
            result = provider.connect(connection=ctx)
        except IntegrationError as exc:
            self.set_status(conn.id, ConnectionStatus.PENDING_AUTH, f"authorization failed: {exc}")
            raise
        with self.engine.begin() as db:
            self._set_status(db, conn.id, ConnectionStatus.ACTIVE, None)
            audit.record(
                db, "connection", conn.id, "authorized", getattr(result, "account_name", None), connection_id=conn.id
            )
        self._resume(conn.id)
        return self.get_connection(conn.id)

    # --- keys ------------------------------------------------------------------------------------

    def rotate_secrets(self) -> int:
        """Re-encrypt every stored secret under the first key; returns how many rows were rewritten."""
        count = 0
        vault = self._current_vault()
        with self.engine.begin() as db:
            rows = db.execute(
                sa.select(connections.c.id, connections.c.secrets).with_for_update()
                if is_postgres(self.engine)
                else sa.select(connections.c.id, connections.c.secrets)
            )
            for row in rows.fetchall():
                if not row.secrets:
                    continue
                db.execute(
                    connections.update()
                    .where(connections.c.id == row.id)
                    .values(secrets=vault.rotate(row.secrets))
                )
                count += 1
            audit.record(db, "connection", None, "keys_rotated", f"{count} connection(s) re-encrypted")
        return count

    def secrets_readable_by_primary_key(self) -> bool:
        with self.engine.connect() as db:
            tokens = db.execute(sa.select(connections.c.secrets)).scalars().all()
        vault = self._current_vault()
        return all(vault.readable_by_primary(t) for t in tokens if t)

    # --- outbound / inbound (implemented in their own modules) -------------------------------------

    def submit_invoice(self, tenant_id: str, environment_id: str, invoice: Invoice) -> SubmitResult:
        """Queue ``invoice`` for every connection of the tenant/environment with outbound sync on.

        Idempotent: a resubmission never creates a second task; a changed snapshot replaces a pending one.
        """
        from .outbound import submit_invoice

        return submit_invoice(self, tenant_id, environment_id, invoice)
