"""Engines for SQLite (the embedded default) and PostgreSQL (scale-out), and schema upgrades."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
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
        return _sqlite_engine(url, **kwargs)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    engine = sa.create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_after_idle(engine, PING_AFTER_IDLE)
    return engine


PING_AFTER_IDLE = 5.0  # seconds a pooled PostgreSQL connection may rest before it is pinged at checkout
_IDLE_SINCE = "ic_idle_since"


def _ping_after_idle(engine: sa.Engine, seconds: float) -> None:
    """Ping a pooled connection at checkout only when it rested over ``seconds``; a dead one is replaced.

    The pool's ``pool_pre_ping`` pings on every checkout: a round trip per webhook or task, a sixth of a
    webhook's. Connections in steady use were just used; the ones a server restart, an idle timeout or a
    firewall dropped are the rested ones. A connection lost while busy fails that one request, and SQLAlchemy
    then invalidates the pool's older connections (they reconnect at their next checkout)."""

    @sa.event.listens_for(engine, "checkin")
    def _rest(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"pooled connection dropped while idle ({exc.__class__.__name__})"
                                            ) from exc


def _sqlite_engine(url: str, **kwargs: Any) -> sa.Engine:
    connect_args = {"timeout": 30, "check_same_thread": False, "factory": _SQLiteConnection}
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level so SQLAlchemy's BEGIN below is the only transaction start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints run after the write lock is let go (``_SQLiteConnection.commit``), so they hold up no
        # writer; SQLite's own automatic one stays as a backstop for a very large transaction.
        cur.execute(f"PRAGMA wal_autocheckpoint={_BACKSTOP_PAGES}")
        cur.close()

    database = engine.url.database
    path = None if not database or database == ":memory:" or database.startswith("file:") else Path(database)
    writer = _writer_for(path)
    identity: list[tuple[int, int]] = []  # the file's (device, inode) when this engine first opened it

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        if path is not None:
            _check_identity(path, identity)
        held = writer.acquire(_LOCK_TIMEOUT)
        dbapi_conn = conn.connection.dbapi_connection
        try:
            # BEGIN IMMEDIATE takes the write lock up front: no deadlock-prone lock upgrades between threads.
            # Sent by the driver itself: SQLAlchemy's statement machinery would run while every writer waits.
            dbapi_conn.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            writer.release(held)
            raise sa.exc.DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error) from exc
        except BaseException:
            writer.release(held)
            raise
        if isinstance(dbapi_conn, _SQLiteConnection):
            dbapi_conn.held = (writer, held)
        else:  # pragma: no cover: another driver connection class; let go as its COMMIT starts
            conn.info[_WRITER] = held

    @sa.event.listens_for(engine, "commit")
    @sa.event.listens_for(engine, "rollback")
    def _end(conn: sa.Connection) -> None:
        if _WRITER in conn.info:  # pragma: no cover: see above
            writer.release(conn.info.pop(_WRITER))

    return engine


class _WriterLock:
    """The write lock of one SQLite file for this process, taken before ``BEGIN IMMEDIATE``.

    SQLite has one writer, and every transaction here takes the write lock. Threads of this process queue
    for it on a ``threading.Lock`` (woken at once), and processes on an ``flock`` of ``<database>-lock``
    (woken by the kernel when the holder lets go), rather than in SQLite's busy handler, which sleeps 1, 2,
    5, … up to 100 ms between tries and so lets a waiter in another process sleep through many turns.
    The file lock only orders the waiters: SQLite's own lock still guards the data (a process without it,
    e.g. the ``sqlite3`` shell, meets the busy handler as before). Waits fail after 30 s, as before.
    """

    def __init__(self, lock_file: Path | None) -> None:
        self.threads = threading.Lock()
        self.lock_file = lock_file
        self.commits = 0

    def due_for_checkpoint(self) -> bool:
        """Every ``CHECKPOINT_EVERY``-th commit of this file in this process (called holding the lock)."""
        self.commits += 1
        return self.commits % CHECKPOINT_EVERY == 0

    def acquire(self, timeout: float) -> int | None:
        """Take the lock; the file descriptor holding the ``flock`` (``None`` without a lock file)."""
        if not self.threads.acquire(timeout=timeout):
            locked = sqlite3.OperationalError(f"database is locked ({timeout:g} s waiting for another thread)")
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, locked)
        if self.lock_file is None:
            return None
        try:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return None  # e.g. a read-only directory: SQLite's busy handler alone orders the processes
        try:
            if _flock(fd, timeout):
                return fd
        except BaseException:
            self.release(fd)
            raise
        self.release(fd)
        locked = sqlite3.OperationalError(f"database is locked ({timeout:g} s waiting for another process)")
        raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, locked)

    def release(self, fd: int | None) -> None:
        if fd is not None:
            os.close(fd)  # the flock goes with the last descriptor of its open file
        self.threads.release()


def _flock(fd: int, timeout: float) -> bool:
    """``flock(fd, LOCK_EX)`` waiting at most ``timeout`` seconds (blocked in the kernel, not polling)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    # A blocking flock cannot time out, so a helper thread blocks on a duplicate of the descriptor (the same
    # open file, the same lock). Given up on, it takes the lock later and drops it at once with its duplicate.
    dup = os.dup(fd)
    got = threading.Event()

    def wait() -> None:
        try:
            fcntl.flock(dup, fcntl.LOCK_EX)
            got.set()
        finally:
            os.close(dup)

    threading.Thread(target=wait, name="ic-sqlite-writer", daemon=True).start()
    return got.wait(timeout)


CHECKPOINT_EVERY = 150  # commits; a webhook writes ~7 WAL pages, so about SQLite's default of every 1,000 pages
_BACKSTOP_PAGES = 10_000
_WRITERS: dict[str, _WriterLock] = {}
_WRITERS_LOCK = threading.Lock()
_LOCK_TIMEOUT = 30.0


def _writer_for(path: Path | None) -> _WriterLock:
    """One write lock per database file and process, shared by every engine on it (an in-memory or URI
    database gets its own, without a lock file)."""
    if path is None:
        return _WriterLock(None)
    key = os.path.abspath(path)
    with _WRITERS_LOCK:
        writer = _WRITERS.get(key)
        if writer is None:
            writer = _WRITERS[key] = _WriterLock(Path(key + "-lock"))
        return writer


class _SQLiteConnection(sqlite3.Connection):
    """The driver connection: lets go of the write lock once its ``COMMIT`` or ``ROLLBACK`` is done (not
    before, or the next writer would find SQLite's lock still held and sleep in the busy handler)."""

    held: tuple[_WriterLock, int | None] | None = None

    def commit(self) -> None:
        super().commit()
        due = self.held is not None and self.held[0].due_for_checkpoint()
        self._let_go()
        if due:
            try:
                # PASSIVE: copies what no reader still needs, waits for nobody, never in the busy handler.
                self.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
            except sqlite3.Error:  # a checkpoint is housekeeping: the next one catches up
                pass

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._let_go()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._let_go()

    def _let_go(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            held[0].release(held[1])


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


def lock_rows(db: sa.Engine | sa.Connection, query: SelectT, *, skip_locked: bool = False,
              shared: bool = False) -> SelectT:
    """``query`` with ``FOR UPDATE`` on PostgreSQL (optionally ``SKIP LOCKED``; ``shared``: ``FOR SHARE``,
    which waits only for writers of the rows). On SQLite every write transaction starts with ``BEGIN
    IMMEDIATE`` and so already holds the one database lock."""
    if is_postgres(db):
        return query.with_for_update(read=shared, skip_locked=skip_locked)
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
