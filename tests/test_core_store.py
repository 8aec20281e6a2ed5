"""The core's store, vault and mapping engine, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from integration_core import mapping
from integration_core.config import Config
from integration_core.errors import ConfigurationError, NotFoundError, UnknownProviderError
from integration_core.hub import Hub
from integration_core.models import ConnectionStatus, SyncSettings
from integration_core.store import connections, metadata
from integration_core.store.db import current_revision
from integration_core.store.schema import entity_mappings
from integration_core.vault import read_key_file, write_key_file

from .conftest import ledger_values


def add(hub: Hub, tenant: str = "t1", env: str = "prod", account: str = "acct", **kw) -> object:
    return hub.add_connection(tenant_id=tenant, environment_id=env, provider="ledger", name="Books",
                              values=ledger_values(account), **kw)


def test_migrations_create_exactly_the_declared_schema(hub: Hub) -> None:
    assert current_revision(hub.engine) == "0009"
    with hub.engine.connect() as db:
        assert compare_metadata(MigrationContext.configure(db), metadata) == []


def test_connection_roundtrip_keeps_secrets_out_of_settings(hub: Hub) -> None:
    conn = add(hub)
    assert conn.status == ConnectionStatus.ACTIVE
    assert conn.settings == {"account": "acct"}
    assert conn.sync == SyncSettings(True, True)
    ctx = hub.context(conn)
    assert ctx.secrets["api_key"] == "key-acct"
    assert "key-acct" not in repr(ctx) + repr(ctx.secrets) + repr(conn)
    assert hub.find_connection("ledger", "t1", "prod") == conn
    assert hub.find_connection("ledger", "t2", "prod") is None


def test_one_connection_per_provider_tenant_environment(hub: Hub) -> None:
    add(hub)
    with pytest.raises(ConfigurationError, match="already exists"):
        add(hub)
    add(hub, env="staging")  # another environment is another connection
    assert len(hub.list_connections(tenant_id="t1")) == 2


def test_bad_input_is_a_clear_error_and_writes_nothing(hub: Hub) -> None:
    with pytest.raises(UnknownProviderError, match=r"installed providers: .*ledger"):
        hub.add_connection(tenant_id="t", environment_id="e", provider="nope", name="x", values={})
    with pytest.raises(ConfigurationError, match="missing setting"):
        hub.add_connection(tenant_id="t", environment_id="e", provider="ledger", name="x", values={"account": "a"})
    with pytest.raises(ConfigurationError, match="unknown setting"):
        hub.add_connection(tenant_id="t", environment_id="e", provider="ledger", name="x",
                           values={**ledger_values("a"), "colour": "red"})
    with pytest.raises(ConfigurationError, match="webhook_secret"):
        hub.add_connection(tenant_id="t", environment_id="e", provider="ledger", name="x",
                           values={**ledger_values("a"), "webhook_secret": "short"})
    with pytest.raises(ConfigurationError, match="tenant_id"):
        hub.add_connection(tenant_id="a/b", environment_id="e", provider="ledger", name="x", values=ledger_values("a"))
    assert hub.list_connections() == []
    with pytest.raises(NotFoundError):
        hub.get_connection("missing")


def test_update_secret_and_sync_settings(hub: Hub) -> None:
    conn = add(hub)
    hub.update_connection(conn.id, values={"webhook_secret": "a-new-secret-value"},
                          sync=SyncSettings(invoices_outbound=False, customers_inbound=True))
    assert hub.context(conn.id).secrets["webhook_secret"] == "a-new-secret-value"
    assert hub.context(conn.id).secrets["api_key"] == "key-acct"  # untouched secrets survive
    assert hub.get_connection(conn.id).sync.invoices_outbound is False


def test_provider_context_persists_secret_and_setting_writes(hub: Hub) -> None:
    conn = add(hub)
    ctx = hub.context(conn)
    ctx.secrets.update(access_token="tok-123")
    ctx.update_settings(api_domain="http://127.0.0.1:1")
    fresh = hub.context(conn.id)
    assert fresh.secrets["access_token"] == "tok-123"
    assert fresh.settings["api_domain"] == "http://127.0.0.1:1"
    other = hub.context(conn.id)
    ctx.secrets.update(access_token="tok-456")
    other.secrets.reload()
    assert other.secrets["access_token"] == "tok-456"


def test_exclusive_section_serializes_threads(hub: Hub) -> None:
    ctx = hub.context(add(hub))
    inside, peak = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, peak
        with hub.context(ctx.id).exclusive("refresh"):
            with lock:
                inside += 1
                peak = max(peak, inside)
            threading.Event().wait(0.01)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 1


def test_link_new_inserts_in_one_statement_and_keeps_links_rules(hub: Hub) -> None:
    """The outbox's one-statement link (INSERT ... ON CONFLICT DO NOTHING): a new pair is linked, the same pair
    again is a no-op, and a conflicting pair in either direction raises like mapping.link."""
    cid = add(hub).id
    with hub.engine.begin() as db:
        mapping.link_new(db, cid, "invoice", "L1", "R1")
        mapping.link_new(db, cid, "invoice", "L1", "R1")  # same pair: idempotent
    with hub.engine.begin() as db, pytest.raises(mapping.MappingConflict):
        mapping.link_new(db, cid, "invoice", "L1", "R2")
    with hub.engine.begin() as db, pytest.raises(mapping.MappingConflict):
        mapping.link_new(db, cid, "invoice", "L2", "R1")
    with hub.engine.connect() as db:
        assert mapping.remote_id(db, cid, "invoice", "L1") == "R1"
        assert mapping.remote_id(db, cid, "invoice", "L2") is None
        rows = db.execute(sa.select(sa.func.count()).select_from(entity_mappings)
                          .where(entity_mappings.c.connection_id == cid)).scalar()
    assert rows == 1


def test_mapping_is_unique_both_ways(hub: Hub) -> None:
    cid = add(hub).id
    other = add(hub, tenant="t2").id
    with hub.engine.begin() as db:
        mapping.link(db, cid, "invoice", "L1", "R1")
        mapping.link(db, cid, "invoice", "L1", "R1")  # same pair: idempotent
        mapping.link(db, cid, "customer", "L1", "R1")  # another entity type is another namespace
        mapping.link(db, other, "invoice", "L1", "R1")  # another connection too
    with hub.engine.begin() as db, pytest.raises(mapping.MappingConflict):
        mapping.link(db, cid, "invoice", "L1", "R2")
    with hub.engine.begin() as db, pytest.raises(mapping.MappingConflict):
        mapping.link(db, cid, "invoice", "L2", "R1")
    with hub.engine.connect() as db:
        assert mapping.remote_id(db, cid, "invoice", "L1") == "R1"
        assert mapping.local_id(db, cid, "invoice", "R1") == "L1"
        assert mapping.remote_id(db, cid, "invoice", "L2") is None
    # The database itself refuses a second mapping of the same local id, whatever code writes it.
    from integration_core.store import entity_mappings
    from integration_core.store.schema import utcnow

    with pytest.raises(sa.exc.IntegrityError), hub.engine.begin() as db:
        db.execute(entity_mappings.insert().values(connection_id=cid, entity_type="invoice", local_id="L1",
                                                   remote_id="R9", created_at=utcnow()))


def test_concurrent_links_of_one_local_id_leave_one_mapping(hub: Hub) -> None:
    cid = add(hub).id
    outcomes: list[str] = []

    def link(remote: str) -> None:
        try:
            with hub.engine.begin() as db:
                mapping.link(db, cid, "invoice", "L", remote)
            outcomes.append("ok")
        except (mapping.MappingConflict, sa.exc.OperationalError, sa.exc.IntegrityError):
            outcomes.append("refused")

    threads = [threading.Thread(target=link, args=(f"R{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1
    with hub.engine.connect() as db:
        assert db.execute(sa.text("SELECT count(*) FROM entity_mappings")).scalar() == 1


def test_key_rotation_keeps_every_secret_and_the_old_key_can_be_dropped(config: Config, tmp_path: Path) -> None:
    hub = Hub(config)
    ids = [add(hub, tenant=f"t{i}", account=f"a{i}").id for i in range(5)]
    old_keys = read_key_file(config.key_file)
    from integration_core.vault import generate_key

    write_key_file(config.key_file, [generate_key(), *old_keys])
    rotated = Hub(config)
    assert not rotated.secrets_readable_by_primary_key()
    assert rotated.rotate_secrets() == 5
    assert rotated.secrets_readable_by_primary_key()
    write_key_file(config.key_file, read_key_file(config.key_file)[:1])  # drop the old key
    pruned = Hub(config)
    for i, cid in enumerate(ids):
        assert pruned.context(cid).secrets["api_key"] == f"key-a{i}"
    # And the old key alone can no longer read anything.
    write_key_file(config.key_file, old_keys)
    with pytest.raises(ConfigurationError, match="cannot be decrypted"):
        Hub(config).context(ids[0])


def test_database_holds_no_secret_in_clear(tmp_path: Path) -> None:
    db_file = tmp_path / "ic.sqlite3"
    hub = Hub(Config(database_url=f"sqlite:///{db_file}", key_file=str(tmp_path / "k")))
    conn = hub.add_connection(tenant_id="t", environment_id="e", provider="ledger", name="n",
                              values={"account": "a", "api_key": "SUPERSECRETAPIKEY", "webhook_secret": "WHSECRET999"})
    hub.context(conn).secrets.update(access_token="ACCESSTOKEN42")
    hub.engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("ic.sqlite3*"))
    for secret in (b"SUPERSECRETAPIKEY", b"WHSECRET999", b"ACCESSTOKEN42"):
        assert secret not in raw
    with sa.create_engine(f"sqlite:///{db_file}").connect() as db:
        stored = db.execute(sa.select(connections.c.secrets)).scalar_one()
    assert stored.startswith("gAAAA")  # a Fernet token


def test_key_file_is_created_private(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key_file = tmp_path / "integration-core.key"
    Hub(Config(database_url=f"sqlite:///{tmp_path / 'x.db'}", key_file=str(key_file)))
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "generated a new encryption key" in caplog.text
    assert read_key_file(key_file)[0] not in caplog.text


def test_upgrade_from_the_first_revision_keeps_data(database_url: str) -> None:
    """A database created at 0001 upgrades in place to the current schema without losing rows."""
    from integration_core.store import create_engine_for, upgrade

    engine = create_engine_for(database_url)
    upgrade(engine, "0001")
    with engine.begin() as db:
        db.execute(sa.text(
            "INSERT INTO connections (id, tenant_id, environment_id, provider, name, settings, status, "
            "invoices_outbound, customers_inbound, rate_window_count, created_at, updated_at) VALUES "
            "('c1', 't', 'e', 'ledger', 'n', '{}', 'active', true, true, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ))
    upgrade(engine)
    assert current_revision(engine) == "0009"
    with engine.connect() as db:
        assert db.execute(sa.text("SELECT count(*) FROM connections")).scalar() == 1
        assert compare_metadata(MigrationContext.configure(db), metadata) == []
    engine.dispose()
