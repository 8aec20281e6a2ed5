"""Submit and drain: idempotent submission, exactly-once push, fairness, tick cost (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import sqlalchemy as sa

from integration_core import audit, mapping
from integration_core.hub import Hub
from integration_core.models import ConnectionStatus, SyncSettings, TaskStatus
from integration_core.outbox import Outbound, SubmitOutcome, find_task, payload_hash
from integration_core.providers import ledger as ledger_mod
from integration_core.store.db import is_postgres
from integration_core.store.schema import connections, outbox_tasks, utcnow
from tests.workers.helpers import FAST, add_connection, drain, invoice, tasks


def test_submit_queues_one_task_per_syncing_connection(hub: Hub) -> None:
    a, _ = add_connection(hub, "ledger")
    b, _ = add_connection(hub, "faulty")
    add_connection(hub, "ledger", env="staging")
    add_connection(hub, "ledger", tenant="t2")
    off, _ = add_connection(hub, "ledger", tenant="t3")
    hub.update_connection(off.id, sync=SyncSettings(invoices_outbound=False))
    result = hub.submit_invoice("t3", "prod", invoice(1))
    assert result.outcomes == ()

    result = hub.submit_invoice("t1", "prod", invoice(1))
    assert {o.connection_id for o in result.queued} == {a.id, b.id}
    assert all(o.status == TaskStatus.PENDING for o in result.outcomes)
    with hub.engine.connect() as db:
        due = dict(db.execute(sa.select(connections.c.id, connections.c.next_due_at)).all())
    assert due[a.id] is not None and due[b.id] is not None
    assert sum(1 for v in due.values() if v is not None) == 2


def test_disabled_connection_gets_no_task(hub: Hub) -> None:
    a, _ = add_connection(hub)
    hub.disable(a.id)
    assert hub.submit_invoice("t1", "prod", invoice(1)).outcomes == ()


def test_resubmit_same_snapshot_is_counted_not_duplicated(hub: Hub) -> None:
    a, _ = add_connection(hub)
    first = hub.submit_invoice("t1", "prod", invoice(1))
    second = hub.submit_invoice("t1", "prod", invoice(1))
    assert first.for_connection(a.id).outcome == SubmitOutcome.QUEUED
    assert second.for_connection(a.id).outcome == SubmitOutcome.UNCHANGED
    (task,) = tasks(hub)
    assert task.submissions == 2 and task.status == TaskStatus.PENDING


def test_changed_snapshot_replaces_pending_payload(hub: Hub) -> None:
    a, _ = add_connection(hub)
    hub.submit_invoice("t1", "prod", invoice(1, amount="100.00"))
    changed = invoice(1, amount="120.00")
    result = hub.submit_invoice("t1", "prod", changed)
    assert result.for_connection(a.id).outcome == SubmitOutcome.UPDATED
    (task,) = tasks(hub)
    assert task.payload_hash == payload_hash(changed.to_dict())
    assert task.payload["lines"][0]["amount"] == "120.00"


def test_changed_after_sync_is_audited_and_not_pushed_again(hub: Hub) -> None:
    a, account = add_connection(hub)
    hub.submit_invoice("t1", "prod", invoice(1))
    drain(hub)
    same = hub.submit_invoice("t1", "prod", invoice(1))
    assert same.for_connection(a.id).outcome == SubmitOutcome.ALREADY_SYNCED
    assert not same.changed_after_sync
    changed = hub.submit_invoice("t1", "prod", invoice(1, amount="999.00"))
    outcome = changed.for_connection(a.id)
    assert outcome.outcome == SubmitOutcome.ALREADY_SYNCED and outcome.changed
    assert changed.changed_after_sync == [outcome]
    drain(hub)
    assert len(ledger_mod.ledger(account).invoices_by_reference("inv-1")) == 1
    with hub.engine.connect() as db:
        actions = [(r.action, r.detail) for r in audit.history(db, "task", outcome.task_id)]
    assert ("changed_after_sync", "changed after sync; not re-pushed") in actions
    (task,) = tasks(hub)
    assert task.status == TaskStatus.DONE and task.payload["lines"][0]["amount"] == "100.00"


def test_concurrent_submits_of_one_invoice_make_one_task(hub: Hub) -> None:
    a, b = add_connection(hub, "ledger")[0], add_connection(hub, "faulty")[0]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def submit(i: int) -> None:
        try:
            barrier.wait()
            hub.submit_invoice("t1", "prod", invoice(7, amount=str(100 + i % 2)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = tasks(hub)
    assert sorted(r.connection_id for r in rows) == sorted([a.id, b.id])
    assert all(r.submissions == 8 for r in rows)


def test_n_invoices_pushed_exactly_once(hub: Hub) -> None:
    a, account = add_connection(hub)
    n = 30
    for i in range(n):
        hub.submit_invoice("t1", "prod", invoice(i, customer=i % 5))
        if i % 3 == 0:
            hub.submit_invoice("t1", "prod", invoice(i, customer=i % 5))
    stats = drain(hub)
    assert stats.done == n
    book = ledger_mod.ledger(account)
    for i in range(n):
        assert len(book.invoices_by_reference(f"inv-{i}")) == 1
    assert book.calls["create_invoice"] == n
    # Contacts come from the mapping after the first invoice of each customer: 5 lookups, 5 creates.
    assert book.calls["create_contact"] == 5 and book.calls["find_contact"] == 5
    assert "find_invoice" not in book.calls  # no retries, so no lookups
    with hub.engine.connect() as db:
        for row in tasks(hub):
            assert row.status == TaskStatus.DONE
            assert mapping.remote_id(db, a.id, "invoice", row.local_id) == row.remote_id
        assert mapping.remote_id(db, a.id, mapping.contact_type("USD"), "cust-0") is not None
        last_success = db.execute(sa.select(connections.c.last_success_at).where(connections.c.id == a.id)).scalar()
    assert last_success is not None
    # A drained connection is no longer due: the next tick claims nothing.
    assert Outbound(hub, "w", FAST).tick().claimed == 0


def test_history_records_each_state_change(hub: Hub) -> None:
    a, _ = add_connection(hub)
    hub.submit_invoice("t1", "prod", invoice(1))
    drain(hub)
    task = find_task(hub, a.id, "inv-1")
    with hub.engine.connect() as db:
        actions = [r.action for r in audit.history(db, "task", task.id)]
    assert actions == ["queued", "in_flight", "done"]


def test_fairness_single_invoice_not_starved_by_backlog(hub: Hub) -> None:
    _, big_account = add_connection(hub, tenant="big")
    small, small_account = add_connection(hub, tenant="small")
    for i in range(300):
        hub.submit_invoice("big", "prod", invoice(i))
    hub.submit_invoice("small", "prod", invoice("only"))
    worker = Outbound(hub, "w", FAST)
    first = worker.tick(max_connections=1, batch_size=20)
    second = worker.tick(max_connections=1, batch_size=20)
    assert first.done + second.done == 21
    assert find_task(hub, small.id, "inv-only").status == TaskStatus.DONE
    assert len(ledger_mod.ledger(small_account).invoices_by_reference("inv-only")) == 1
    drain(hub, worker, max_ticks=100)
    assert len(ledger_mod.ledger(big_account).invoices) == 300


def test_tick_cost_follows_due_work_not_connections(hub: Hub) -> None:
    """10,000 idle connections and 10 with a due invoice: a tick claims exactly the 10, via the index."""
    now = utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "tenant_id": f"idle-{i}",
            "environment_id": "prod",
            "provider": "ledger",
            "name": f"idle {i}",
            "settings": {"account": f"idle-{i}"},
            "secrets": None,
            "status": ConnectionStatus.ACTIVE,
            "invoices_outbound": True,
            "customers_inbound": True,
            "created_at": now,
            "updated_at": now,
            # half have been drained at some point, half never had work
            "last_success_at": now if i % 2 else None,
        }
        for i in range(10_000)
    ]
    with hub.engine.begin() as db:
        db.execute(connections.insert(), rows)
    due = [add_connection(hub, tenant=f"busy-{i}")[0] for i in range(10)]
    for i in range(10):
        hub.submit_invoice(f"busy-{i}", "prod", invoice(i))
    worker = Outbound(hub, "w", FAST)
    # The claim's shape (see Outbound.claim): due connections in next_due_at order, a LIMIT.
    claim_sql = "SELECT id FROM connections WHERE next_due_at <= '2100-01-01' ORDER BY next_due_at LIMIT 100"
    with hub.engine.begin() as db:
        if is_postgres(hub.engine):
            db.execute(sa.text("ANALYZE connections"))
            plan = "\n".join(r[0] for r in db.execute(sa.text("EXPLAIN " + claim_sql)))
        else:
            plan = "\n".join(str(r[-1]) for r in db.execute(sa.text("EXPLAIN QUERY PLAN " + claim_sql)))
    assert "ix_connections_next_due_at" in plan, plan
    stats = worker.tick(max_connections=100)
    assert stats.claimed == 10 and stats.done == 10
    assert worker.tick(max_connections=100).claimed == 0
    assert {t.connection_id for t in tasks(hub)} == {c.id for c in due}


def test_retry_backoff_is_bounded_full_jitter(hub: Hub) -> None:
    worker = Outbound(hub, "w", FAST)
    values = [worker.backoff(a) for a in range(1, 30) for _ in range(5)]
    assert all(0 <= v <= FAST.backoff_cap for v in values)
    default = Outbound(hub, "w")
    assert max(default.backoff(40) for _ in range(50)) <= 3600
    assert default.backoff(1) <= 2.0


def test_claim_leases_and_skips_leased_connections(hub: Hub) -> None:
    a, _ = add_connection(hub)
    hub.submit_invoice("t1", "prod", invoice(1))
    w1, w2 = Outbound(hub, "w1", FAST), Outbound(hub, "w2", FAST)
    assert w1.claim(10) == [a.id]
    assert w2.claim(10) == []  # leased by w1
    with hub.engine.begin() as db:  # w1 "dies": its lease runs out
        db.execute(connections.update().values(lease_until=utcnow() - dt.timedelta(seconds=1)))
    assert w2.claim(10) == [a.id]


def test_bad_payload_fails_task(hub: Hub) -> None:
    add_connection(hub)
    hub.submit_invoice("t1", "prod", invoice(1))
    with hub.engine.begin() as db:
        db.execute(outbox_tasks.update().values(payload={"id": "inv-1"}))
    Outbound(hub, "w", FAST).tick()
    (task,) = tasks(hub)
    assert task.status == TaskStatus.FAILED and "bad invoice payload" in task.last_error
