"""Database errors reach the operator as one clear line, never a traceback, statement or parameter
(issue 12, bug 5); the CLI creates a database only on ``db upgrade`` (bug 10)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from integration_core.cli import main
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.server import running

from .test_inbound_support import ledger_connection


def run(url: str, key_file: Path, *args: str) -> tuple[int, str]:
    env = {"IC_DATABASE_URL": url, "IC_KEY_FILE": str(key_file), "IC_SECRET_API_KEY": "key-a",
           "IC_SECRET_WEBHOOK_SECRET": "whsecabcdefxyz"}
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def assert_one_clear_line(code: int, output: str, *expected: str) -> None:
    assert code == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for word in ("Traceback", "SELECT", "INSERT", "[SQL", "parameters", "secretpw", "sqlalche.me"):
        assert word not in output, output
    for word in expected:
        assert word in output, output


def test_corrupt_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "ic.sqlite3"
    path.write_bytes(b"this is not a database at all" * 200)
    assert_one_clear_line(*run(f"sqlite:///{path}", tmp_path / "k", "status"), "database", "not a database")


def test_missing_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nowhere' / 'ic.sqlite3'}"
    assert_one_clear_line(*run(url, tmp_path / "k", "db", "upgrade"), "database")


def test_bad_url(tmp_path: Path) -> None:
    assert_one_clear_line(*run("postgresq://ic:secretpw@db/x", tmp_path / "k", "status"), "IC_DATABASE_URL")
    assert_one_clear_line(*run("not a url at all secretpw", tmp_path / "k", "status"), "IC_DATABASE_URL")


def test_unreachable_pg_server(tmp_path: Path) -> None:
    url = "postgresql://ic:secretpw@127.0.0.1:1/integration_core?connect_timeout=2"
    assert_one_clear_line(*run(url, tmp_path / "k", "status"), "database")


def test_read_only_sqlite_file(config: Config, tmp_path: Path) -> None:
    if not config.database_url.startswith("sqlite"):
        pytest.skip("a SQLite file")
    Hub(config).engine.dispose()
    path = config.database_url.removeprefix("sqlite:///")
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    code, output = run(url, Path(config.key_file), "connections", "add", "--tenant", "t", "--environment", "e",
                       "--provider", "ledger", "--name", "n", "--set", "account=a")
    assert_one_clear_line(code, output, "database", "readonly")


def test_the_cli_does_not_create_a_database_except_db_upgrade(tmp_path: Path) -> None:
    """Bug 10: a deleted database file came back empty at the next CLI call, silently."""
    path = tmp_path / "ic.sqlite3"
    code, output = run(f"sqlite:///{path}", tmp_path / "k", "status")
    assert_one_clear_line(code, output, "no database", "db upgrade")
    assert not path.exists()
    code, output = run(f"sqlite:///{path}", tmp_path / "k", "db", "upgrade")
    assert code == 0, output
    assert path.exists()
    code, output = run(f"sqlite:///{path}", tmp_path / "k", "status")
    assert code == 0, output


def test_status_warns_about_events_failed_for_want_of_a_host(config: Config, tmp_path: Path) -> None:
    if not config.database_url.startswith("sqlite"):
        pytest.skip("one engine is enough")
    hub = Hub(config)  # serving without a host application
    setup = ledger_connection(hub, "acme", "prod")
    body, headers = setup.book.pay(setup.secret, setup.remote_invoice)
    with running(hub) as srv:
        assert requests.post(srv.url + setup.path(), data=body, headers=headers, timeout=10).status_code == 503
    hub.engine.dispose()
    code, output = run(config.database_url, Path(config.key_file), "status")
    assert code == 0 and "1 inbound event(s) failed" in output and "no host application" in output
