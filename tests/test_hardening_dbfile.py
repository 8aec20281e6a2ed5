"""A SQLite file deleted or replaced under a running process is detected: the process stops with a clear
error instead of writing into an unlinked file (issue 12, bug 10)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from integration_core.config import Config
from integration_core.errors import DatabaseFileChanged
from integration_core.hub import Hub
from integration_core.testing import wait_until
from tests.workers.helpers import add_connection, invoice

ROOT = Path(__file__).resolve().parents[1]


def sqlite_config(tmp_path: Path) -> Config:
    return Config(database_url=f"sqlite:///{tmp_path / 'ic.sqlite3'}", key_file=str(tmp_path / "ic.key"),
                  public_url="http://127.0.0.1:9")


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_hub_refuses_to_write_after_its_file_changed(tmp_path: Path, how: str) -> None:
    hub = Hub(sqlite_config(tmp_path))
    add_connection(hub)
    path = tmp_path / "ic.sqlite3"
    if how == "deleted":
        path.unlink()
    else:
        shutil.copy(path, tmp_path / "copy.sqlite3")
        os.replace(tmp_path / "copy.sqlite3", path)
    with pytest.raises(DatabaseFileChanged, match=str(path)):
        hub.submit_invoice("t1", "prod", invoice(1))
    hub.engine.dispose()


def test_a_worker_whose_file_was_deleted_stops_with_a_clear_error(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    hub = Hub(config)
    add_connection(hub)
    hub.engine.dispose()
    env = dict(os.environ, IC_DATABASE_URL=config.database_url, IC_KEY_FILE=config.key_file,
               IC_SCHEDULER_INTERVAL="0.1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "integration-core"), "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: (tmp_path / "ic.sqlite3-wal").exists() or proc.poll() is not None, timeout=30)
        (tmp_path / "ic.sqlite3").unlink()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 1, err
    assert "was deleted or replaced" in err and "Traceback" not in err
    assert not (tmp_path / "ic.sqlite3").exists()  # nothing re-created it
