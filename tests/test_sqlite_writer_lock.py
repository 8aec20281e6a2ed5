"""SQLite writers queue on a file lock across processes (``store/db.py``), woken by the kernel when the holder
lets go, instead of sleeping in SQLite's busy handler; a wait still gives up after the timeout."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from integration_core.store import create_engine_for
from integration_core.store import db as store_db

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()  # hold until told
"""


def _holder(lock_file: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_file)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_writer_waits_for_another_process_and_starts_as_soon_as_it_lets_go(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'ic.sqlite3'}")
    with engine.begin() as db:
        db.execute(sa.text("CREATE TABLE t (n INTEGER)"))
    lock_file = Path(f"{tmp_path / 'ic.sqlite3'}-lock")
    assert lock_file.exists()  # the first write transaction created it next to the database
    holder = _holder(lock_file)
    done: list[bool] = []

    def write() -> None:
        with engine.begin() as db:
            db.execute(sa.text("INSERT INTO t VALUES (1)"))
        done.append(True)

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.5)
    assert not done  # blocked while the other process holds the lock (SQLite's own lock is free)
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    holder.wait(timeout=10)
    writer.join(timeout=10)
    assert done  # and it went on once the other process let go
    with engine.connect() as db:
        assert db.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 1
    engine.dispose()


def test_a_writer_gives_up_after_the_timeout_and_the_lock_stays_usable(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'ic.sqlite3'}")
    with engine.begin() as db:
        db.execute(sa.text("CREATE TABLE t (n INTEGER)"))
    holder = _holder(Path(f"{tmp_path / 'ic.sqlite3'}-lock"))
    monkeypatch.setattr(store_db, "_LOCK_TIMEOUT", 0.5)
    with pytest.raises(sa.exc.OperationalError, match="waiting for another process"), engine.begin() as db:
        db.execute(sa.text("INSERT INTO t VALUES (1)"))
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    holder.wait(timeout=10)
    for n in range(3):  # the given-up wait left nothing held: this process and its threads write again
        with engine.begin() as db:
            db.execute(sa.text("INSERT INTO t VALUES (:n)"), {"n": n})
    with engine.connect() as db:
        assert db.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 3
    engine.dispose()


def _wal_after_commits(path: Path, commits: int) -> int:
    engine = create_engine_for(f"sqlite:///{path}")
    with engine.begin() as db:
        db.execute(sa.text("CREATE TABLE t (n INTEGER, pad TEXT)"))
    for n in range(commits):
        with engine.begin() as db:
            db.execute(sa.text("INSERT INTO t VALUES (:n, :pad)"), {"n": n, "pad": "x" * 3000})
    size = Path(f"{path}-wal").stat().st_size
    engine.dispose()
    return size


def test_checkpoints_after_commits_keep_the_wal_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commits = 3 * store_db.CHECKPOINT_EVERY
    checkpointed = _wal_after_commits(tmp_path / "a.sqlite3", commits)
    monkeypatch.setattr(store_db, "CHECKPOINT_EVERY", 10**9)  # no checkpoint of ours: only SQLite's backstop
    unchecked = _wal_after_commits(tmp_path / "b.sqlite3", commits)
    page = 4096 + 24  # a WAL frame
    assert unchecked >= commits * page  # every commit's page stays in the WAL
    assert checkpointed <= 2 * store_db.CHECKPOINT_EVERY * 2 * page  # reused after each checkpoint
