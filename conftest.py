"""Shared pytest options and fixtures for the core's and the plugins' tests.

Every store test runs on SQLite and on a real PostgreSQL server. PostgreSQL comes from ``IC_TEST_PG_URL``
(an admin URL), or else a private cluster started from the installed Debian binaries for this run. With
neither, the PostgreSQL variants are skipped, unless ``IC_REQUIRE_PG=1`` (set by CI), which turns that into
a failure.

The fault-injecting test provider ``faulty`` (``tests/providers/faulty.py``) is not an entry point users
see: it is registered here through ``IC_PROVIDERS``, for this process and the worker processes tests start.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.plugins import EXTRA_PROVIDERS_ENV
from integration_core.testing import create_database, postgres_server

ROOT = Path(__file__).resolve().parent
os.environ.setdefault(EXTRA_PROVIDERS_ENV, "faulty=tests.providers.faulty")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = os.environ.get("IC_TEST_PG_URL")
    if url:
        yield url
        return
    try:
        with postgres_server() as started:
            yield started
            return
    except Exception as exc:  # any failure to start one means "no server here"
        if os.environ.get("IC_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL is required (IC_REQUIRE_PG=1) but could not be started: {exc}")
        pytest.skip(f"no PostgreSQL server available: {exc}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ic.sqlite3'}"
    return create_database(request.getfixturevalue("pg_admin_url"))


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> Config:
    return Config(database_url=database_url, key_file=str(tmp_path / "ic.key"), public_url="http://127.0.0.1:9")


@pytest.fixture
def hub(config: Config) -> Iterator[Hub]:
    h = Hub(config)
    yield h
    with contextlib.suppress(Exception):
        h.engine.dispose()
