"""The tables. Alembic migrations under ``migrations/`` create exactly this schema."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from ..actor import current_actor

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s_%(column_1_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every engine (SQLite stores them naive)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


connections = sa.Table(
    "connections",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(200), nullable=False),
    sa.Column("environment_id", sa.String(200), nullable=False),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False, default=dict),
    sa.Column("secrets", sa.Text, nullable=True),  # Fernet token of a JSON object; never clear text
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("invoices_outbound", sa.Boolean, nullable=False, default=True),
    sa.Column("customers_inbound", sa.Boolean, nullable=False, default=True),
    # Scheduling: the earliest due task of this connection, so a tick reads only connections with work.
    sa.Column("next_due_at", UTCDateTime, nullable=True, index=True),
    sa.Column("lease_owner", sa.String(100), nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    # The shared request budget (ratelimit.py): a sliding-window log of granted requests and the
    # in-flight slots, as JSON, so the limit holds across workers, processes and lease hand-overs.
    sa.Column("rate_state", sa.Text, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_error_at", UTCDateTime, nullable=True),
    sa.Column("last_success_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    # The remote account (a company id) a provider-level webhook names; set from the provider's account_key hook.
    sa.Column("account_key", sa.String(200), nullable=True),
    # Scheduled reconciliation: the provider's cursor after the last run, and when it ran.
    sa.Column("reconcile_cursor", sa.Text, nullable=True),
    sa.Column("reconciled_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("provider", "tenant_id", "environment_id"),
    sa.Index("ix_connections_tenant_env", "tenant_id", "environment_id"),  # submit_invoice's lookup
    sa.Index("ix_connections_account", "provider", "account_key"),  # provider-level webhook routing
)

# Provider-level (app) settings and secrets, e.g. an app's client id and webhook verifier token; connections of
# the provider fall back to them.
provider_configs = sa.Table(
    "provider_configs",
    metadata,
    sa.Column("provider", sa.String(100), primary_key=True),
    sa.Column("settings", sa.JSON, nullable=False, default=dict),
    sa.Column("secrets", sa.Text, nullable=True),  # Fernet token of a JSON object; never clear text
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)

# Events of a provider-level webhook for a remote account no connection has: acknowledged, kept as ignored.
unrouted_events = sa.Table(
    "unrouted_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("account_key", sa.String(200), nullable=False),
    sa.Column("dedupe_key", sa.String(300), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("deliveries", sa.Integer, nullable=False, default=1),
    sa.Column("received_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("last_delivery_at", UTCDateTime, nullable=False, default=utcnow),
    # The request as received (credential-like headers left out), to replay once the account's connection
    # exists (``events unrouted replay``); NULL for rows of older versions. When it was last replayed.
    sa.Column("body", sa.LargeBinary, nullable=True),
    sa.Column("request", sa.JSON, nullable=True),
    sa.Column("replayed_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("provider", "dedupe_key", name="uq_unrouted_dedupe"),
    sa.Index("ix_unrouted_events_received_at", "received_at"),  # listing --since, purge --older-than
)

entity_mappings = sa.Table(
    "entity_mappings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection_id", sa.String(36), sa.ForeignKey("connections.id", ondelete="CASCADE"), nullable=False),
    sa.Column("entity_type", sa.String(40), nullable=False),
    sa.Column("local_id", sa.String(200), nullable=False),
    sa.Column("remote_id", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    # hash of the local data last sent to the remote record (customers: a change updates the contact)
    sa.Column("fingerprint", sa.String(64), nullable=True),
    sa.UniqueConstraint("connection_id", "entity_type", "local_id", name="uq_mapping_local"),
    sa.UniqueConstraint("connection_id", "entity_type", "remote_id", name="uq_mapping_remote"),
)

outbox_tasks = sa.Table(
    "outbox_tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection_id", sa.String(36), sa.ForeignKey("connections.id", ondelete="CASCADE"), nullable=False),
    sa.Column("entity_type", sa.String(40), nullable=False),
    sa.Column("local_id", sa.String(200), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("payload_hash", sa.String(64), nullable=False),
    # pending | in_flight | done | failed | dead | paused
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("submissions", sa.Integer, nullable=False, default=1),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("lease_owner", sa.String(100), nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("uncertain", sa.Boolean, nullable=False, default=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("remote_id", sa.String(200), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    sa.Column("completed_at", UTCDateTime, nullable=True),
    # The local invoice a payment or void task depends on (pushed after it); NULL for invoices.
    sa.Column("parent_id", sa.String(200), nullable=True),
    sa.UniqueConstraint("connection_id", "entity_type", "local_id", name="uq_outbox_entity"),
    sa.Index("ix_outbox_due", "connection_id", "status", "next_attempt_at"),
    sa.Index("ix_outbox_parent", "connection_id", "parent_id"),
)

inbox_events = sa.Table(
    "inbox_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("connection_id", sa.String(36), sa.ForeignKey("connections.id", ondelete="CASCADE"), nullable=False),
    sa.Column("dedupe_key", sa.String(300), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    # received | applied | ignored | failed
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("deliveries", sa.Integer, nullable=False, default=1),
    sa.Column("received_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("last_delivery_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("applied_at", UTCDateTime, nullable=True),
    # The remote invoice an invoice event is about: an event that arrived before its invoice was linked
    # is found again, and applied, when the link is made.
    sa.Column("remote_id", sa.String(200), nullable=True),
    sa.UniqueConstraint("connection_id", "dedupe_key", name="uq_inbox_dedupe"),
    sa.Index("ix_inbox_remote", "connection_id", "remote_id"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("connection_id", sa.String(36), nullable=True, index=True),
    sa.Column("subject", sa.String(20), nullable=False),  # connection | task | event
    sa.Column("subject_id", sa.String(200), nullable=True),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    # Who did it: an operator ("console:alice") while one acts (integration_core.actor), else NULL (the system).
    sa.Column("actor", sa.String(200), nullable=True, default=current_actor),
    sa.Index("ix_audit_subject", "subject", "subject_id"),
)

oauth_states = sa.Table(
    "oauth_states",
    metadata,
    sa.Column("state", sa.String(100), primary_key=True),
    sa.Column("connection_id", sa.String(36), sa.ForeignKey("connections.id", ondelete="CASCADE"), nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

console_operators = sa.Table(
    "console_operators",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),  # password | token
    sa.Column("secret_hash", sa.Text, nullable=True),  # scrypt; NULL once a one-time login was used
    sa.Column("tenant_id", sa.String(200), nullable=True),  # NULL: every tenant
    sa.Column("one_time", sa.Boolean, nullable=False, default=False),
    # Bumped when the secret changes: sessions signed for an older generation are refused.
    sa.Column("generation", sa.Integer, nullable=False, default=1),
    sa.Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    sa.Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
    sa.Column("last_login_at", UTCDateTime, nullable=True),
)
