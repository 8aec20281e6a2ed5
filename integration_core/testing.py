"""Fixtures and helpers for plugin authors and hosts (a pytest plugin, loaded through ``pytest11``).

* ``ic_database_url``: a fresh SQLite file per test.
* ``ic_hub``: a :class:`~integration_core.hub.Hub` on it, with a throwaway key file.
* :func:`postgres_server`: start a private PostgreSQL cluster from the Debian binaries for a test run.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .config import Config

if TYPE_CHECKING:
    from .hub import Hub


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1; yields an admin URL. Runs as ``postgres`` under root."""
    bindir = _pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries (initdb) not found; install Debian's postgresql")
    root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="ic-pg-"))
    data = base / "data"
    port = free_port()
    prefix: list[str] = ["runuser", "-u", "postgres", "--"] if root else []
    if root:
        shutil.chown(base, "postgres")
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                    "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"),
                    "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        # A suite leaves a few hundred databases (gigabytes of small files): removing them took 16-40 s at the
        # end of `make test`, so a detached `rm` does it while the caller goes on.
        subprocess.Popen(["rm", "-rf", "--", str(base)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)


def create_database(admin_url: str) -> str:
    """Create an empty database on the server of ``admin_url``; return its URL."""
    import sqlalchemy as sa

    from .store import create_engine_for

    name = "ic_" + uuid.uuid4().hex[:12]
    engine = create_engine_for(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def ic_database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'integration-core.sqlite3'}"


@pytest.fixture
def ic_config(ic_database_url: str, tmp_path: Path) -> Config:
    return Config(database_url=ic_database_url, key_file=str(tmp_path / "integration-core.key"))


@pytest.fixture
def ic_hub(ic_config: Config) -> Iterator[Hub]:
    from .hub import Hub

    hub = Hub(ic_config)
    yield hub
    hub.engine.dispose()


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true (for asserting on background work); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
