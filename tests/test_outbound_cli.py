"""``tasks list|show|retry`` and ``status`` through click's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from integration_core.cli import main
from integration_core.config import Config
from integration_core.hub import Hub
from integration_core.models import Payment, TaskStatus
from integration_core.outbox import Outbound, find_task
from integration_core.providers import ledger as ledger_mod
from tests.providers import faulty
from tests.workers.helpers import FAST, add_connection, drain, invoice


@pytest.fixture
def run(config: Config) -> Iterator:  # type: ignore[type-arg]
    env = {"IC_DATABASE_URL": config.database_url, "IC_KEY_FILE": config.key_file}

    def invoke(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    yield invoke
    faulty.calm()


def test_permanent_failure_fixed_by_operator_retry(hub: Hub, run) -> None:  # type: ignore[no-untyped-def]
    conn, account = add_connection(hub, "faulty")
    faulty.inject(account, "permanent", op="push_invoice")
    hub.submit_invoice("t1", "prod", invoice(1, customer=5))
    hub.submit_invoice("t1", "prod", invoice(2))
    Outbound(hub, "w", FAST).tick()
    task = find_task(hub, conn.id, "inv-1")
    assert task.status == TaskStatus.FAILED

    out = run("tasks", "list", "--status", "failed")
    assert f"{task.id:>7}  invoice  failed" in out and "inv-1" in out and "injected validation error" in out
    assert "inv-2" not in out
    listed = json.loads(run("tasks", "list", "--connection", conn.id, "--json"))
    assert {t["local_id"]: t["status"] for t in listed} == {"inv-1": "failed", "inv-2": "done"}

    shown = run("tasks", "show", str(task.id))
    assert "status       failed" in shown
    assert "INV-1 for Customer 5 <c5@example.com>, 1 line(s), total 100.00 USD" in shown
    assert "last error   injected validation error in push_invoice" in shown
    assert "queued" in shown and "in_flight" in shown and "failed" in shown

    status = run("status")
    assert "faulty" in status and "t1/prod" in status
    summary = json.loads(run("status", "--json"))
    (row,) = [r for r in summary if r["id"] == conn.id]
    assert row["tasks"]["failed"] == 1 and row["tasks"]["done"] == 1 and row["last_success_at"]

    run("tasks", "retry", code=2)  # neither an id nor --all-failed
    assert "pending again" in run("tasks", "retry", str(task.id))
    assert "is pending" in run("tasks", "retry", str(task.id), code=1)  # only failed/dead/paused
    drain(hub)
    assert find_task(hub, conn.id, "inv-1").status == TaskStatus.DONE
    assert len(ledger_mod.ledger(account).invoices_by_reference("inv-1")) == 1
    assert "retry_requested" in run("tasks", "show", str(task.id))


def test_retry_all_failed(hub: Hub, run) -> None:  # type: ignore[no-untyped-def]
    conn, account = add_connection(hub, "faulty")
    faulty.inject(account, "permanent", "permanent", op="push_invoice")
    for i in range(3):
        hub.submit_invoice("t1", "prod", invoice(i))
    Outbound(hub, "w", FAST).tick()
    assert "2 task(s) pending again" in run("tasks", "retry", "--all-failed", "--connection", conn.id)
    assert "0 task(s) pending again" in run("tasks", "retry", "--all-failed")
    drain(hub)
    assert len(ledger_mod.ledger(account).invoices) == 3


def test_show_unknown_task(hub: Hub, run) -> None:  # type: ignore[no-untyped-def]
    assert "no task 999" in run("tasks", "show", "999", code=1)
    assert "no tasks" in run("tasks", "list")
    assert "no connections" in run("status")


def test_payment_and_void_tasks_listed_beside_invoices(hub: Hub, run) -> None:  # type: ignore[no-untyped-def]
    conn, _account = add_connection(hub, "faulty")
    hub.submit_invoice("t1", "prod", invoice(1))
    hub.submit_payment("t1", "prod", Payment(id="pay-1", invoice_id="inv-1", amount="40.00", currency="USD",
                                             paid_on="2026-01-20", method="card", reference="CH-1"))
    hub.submit_void("t1", "prod", "inv-9")
    out = run("tasks", "list")
    kinds = {line.split()[3]: line.split()[1] for line in out.splitlines()[1:]}
    assert kinds == {"inv-1": "invoice", "pay-1": "payment", "inv-9": "void"}
    only = json.loads(run("tasks", "list", "--kind", "payment", "--json"))
    assert [(t["entity_type"], t["local_id"]) for t in only] == [("payment", "pay-1")]
    payment_task = find_task(hub, conn.id, "pay-1", entity_type="payment")
    shown = run("tasks", "show", str(payment_task.id))
    assert "payment      40.00 USD on invoice inv-1, paid 2026-01-20 by card, reference CH-1" in shown
    status = run("status")
    rows = [line.split() for line in status.splitlines()[1:]]
    assert [r[3] if i == 0 else r[0] for i, r in enumerate(rows)] == ["invoice", "payment", "void"]
    (row,) = json.loads(run("status", "--json"))
    assert {k: v["pending"] for k, v in row["tasks_by_kind"].items()} == {"invoice": 1, "payment": 1, "void": 1}
