"""Scale-out: several ``integration-core worker`` processes on one PostgreSQL database, pushing to the
Zoho Books emulator over HTTP (shared by all processes), and a worker killed with SIGKILL mid-push."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from integration_core import audit, mapping
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.models import TaskStatus
from integration_core.outbox import find_task
from integration_core.store.schema import outbox_tasks
from integration_core.testing import create_database, wait_until
from tests.workers.helpers import invoice, tasks
from tests.workers.zoho import by_reference, zoho_connection

pytest.importorskip("zoho_books")
pytestmark = pytest.mark.postgres

LEASE_SECONDS = 2.0


@pytest.fixture
def pg_hub(pg_admin_url: str, tmp_path: Path) -> Iterator[Hub]:
    config = Config(database_url=create_database(pg_admin_url), key_file=str(tmp_path / "ic.key"))
    hub = Hub(config)
    yield hub
    hub.engine.dispose()


class Workers:
    """``integration-core worker`` subprocesses with test-sized timings; stopped at teardown."""

    def __init__(self, hub: Hub, tmp_path: Path) -> None:
        self.hub = hub
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.update(
            IC_DATABASE_URL=self.hub.config.database_url,
            IC_KEY_FILE=self.hub.config.key_file,
            IC_SCHEDULER_INTERVAL="0.05",
            IC_OUTBOUND_LEASE_SECONDS=str(LEASE_SECONDS),
            IC_OUTBOUND_BATCH_SIZE="5",
            IC_OUTBOUND_MAX_CONNECTIONS="1",
            IC_OUTBOUND_BACKOFF_BASE="0.01",
            IC_OUTBOUND_BACKOFF_CAP="0.2",
            IC_OUTBOUND_PARK_SECONDS="0.5",
        )
        log = (self.tmp_path / f"worker-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "integration_core", "worker"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp_path,
        )
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("worker-*.log")))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(pg_hub: Hub, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(pg_hub, tmp_path)
    yield w
    w.stop()


def all_done(hub: Hub) -> bool:
    with hub.engine.connect() as db:
        left = db.execute(
            sa.select(sa.func.count()).select_from(outbox_tasks).where(outbox_tasks.c.status != TaskStatus.DONE)
        ).scalar_one()
    return left == 0


def test_three_worker_processes_push_each_invoice_exactly_once(
    pg_hub: Hub, workers: Workers, zoho_emulator: Any
) -> None:
    hub = pg_hub
    orgs = {}
    for tenant in ("a", "b", "c", "d"):
        conn, org = zoho_connection(hub, zoho_emulator, tenant=tenant, rate_limit_per_minute="100000")
        orgs[tenant] = (conn, org)
    # latency and a storm of failures, some after the write was committed (lost responses)
    zoho_emulator.random_faults({"error": 0.04, "lost": 0.04, "error_after_commit": 0.03}, seed=11,
                                latency=(0.002, 0.02))
    per_tenant = 25
    for i in range(per_tenant):
        for tenant in orgs:
            hub.submit_invoice(tenant, "prod", invoice(f"{tenant}{i}", customer=f"{tenant}{i % 3}"))
    for _ in range(3):
        workers.start()
    for i in range(0, per_tenant, 4):  # resubmissions while the workers run
        hub.submit_invoice("a", "prod", invoice(f"a{i}", customer=f"a{i % 3}"))
    assert wait_until(lambda: all_done(hub), timeout=60, interval=0.1), workers.logs()[-3000:]
    zoho_emulator.random_faults(None)
    with hub.engine.connect() as db:
        for tenant, (conn, org) in orgs.items():
            refs = by_reference(zoho_emulator, org)
            assert len(refs) == per_tenant, (tenant, refs)
            assert set(refs.values()) == {1}, (tenant, refs)  # exactly one remote invoice per local invoice
            for row in tasks(hub, conn.id):
                assert mapping.remote_id(db, conn.id, "invoice", row.local_id) == row.remote_id
        in_flight = db.execute(
            sa.select(sa.text("detail")).select_from(sa.text("audit_log")).where(sa.text("action = 'in_flight'"))
        ).scalars().all()
    workers_seen = {detail.split(" by ", 1)[1].split(";")[0] for detail in in_flight}
    assert len(workers_seen) >= 2, workers_seen  # the work really was shared
    assert all(p.poll() is None for p in workers.procs)  # nobody crashed


def test_worker_killed_mid_push_loses_and_doubles_nothing(
    pg_hub: Hub, workers: Workers, zoho_emulator: Any
) -> None:
    hub = pg_hub
    conn, org = zoho_connection(hub, zoho_emulator)
    n = 6
    for i in range(n):
        hub.submit_invoice("t1", "prod", invoice(i, customer=1))
    zoho_emulator.set_latency(0.6)  # every request is slow: the kill lands during one
    victim = workers.start()

    def posting_second_invoice() -> bool:
        return zoho_emulator.request_count(org, "POST", "/invoices") >= 2

    assert wait_until(posting_second_invoice, timeout=30, interval=0.01), workers.logs()
    os.kill(victim.pid, signal.SIGKILL)  # the emulator still commits the invoice it is working on
    victim.wait()
    with hub.engine.connect() as db:
        stuck = db.execute(
            sa.select(outbox_tasks.c.local_id).where(outbox_tasks.c.status == TaskStatus.IN_FLIGHT)
        ).scalars().all()
    assert len(stuck) == 1, stuck
    zoho_emulator.set_latency(0)
    workers.start()
    assert wait_until(lambda: all_done(hub), timeout=30, interval=0.05), workers.logs()[-3000:]
    refs = by_reference(zoho_emulator, org)
    assert len(refs) == n and set(refs.values()) == {1}, refs
    task = find_task(hub, conn.id, stuck[0])
    assert task.uncertain and task.attempts == 2
    with hub.engine.connect() as db:
        history = audit.history(db, "task", task.id)
    assert any("abandoned (lease expired)" in (r.detail or "") for r in history)
    assert "adopted existing" in history[-1].detail  # found by reference, not created again
