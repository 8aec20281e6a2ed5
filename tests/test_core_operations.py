"""Operator-facing safety of the core: keys, configuration, enable/disconnect, concurrent migrations."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from integration_core.config import Config
from integration_core.errors import ConfigurationError
from integration_core.hub import Hub
from integration_core.store import create_engine_for, upgrade
from integration_core.store.db import current_revision
from integration_core.vault import Vault, generate_key, read_key_file, write_key_file

from .conftest import ledger_values


def _add(hub: Hub, tenant: str = "t") -> str:
    return hub.add_connection(tenant_id=tenant, environment_id="e", provider="ledger", name="n",
                              values=ledger_values("a" + tenant)).id


def test_missing_key_file_beside_secrets_is_refused_not_regenerated(tmp_path: Path) -> None:
    cfg = Config(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", key_file=str(tmp_path / "k"))
    _add(Hub(cfg))
    moved = Config(database_url=cfg.database_url, key_file=str(tmp_path / "elsewhere.key"))
    with pytest.raises(ConfigurationError, match="holds encrypted secrets"):
        Hub(moved)
    assert not (tmp_path / "elsewhere.key").exists()


def test_running_hub_follows_a_key_rotation_done_elsewhere(config: Config) -> None:
    worker = Hub(config)
    cid = _add(worker)
    write_key_file(config.key_file, [generate_key(), *read_key_file(config.key_file)])
    operator = Hub(config)
    assert operator.rotate_secrets() == 1
    write_key_file(config.key_file, read_key_file(config.key_file)[:1])  # old key dropped
    # The worker started with the old key only; it re-reads the key file instead of failing.
    assert worker.context(cid).secrets["api_key"] == "key-at"


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"IC_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "IC_KEY_FILE": str(tmp_path / "k"),
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "integration_core", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path)


def test_failed_rotation_leaves_the_key_file_unchanged(tmp_path: Path) -> None:
    cfg = Config(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", key_file=str(tmp_path / "k"))
    hub = Hub(cfg)
    _add(hub)
    cid = _add(hub, tenant="u")
    # One row written under a key nobody has any more: rotation must fail as a whole.
    foreign = Vault([generate_key()]).encrypt({"api_key": "x"})
    with hub.engine.begin() as db:
        db.execute(sa.text("UPDATE connections SET secrets = :s WHERE id = :i"), {"s": foreign, "i": cid})
    before = read_key_file(cfg.key_file)
    result = _cli(tmp_path, "keys", "rotate")
    assert result.returncode == 1
    assert "cannot be decrypted" in result.stderr and "Traceback" not in result.stderr
    assert read_key_file(cfg.key_file) == before


def test_rotate_then_prune_from_the_command_line(tmp_path: Path) -> None:
    assert _cli(tmp_path, "db", "upgrade").returncode == 0
    add = subprocess.run(
        [sys.executable, "-m", "integration_core", "connections", "add", "--tenant", "t", "--environment", "e",
         "--provider", "ledger", "--name", "n", "--set", "account=a", "--secrets-stdin"],
        input="api-key-1\nwebhooksecret1\n", capture_output=True, text=True, cwd=tmp_path,
        env={"IC_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "IC_KEY_FILE": str(tmp_path / "k"),
             "PATH": "/usr/bin:/bin"},
    )
    assert add.returncode == 0, add.stderr
    first = read_key_file(tmp_path / "k")
    assert "re-encrypted 1 connection" in _cli(tmp_path, "keys", "rotate").stdout
    assert len(read_key_file(tmp_path / "k")) == 2
    assert "dropped 1 old key" in _cli(tmp_path, "keys", "prune").stdout
    keys = read_key_file(tmp_path / "k")
    assert len(keys) == 1 and keys != first
    shown = _cli(tmp_path, "connections", "list")
    assert shown.returncode == 0 and "ledger" in shown.stdout


@pytest.mark.parametrize(("env", "message"), [
    ({"IC_SCHEDULER_INTERVAL": "soon"}, "IC_SCHEDULER_INTERVAL must be a number"),
    ({"IC_MAX_WEBHOOK_BYTES": "-5"}, "max_webhook_bytes must be a positive number"),
])
def test_bad_configuration_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Config.from_env(env)


def test_config_file_rejects_unknown_keys_and_keys_in_it(tmp_path: Path) -> None:
    path = tmp_path / "ic.toml"
    path.write_text('database_url = "sqlite:///x.db"\npublic_ulr = "http://typo"\n')
    with pytest.raises(ConfigurationError, match=r"unknown setting.*public_ulr"):
        Config.from_env({"IC_CONFIG": str(path)})
    path.write_text('keys = ["abc"]\n')
    with pytest.raises(ConfigurationError, match="do not belong in the config file"):
        Config.from_env({"IC_CONFIG": str(path)})
    path.write_text('public_url = "https://billing.example"\nscheduler_interval = 5\n')
    cfg = Config.from_env({"IC_CONFIG": str(path), "IC_SCHEDULER_INTERVAL": "7"})
    assert cfg.public_url == "https://billing.example" and cfg.scheduler_interval == 7.0


def test_cli_reports_configuration_errors_without_traceback(tmp_path: Path) -> None:
    env = {"IC_SCHEDULER_INTERVAL": "soon", "PATH": "/usr/bin:/bin", "IC_KEY_FILE": str(tmp_path / "k"),
           "IC_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = subprocess.run([sys.executable, "-m", "integration_core", "connections", "list"],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "IC_SCHEDULER_INTERVAL must be a number" in result.stderr and "Traceback" not in result.stderr


def test_disable_and_enable(hub: Hub) -> None:
    cid = _add(hub)
    hub.disable(cid)
    assert hub.get_connection(cid).status == "disabled"
    assert hub.enable(cid) == "active"


def test_concurrent_upgrades_on_one_database(database_url: str) -> None:
    """Several workers starting together on a fresh database migrate it once, without errors."""
    errors: list[BaseException] = []

    def run() -> None:
        engine = create_engine_for(database_url)
        try:
            upgrade(engine)
        except BaseException as exc:  # collect, assert below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert current_revision(create_engine_for(database_url)) == "0009"


def test_a_running_hub_writes_under_the_new_first_key_after_a_rotation(config: Config) -> None:
    worker = Hub(config)
    cid = _add(worker)
    new_key = generate_key()
    write_key_file(config.key_file, [new_key, *read_key_file(config.key_file)])
    worker.context(cid).secrets.update(access_token="fresh-token")  # written after the key file changed
    with worker.engine.connect() as db:
        token = db.execute(sa.text("SELECT secrets FROM connections WHERE id = :i"), {"i": cid}).scalar_one()
    assert Vault([new_key]).decrypt(token)["access_token"] == "fresh-token"
