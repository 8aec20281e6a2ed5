"""Engines for SQLite (the embedded default) and PostgreSQL (scale-out), and schema upgrades."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from ..errors import DatabaseFileChanged

MIGRATIONS = Path(__file__).with_name("migrations")
_WRITER = "ic_sqlite_writer"  # Connection.info key: this connection's transaction holds the process's write lock


def create_engine_for(url: str, **kwargs: Any) -> sa.Engine:
    """An engine with the settings each backend needs for concurrent workers."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Autocommit at the driver level so SQLAlchemy's BEGIN below is the only transaction start.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        # SQLite has one writer, and every transaction here takes the write lock. Threads of this process
        # queue for it on a lock of their own (woken at once) rather than in SQLite's busy handler, which
        # sleeps up to 100 ms between tries: only other processes meet the busy handler. A thread that opens
        # a second transaction while holding one fails after 30 s, as it did in the busy handler.
        writer = threading.Lock()
        database = engine.url.database
        path = None if not database or database == ":memory:" or database.startswith("file:") else Path(database)
        identity: list[tuple[int, int]] = []  # the file's (device, inode) when this engine first opened it

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            if path is not None:
                _check_identity(path, identity)
            if not writer.acquire(timeout=30):
                locked = sqlite3.OperationalError("database is locked (30 s waiting for another thread)")
                raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, locked)
            try:
                # BEGIN IMMEDIATE takes the write lock up front: no deadlock-prone lock upgrades between threads.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                writer.release()
                raise
            conn.info[_WRITER] = True

        @sa.event.listens_for(engine, "commit")
        @sa.event.listens_for(engine, "rollback")
        def _end(conn: sa.Connection) -> None:
            if conn.info.pop(_WRITER, False):
                writer.release()

        @sa.event.listens_for(engine, "checkin")
        def _checkin(_dbapi_conn: Any, record: Any) -> None:  # a connection dropped without commit or rollback
            if record.info.pop(_WRITER, False):
                writer.release()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return sa.create_engine(url, **kwargs)


def _check_identity(path: Path, identity: list[tuple[int, int]]) -> None:
    """The file must still be the one first opened: deleted or replaced, our writes would go into an unlinked
    inode (lost at exit) while every other process sees another database."""
    try:
        stat = os.stat(path)
        current: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
    except FileNotFoundError:
        current = None
    if not identity and current is not None:
        identity.append(current)
    elif current is None or current != identity[0]:
        raise DatabaseFileChanged(
            f"the database file {path.resolve()} was deleted or replaced while this process was using it; "
            "stopping (restore it, or re-create it with `integration-core db upgrade`)"
        )


def is_postgres(engine: sa.Engine | sa.Connection) -> bool:
    return engine.dialect.name == "postgresql"


SelectT = TypeVar("SelectT", bound=sa.Select[Any])


def lock_rows(db: sa.Engine | sa.Connection, query: SelectT, *, skip_locked: bool = False) -> SelectT:
    """``query`` with ``FOR UPDATE`` on PostgreSQL (optionally ``SKIP LOCKED``). On SQLite every write
    transaction starts with ``BEGIN IMMEDIATE`` and so already holds the one database lock."""
    if is_postgres(db):
        return query.with_for_update(skip_locked=skip_locked)
    return query


def alembic_config(engine: sa.Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


_UPGRADE_LOCK = threading.Lock()
MIGRATION_LOCK = 0x1C0DE  # PostgreSQL advisory lock id: workers starting together migrate one at a time


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent; safe to run on every start, from many processes)."""
    cfg = alembic_config(engine)
    # Alembic's context is process-global: one upgrade at a time per process. Across processes SQLite's
    # BEGIN IMMEDIATE (see create_engine_for) and PostgreSQL's advisory lock serialize them.
    with _UPGRADE_LOCK:
        if not is_postgres(engine):
            command.upgrade(cfg, revision)
            return
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
