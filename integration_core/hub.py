"""The Hub: the public API a host uses (connections, submit, webhooks), over the store and plugins."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from . import apps, audit, authorization, mapping
from .config import Config
from .context import ProviderContext, Secrets
from .errors import AuthError, ConfigurationError, IntegrationError, NotFoundError
from .models import Connection, ConnectionStatus, ConnectResult, Invoice, Payment, ProviderInfo, SyncSettings
from .outbox.ops import resume_paused
from .outbox.submit import SubmitResult, submit_invoice, submit_payment, submit_void
from .plugins import Plugins, ProviderHooks
from .store import create_engine_for, upgrade
from .store.db import is_postgres, lock_rows
from .store.schema import connections, utcnow
from .validation import segment_error
from .vault import KeyRing
from .webhook_entry import Body, Headers, Query, WebhookEntry, WebhookResponse

log = logging.getLogger(__name__)


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
        host: object | None = None,
        auto_upgrade: bool = True,
    ) -> None:
        self.config = config or Config.from_env()
        self.engine = engine or create_engine_for(self.config.database_url)
        if auto_upgrade:
            upgrade(self.engine)
        self.keys = KeyRing(self.config.keys, self.config.key_file,
                            store_has_secrets=lambda: apps.store_has_secrets(self.engine))
        self.plugins = plugins or Plugins()
        self.apps = apps.ProviderApps(self)
        if host is not None:
            self.plugins.set_host(host)
        self.entry = WebhookEntry(self)
        if auto_upgrade:  # the schema is current: connections stored without an account key get theirs
            self.apps.backfill_account_keys()

    # --- providers -------------------------------------------------------------------------------

    def provider(self, name: str) -> ProviderHooks:
        return self.plugins.provider(name)

    def provider_info(self, name: str) -> ProviderInfo:
        info: ProviderInfo = self.provider(name).provider_info()
        return info

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
        for label, value in (("tenant_id", tenant_id), ("environment_id", environment_id)):
            problem = segment_error(value)  # the one rule the webhook dispatcher routes by
            if problem:
                raise ConfigurationError(f"{label} {problem}, got {value!r}"[:300])
        if not name or not str(name).strip():
            raise ConfigurationError("name must be a non-empty string")
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
                    account_key=self.apps.account_key(provider, settings),
                    secrets=self.keys.encrypt(secret_values),
                    status=status,
                    invoices_outbound=sync.invoices_outbound,
                    customers_inbound=sync.customers_inbound,
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
                stored_secrets = self.keys.decrypt(row.secrets)
                merged = {k: v for k, v in {**stored_settings, **stored_secrets}.items() if k in declared}
                merged.update(values)
                settings, secret_values = self._split_values(current.provider, info, merged, require_all=True)
                changes["settings"] = {**stored_settings, **settings}
                changes["account_key"] = self.apps.account_key(current.provider, changes["settings"])
                changes["secrets"] = self.keys.encrypt({**stored_secrets, **secret_values})
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
        row = db.execute(lock_rows(db, sa.select(connections).where(connections.c.id == connection_id))).first()
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

    def set_status(
        self,
        connection_id: str,
        status: ConnectionStatus,
        reason: str | None = None,
        *,
        db: sa.Connection | None = None,
    ) -> None:
        """Change a connection's status, with its audit row; in ``db``'s transaction when given."""
        if db is None:
            with self.engine.begin() as own:
                self.set_status(connection_id, status, reason, db=own)
            return
        values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
        if reason:
            values.update(last_error=reason, last_error_at=utcnow())
        db.execute(connections.update().where(connections.c.id == connection_id).values(**values))
        audit.record(db, "connection", connection_id, f"status:{status}", reason, connection_id=connection_id)

    def disable(self, connection_id: str) -> None:
        self.get_connection(connection_id)
        self.set_status(connection_id, ConnectionStatus.DISABLED)

    def enable(self, connection_id: str) -> ConnectionStatus:
        """Re-enable a connection. An OAuth connection is checked with the provider first: it becomes
        active only if its grant still works, else it waits for (re-)authorization. Returns the status."""
        conn = self.get_connection(connection_id)
        status = ConnectionStatus.ACTIVE
        reason = None
        if self.provider_info(conn.provider).oauth:
            try:
                self.provider(conn.provider).connect(ctx=self.context(conn))
            except AuthError as exc:
                status, reason = ConnectionStatus.NEEDS_REAUTH, f"re-authorize: {exc}"
            except IntegrationError as exc:
                raise ConfigurationError(f"connection check failed, still disabled: {exc}") from exc
        self.set_status(connection_id, status, reason)
        if status == ConnectionStatus.ACTIVE:
            resume_paused(self, connection_id)
        return status

    def disconnect(self, connection_id: str) -> None:
        """Revoke the grant at the provider (its ``disconnect`` hook) and wait for a new authorization.
        Queued work is kept: it resumes when the connection is authorized again."""
        conn = self.get_connection(connection_id)
        info = self.provider_info(conn.provider)
        self.provider(conn.provider).disconnect(ctx=self.context(conn))
        status = ConnectionStatus.PENDING_AUTH if info.oauth else ConnectionStatus.DISABLED
        self.set_status(connection_id, status, "disconnected by an operator")

    # --- provider context ------------------------------------------------------------------------

    def _load_secrets(self, connection_id: str) -> dict[str, str]:
        with self.engine.connect() as db:
            token = db.execute(
                sa.select(connections.c.secrets).where(connections.c.id == connection_id)
            ).scalar_one_or_none()
        return self.keys.decrypt(token)

    def _save_secrets(self, connection_id: str, changes: dict[str, str | None]) -> dict[str, str]:
        """Merge ``changes`` (``None`` removes a key) into the stored secrets under the row lock (bug 7)."""
        with self.engine.begin() as db:
            row = self._lock_row(db, connection_id)
            merged = {**self.keys.decrypt(row.secrets), **changes}
            values = {k: v for k, v in merged.items() if v is not None}
            db.execute(
                connections.update()
                .where(connections.c.id == connection_id)
                .values(secrets=self.keys.encrypt(values), updated_at=utcnow())
            )
        return values

    def _save_settings(self, connection_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self.engine.begin() as db:
            row = self._lock_row(db, connection_id)
            values = {**(row.settings or {}), **changes}
            db.execute(
                connections.update()
                .where(connections.c.id == connection_id)
                .values(settings=values, account_key=self.apps.account_key(row.provider, values), updated_at=utcnow())
            )
        return values

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
            return self.context_from_row(row)
        return self._context(connection, self._load_secrets(connection.id))

    def context_from_row(self, row: Any, app: tuple[dict[str, Any], dict[str, str]] | None = None
                         ) -> ProviderContext:
        """The context of a ``connections`` row already read (its secrets decrypted here); ``app``: the
        provider-level settings and decrypted secrets when the caller read them too (else ``apps.load``)."""
        return self._context(_row_to_connection(row), self.keys.decrypt(row.secrets), app)

    def _context(self, connection: Connection, secret_values: dict[str, str],
                 app: tuple[dict[str, Any], dict[str, str]] | None = None) -> ProviderContext:
        cid = connection.id
        # the provider-level fallbacks
        app_settings, app_secrets = self.apps.load(connection.provider) if app is None else app
        secrets = Secrets(
            secret_values,
            save=lambda values: self._save_secrets(cid, values),
            load=lambda: self._load_secrets(cid),
            fallback=app_secrets,
        )
        return ProviderContext(
            connection,
            secrets,
            defaults=app_settings,
            save_settings=lambda values: self._save_settings(cid, values),
            process_lock=self._advisory_lock if is_postgres(self.engine) else None,
            mappings=mapping.provider_mappings(self.engine, cid),
        )

    def check_connection(self, connection_id: str) -> ConnectResult:
        """Ask the provider to verify the connection (``connect`` hook) and return what it found."""
        conn = self.get_connection(connection_id)
        result: ConnectResult = self.provider(conn.provider).connect(ctx=self.context(conn))
        return result

    # --- OAuth (integration_core.authorization) ---------------------------------------------------

    def start_authorization(self, connection_id: str, redirect_uri: str) -> str:
        """The URL to send the account owner to. A single-use ``state`` ties the callback to this connection."""
        return authorization.start(self, connection_id, redirect_uri)

    def complete_authorization(self, state: str, code: str, params: Mapping[str, str] | None = None) -> Connection:
        """Finish the flow started by :meth:`start_authorization`; the connection becomes active."""
        return authorization.complete(self, state, code, params)

    def handle_oauth_callback(self, query: Query) -> WebhookResponse:
        """The OAuth callback in any web framework: ``query`` as received; answer the page returned."""
        return self.entry.oauth_callback(query)

    # --- keys ------------------------------------------------------------------------------------

    def rotate_secrets(self) -> int:
        """Re-encrypt every stored secret (connections and providers) under the first key; rows rewritten."""
        return apps.rotate_secrets(self)

    def secrets_readable_by_primary_key(self) -> bool:
        return apps.secrets_readable_by_primary_key(self)

    # --- outbound / inbound (implemented in their own modules) -------------------------------------

    def submit_invoice(self, tenant_id: str, environment_id: str, invoice: Invoice) -> SubmitResult:
        """Queue ``invoice`` for every connection of the tenant/environment with outbound sync on.

        Idempotent: a resubmission never creates a second task; a changed snapshot replaces a pending one.
        """
        return submit_invoice(self, tenant_id, environment_id, invoice)

    def submit_payment(self, tenant_id: str, environment_id: str, payment: Payment) -> SubmitResult:
        """Queue ``payment`` (idempotent on ``payment.id``); it is pushed once, after its invoice."""
        return submit_payment(self, tenant_id, environment_id, payment)

    def submit_void(self, tenant_id: str, environment_id: str, invoice_id: str) -> SubmitResult:
        """Queue the void of invoice ``invoice_id``'s remote invoice: once, after any pending push of it."""
        return submit_void(self, tenant_id, environment_id, invoice_id)

    def handle_webhook(self, provider: str, tenant_id: str | None = None, environment_id: str | None = None, *,
                       method: str = "POST", headers: Headers = (), query: Query = "", body: Body = b""
                       ) -> WebhookResponse:
        """One webhook from any web framework, ``body`` raw as received (bytes, a stream, ``read(limit)``):
        verify, parse, store, apply (``webhook_entry.py``). Never raises: answer what it returns."""
        return self.entry.handle(provider, tenant_id, environment_id, method=method, headers=headers, query=query,
                                 body=body)
