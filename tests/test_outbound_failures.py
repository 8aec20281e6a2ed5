"""Each failure class of a push, with the fault-injecting ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Iterator

import attrs
import pytest
import sqlalchemy as sa

from integration_core import audit, mapping
from integration_core.errors import TransientError
from integration_core.hookspecs import hookimpl
from integration_core.hub import Hub
from integration_core.models import ConnectionStatus, TaskStatus
from integration_core.outbox import Outbound, find_task, resume_paused, retry_failed, retry_task
from integration_core.providers import ledger as ledger_mod
from integration_core.redact import safe_error
from integration_core.store.schema import connections, outbox_tasks, utcnow
from integration_core.testing import wait_until
from tests.providers import faulty
from tests.workers.helpers import FAST, add_connection, drain, invoice, tasks


@pytest.fixture(autouse=True)
def _calm() -> Iterator[None]:
    yield
    faulty.calm()


def actions(hub: Hub, task_id: int) -> list[str]:
    with hub.engine.connect() as db:
        return [r.action for r in audit.history(db, "task", task_id)]


def test_transient_then_success_looks_up_before_retrying(hub: Hub) -> None:
    conn, account = add_connection(hub, "faulty")
    faulty.inject(account, "transient", op="push_invoice")
    hub.submit_invoice("t1", "prod", invoice(1))
    worker = Outbound(hub, "w", FAST)
    first = worker.tick()
    assert first.retrying == 1
    task = find_task(hub, conn.id, "inv-1")
    assert task.status == TaskStatus.PENDING and "injected transient" in task.last_error
    drain(hub, worker)
    task = find_task(hub, conn.id, "inv-1")
    assert task.status == TaskStatus.DONE and task.attempts == 2
    book = ledger_mod.ledger(account)
    assert len(book.invoices_by_reference("inv-1")) == 1
    assert book.calls["find_invoice"] == 1  # the second attempt looked first
    assert actions(hub, task.id) == ["queued", "in_flight", "retry", "in_flight", "done"]


def test_lost_response_is_adopted_not_duplicated(hub: Hub) -> None:
    conn, account = add_connection(hub, "faulty")
    faulty.inject(account, "lost", op="push_invoice")
    hub.submit_invoice("t1", "prod", invoice(1))
    drain(hub)
    book = ledger_mod.ledger(account)
    (remote,) = book.invoices_by_reference("inv-1")
    task = find_task(hub, conn.id, "inv-1")
    assert task.status == TaskStatus.DONE and task.remote_id == remote.id and task.uncertain
    with hub.engine.connect() as db:
        assert mapping.remote_id(db, conn.id, "invoice", "inv-1") == remote.id
        details = [r.detail for r in audit.history(db, "task", task.id)]
    assert any("adopted existing" in (d or "") for d in details)


def test_storm_of_faults_still_exactly_once(hub: Hub) -> None:
    _conn, account = add_connection(hub, "faulty")
    faulty.storm(account, seed=7, transient=0.15, lost=0.15, rate_limited=0.05)
    for i in range(40):
        hub.submit_invoice("t1", "prod", invoice(i, customer=i % 4))
    settings = attrs.evolve(FAST, max_attempts=30)
    worker = Outbound(hub, "w", settings)
    # rate-limited faults pause the connection 0.2 s: keep ticking until done
    for _ in range(400):
        worker.tick()
        if all(t.status == TaskStatus.DONE for t in tasks(hub)):
            break
        import time

        time.sleep(0.01)
    book = ledger_mod.ledger(account)
    for i in range(40):
        assert len(book.invoices_by_reference(f"inv-{i}")) == 1, i
    assert all(t.status == TaskStatus.DONE for t in tasks(hub))


def test_rate_limited_pushes_connection_due_time(hub: Hub) -> None:
    conn, account = add_connection(hub, "faulty")
    faulty.inject(account, "rate_limited", op="push_invoice")
    hub.submit_invoice("t1", "prod", invoice(1))
    hub.submit_invoice("t1", "prod", invoice(2))
    before = utcnow()
    stats = Outbound(hub, "w", FAST).tick()
    assert stats.rate_limited == 1 and stats.done == 0  # the batch stopped at the 429
    with hub.engine.connect() as db:
        due = db.execute(sa.select(connections.c.next_due_at).where(connections.c.id == conn.id)).scalar()
    assert due >= before + dt.timedelta(seconds=0.15)  # retry_after 0.2 s from the fault
    task = find_task(hub, conn.id, "inv-1")
    assert task.status == TaskStatus.PENDING and task.attempts == 0  # waiting for rate is not an attempt
    claimed = Outbound(hub, "w2", FAST).tick().claimed
    if utcnow() < due:  # the whole tick ran before the due time (a loaded machine may take longer): nothing claimed
        assert claimed == 0
    drain(hub)
    assert len(ledger_mod.ledger(account).invoices) == 2


def test_attempts_exhausted_becomes_dead_with_last_error(hub: Hub) -> None:
    conn, account = add_connection(hub, "faulty")
    faulty.inject(account, "transient", "transient", "transient", op="push_invoice")
    hub.submit_invoice("t1", "prod", invoice(1))
    settings = attrs.evolve(FAST, max_attempts=3)
    worker = Outbound(hub, "w", settings)
    drain(hub, worker)
    task = find_task(hub, conn.id, "inv-1")
    assert task.status == TaskStatus.DEAD and task.attempts == 3
    assert "injected transient failure in push_invoice" in task.last_error
    assert actions(hub, task.id)[-1] == "dead"
    assert ledger_mod.ledger(account).invoices == {}
    # operator retry: pending again, lookup first, pushed once
    retry_failed(hub, conn.id)
    drain(hub, worker)
    assert find_task(hub, conn.id, "inv-1").status == TaskStatus.DONE
    assert len(ledger_mod.ledger(account).invoices_by_reference("inv-1")) == 1


def test_auth_error_pauses_and_resumes(hub: Hub) -> None:
    conn, account = add_connection(hub, "faulty")
    faulty.inject(account, "auth", op="push_invoice")
    for i in range(3):
        hub.submit_invoice("t1", "prod", invoice(i))
    stats = Outbound(hub, "w", FAST).tick()
    assert stats.paused == 3
    assert hub.get_connection(conn.id).status == ConnectionStatus.NEEDS_REAUTH
    assert {t.status for t in tasks(hub)} == {TaskStatus.PAUSED}
    with hub.engine.connect() as db:
        last_error = db.execute(sa.select(connections.c.last_error).where(connections.c.id == conn.id)).scalar()
    assert "refresh token revoked" in last_error
    # submitted while it waits: queued paused, nothing pushed
    hub.submit_invoice("t1", "prod", invoice(3))
    assert find_task(hub, conn.id, "inv-3").status == TaskStatus.PAUSED
    worker = Outbound(hub, "w", FAST)
    for _ in range(3):
        worker.tick()
    assert ledger_mod.ledger(account).invoices == {}
    assert resume_paused(hub, conn.id) == 0  # not active yet: nothing resumes
    hub.set_status(conn.id, ConnectionStatus.ACTIVE)
    assert resume_paused(hub, conn.id) == 4
    drain(hub)
    book = ledger_mod.ledger(account)
    assert sorted(i.reference for i in book.invoices.values()) == ["inv-0", "inv-1", "inv-2", "inv-3"]
    task = find_task(hub, conn.id, "inv-0")
    assert "paused" in actions(hub, task.id) and "resumed" in actions(hub, task.id)


def test_permanent_error_fails_then_operator_retry(hub: Hub) -> None:
    conn, account = add_connection(hub, "faulty")
    faulty.inject(account, "permanent", op="push_invoice")
    hub.submit_invoice("t1", "prod", invoice(1))
    hub.submit_invoice("t1", "prod", invoice(2))
    stats = Outbound(hub, "w", FAST).tick()
    assert stats.failed == 1 and stats.done == 1  # a data error does not stop the batch
    task = find_task(hub, conn.id, "inv-1")
    assert task.status == TaskStatus.FAILED and task.last_error == "injected validation error in push_invoice"
    retried = retry_task(hub, task.id)
    assert retried.status == TaskStatus.PENDING and retried.attempts == 0 and retried.uncertain
    drain(hub)
    assert find_task(hub, conn.id, "inv-1").status == TaskStatus.DONE
    assert len(ledger_mod.ledger(account).invoices_by_reference("inv-1")) == 1


def test_currency_missing_is_permanent_with_provider_message(hub: Hub) -> None:
    conn, _ = add_connection(hub, "ledger")
    hub.submit_invoice("t1", "prod", invoice(1, currency="EUR"))
    drain_stats = Outbound(hub, "w", FAST).tick()
    assert drain_stats.failed == 1
    task = find_task(hub, conn.id, "inv-1")
    assert task.status == TaskStatus.FAILED and "currency EUR is not enabled" in task.last_error
    # the operator fixes the data (new snapshot): requeued and pushed
    result = hub.submit_invoice("t1", "prod", invoice(1, currency="USD"))
    assert result.for_connection(conn.id).outcome == "updated"
    drain(hub)
    assert find_task(hub, conn.id, "inv-1").status == TaskStatus.DONE


class _Boom(Exception):
    pass


def _boom_provider(fail_times: int) -> types.ModuleType:
    state = {"left": fail_times}

    @hookimpl
    def push_invoice(ctx, invoice, remote_contact_id):  # type: ignore[no-untyped-def]
        if state["left"] > 0:
            state["left"] -= 1
            raise _Boom("socket closed; Authorization: Bearer sekrit-token access_token=abc123")
        return ledger_mod.push_invoice(ctx, invoice, remote_contact_id)

    module = types.ModuleType("boomy")  # a plugin is any hashable namespace with @hookimpl functions
    for name in ("provider_info", "validate_settings", "rate_limit", "upsert_contact", "find_invoice"):
        setattr(module, name, getattr(ledger_mod, name))
    module.push_invoice = push_invoice  # type: ignore[attr-defined]
    return module


def test_unexpected_exception_is_transient_uncertain_and_redacted(hub: Hub) -> None:
    hub.plugins.add_provider("boomy", _boom_provider(1))
    conn, account = add_connection(hub, "boomy")
    hub.submit_invoice("t1", "prod", invoice(1))
    stats = Outbound(hub, "w", FAST).tick()
    assert stats.retrying == 1
    task = find_task(hub, conn.id, "inv-1")
    assert task.uncertain and task.last_error.startswith("_Boom: socket closed")
    assert "sekrit" not in task.last_error and "abc123" not in task.last_error
    drain(hub)
    assert len(ledger_mod.ledger(account).invoices_by_reference("inv-1")) == 1


def test_safe_error_redacts() -> None:
    text = safe_error(TransientError('refresh failed: {"refresh_token": "1000.abc", "client_secret":"xyz"}'))
    assert "1000.abc" not in text and "xyz" not in text and text.startswith("TransientError")


def test_worker_death_mid_push_is_recovered_without_duplicate(hub: Hub) -> None:
    """A task left in flight by a dead worker is claimed after its lease and adopted by lookup."""
    conn, account = add_connection(hub, "ledger")
    hub.submit_invoice("t1", "prod", invoice(1))
    dead = Outbound(hub, "dead-worker", FAST)
    assert dead.claim(10) == [conn.id]
    started = dead._start(find_task(hub, conn.id, "inv-1").id, conn.id)
    # the dead worker's push reached the remote, then the process died before completing
    ledger_mod.ledger(account).create_invoice(invoice(1), ledger_mod.ledger(account).create_contact("x", None).id)
    assert started is not None and started.task.status == TaskStatus.IN_FLIGHT
    past = utcnow() - dt.timedelta(seconds=1)
    with hub.engine.begin() as db:
        db.execute(connections.update().values(lease_until=past))
        db.execute(outbox_tasks.update().values(lease_until=past))
    # On SQLite the survivor takes the task over once it has itself watched the lease stay unchanged for
    # a lease's length (its own monotonic clock; see outbox/leases.py): a short lease keeps this test quick.
    drain(hub, Outbound(hub, "survivor", attrs.evolve(FAST, lease_seconds=0.5)))
    task = find_task(hub, conn.id, "inv-1")
    assert task.status == TaskStatus.DONE and task.uncertain and task.attempts == 2
    assert len(ledger_mod.ledger(account).invoices_by_reference("inv-1")) == 1
    assert "abandoned" in " ".join(
        r.detail or "" for r in audit.history(hub.engine.connect(), "task", task.id)
    )


def test_disabled_connection_keeps_tasks_until_enabled(hub: Hub) -> None:
    conn, account = add_connection(hub)
    hub.submit_invoice("t1", "prod", invoice(1))
    hub.disable(conn.id)
    stats = Outbound(hub, "w", FAST).tick()
    assert stats.parked == 1 and ledger_mod.ledger(account).invoices == {}
    assert find_task(hub, conn.id, "inv-1").status == TaskStatus.PENDING
    hub.enable(conn.id)
    resume_paused(hub, conn.id)
    drain(hub)
    assert find_task(hub, conn.id, "inv-1").status == TaskStatus.DONE


def test_reactivated_connection_resumes_without_explicit_call(hub: Hub) -> None:
    """Whoever re-activates a connection may forget resume_paused: the parked connection's next check does it."""
    conn, account = add_connection(hub, "faulty")
    faulty.inject(account, "auth", op="push_invoice")
    hub.submit_invoice("t1", "prod", invoice(1))
    worker = Outbound(hub, "w", FAST)
    worker.tick()
    assert find_task(hub, conn.id, "inv-1").status == TaskStatus.PAUSED
    worker.tick()  # parked for FAST.park_seconds
    hub.set_status(conn.id, ConnectionStatus.ACTIVE)  # e.g. re-authorized by a path that knows nothing of tasks
    assert wait_until(lambda: worker.tick().resumed == 1, timeout=5)
    drain(hub, worker)
    assert len(ledger_mod.ledger(account).invoices_by_reference("inv-1")) == 1
