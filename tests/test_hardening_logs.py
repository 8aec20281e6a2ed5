"""A failure that repeats on every tick (a full disk, a read-only file) is logged once with its traceback,
then as a count, not as a traceback twice a second (issue 12, rough edges)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.redact import RepeatedErrors
from integration_core.scheduler import Worker
from tests.workers.helpers import add_connection, invoice


def test_a_worker_on_a_database_it_cannot_write_logs_one_traceback(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ic.sqlite3"
    writable = Hub(Config(database_url=f"sqlite:///{path}", key_file=str(tmp_path / "ic.key")))
    add_connection(writable)
    writable.submit_invoice("t1", "prod", invoice(1))  # due work: every tick tries to claim it
    writable.engine.dispose()
    # the same file, opened read-only: every write transaction fails, as on a full disk
    config = Config(database_url=f"sqlite:///file:{path}?mode=ro&uri=true", key_file=str(tmp_path / "ic.key"))
    hub = Hub(config, auto_upgrade=False)
    worker = Worker(hub, interval=0.05)
    worker._errors.every = 0.5
    with caplog.at_level(logging.ERROR, logger="integration_core.scheduler"):
        worker.start()
        time.sleep(2.0)
        worker.stop()
    records = [r for r in caplog.records if r.name == "integration_core.scheduler"]
    tracebacks = [r for r in records if r.exc_info]
    counts = [r for r in records if "again" in r.getMessage()]
    assert len(tracebacks) == 1, [r.getMessage() for r in records]
    assert counts and all("readonly" in r.getMessage() for r in counts)
    assert len(records) <= 1 + 2.0 / 0.5 + 1  # not one per tick (about 40 ticks ran)
    hub.engine.dispose()


def test_recovery_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.repeated")
    errors = RepeatedErrors(log, "thing failed", every=3600)
    with caplog.at_level(logging.WARNING, logger="test.repeated"):
        for _ in range(5):
            errors.failed(OSError(28, "No space left on device"))
        errors.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["thing failed", "thing failed: recovered (4 repeat(s) since the last report)"]
