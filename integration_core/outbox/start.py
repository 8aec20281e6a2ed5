"""Starting one task: marked ``in_flight`` and committed before any provider call, in one transaction.

That transaction also renews the connection's lease (and so checks, under the connection row's lock, that
the connection may still push), reads the invoice's links and spends the budget of its first request: one
commit per started task. Statements are built once with bound parameters, and rows come back from the
``UPDATE … RETURNING`` that changes them instead of being read again.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import sqlalchemy as sa

from ..models import ConnectionStatus, TaskStatus
from ..ratelimit import Budget
from ..store.schema import UTCDateTime, audit_log, connections, outbox_tasks, utcnow
from .calls import NoRoom, Started, parse_invoice, read_links
from .finish import TaskTransitions, _StopBatch
from .leases import LeaseClock

_t = outbox_tasks.c
_c = connections.c
_UNTIL = sa.bindparam("b_until", type_=UTCDateTime)
_NOW = sa.bindparam("b_now", type_=UTCDateTime)
# PostgreSQL: leases in the database's clock (see .leases) computed in the statements, not read first.
_DB_NOW = sa.func.timezone("UTC", sa.func.clock_timestamp(), type_=sa.DateTime)
_DB_UNTIL = _DB_NOW + sa.bindparam("b_lease", type_=sa.Interval)


def _mark(until: Any, now: Any) -> Any:
    """A pending task (the usual case) goes in flight, the row back; orphans take the slower path below."""
    return (
        outbox_tasks.update()
        .where(_t.id == sa.bindparam("b_id"), _t.status == TaskStatus.PENDING)
        .values(status=TaskStatus.IN_FLIGHT, attempts=_t.attempts + 1, lease_owner=sa.bindparam("b_owner"),
                lease_until=until, updated_at=now)
        .returning(*outbox_tasks.c)
    )


def _renew(until: Any) -> Any:
    """The connection's lease, and what the task start must check under that row's lock."""
    return (
        connections.update()
        .where(_c.id == sa.bindparam("b_cid"), _c.lease_owner == sa.bindparam("b_owner"))
        .values(lease_until=until)
        .returning(_c.status, _c.invoices_outbound, _c.rate_state)
    )


_MARK, _RENEW = _mark(_UNTIL, _NOW), _renew(_UNTIL)
_MARK_DB, _RENEW_DB = _mark(_DB_UNTIL, _DB_NOW), _renew(_DB_UNTIL)
_AUDIT = audit_log.insert()


class TaskStart(TaskTransitions):
    """Marking a task in flight (a part of :class:`~.drain.Outbound`)."""

    leases: LeaseClock

    def _lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.lease_seconds)

    def _start(self, task_id: int, connection_id: str, budget: Budget | None = None) -> Started | None:
        """Mark the task in flight and COMMIT before any provider call: a crash after this is visible. The same
        transaction reads its links and spends its first call's budget (no room: the task stays pending)."""
        while True:
            try:
                return self._try_start(task_id, connection_id, budget)
            except NoRoom as full:
                if budget is None or full.wait > budget.max_wait:
                    raise _StopBatch(utcnow() + dt.timedelta(seconds=full.wait), rate_limited=True) from None
                time.sleep(full.wait)

    def _try_start(self, task_id: int, connection_id: str, budget: Budget | None) -> Started | None:
        with self.engine.begin() as db:
            times: dict[str, Any]
            if self.leases.shared:
                mark, renew, times = _MARK_DB, _RENEW_DB, {"b_lease": self._lease()}
            else:
                now = self.leases.now(db)
                mark, renew, times = _MARK, _RENEW, {"b_until": now + self._lease(), "b_now": now}
            task = db.execute(mark, {"b_id": task_id, "b_owner": self.worker_id, **times}).first()
            orphan = None
            if task is None:
                task, orphan = self._take_orphan(db, task_id)
                if task is None:
                    return None
            # Renewed under the connection row's lock and checked with every task: once `disable` or
            # `--no-invoices-outbound` has returned, no further push starts.
            live = db.execute(renew, {"b_cid": connection_id, "b_owner": self.worker_id, **times}).first()
            if live is None or live.status != ConnectionStatus.ACTIVE or not live.invoices_outbound:
                raise _StopBatch()  # lost the lease, or may not push: the transaction rolls back
            invoice = parse_invoice(task)
            links = read_links(db, connection_id, invoice)
            first = links.first_call(lookup=task.attempts > 1 or bool(task.uncertain))
            detail = f"attempt {task.attempts} by {self.worker_id}"
            if orphan is not None:
                detail += f"; previous attempt by {orphan} abandoned (lease expired), outcome uncertain"
            db.execute(_AUDIT, {"at": utcnow(), "connection_id": connection_id, "subject": "task",
                                "subject_id": str(task_id), "action": "in_flight", "detail": detail})
            if first is not None and budget is not None:  # last: the grant is as close to the request as can be
                wait = budget.take_in(db, first, read=False, raw_state=live.rate_state)
                if wait > 0:
                    raise NoRoom(wait)  # rolls the transaction back: the task stays pending
            return Started(task, links, first, invoice)

    def _take_orphan(self, db: sa.Connection, task_id: int) -> tuple[Any, str | None]:
        """An in-flight task whose worker's lease is proven expired is taken over, marked uncertain."""
        now = self.leases.now(db)
        row = db.execute(sa.select(outbox_tasks).where(_t.id == task_id)).first()
        if row is None or row.status != TaskStatus.IN_FLIGHT:
            return None, None
        if not self.leases.expired(db, row.id, row.lease_owner, row.lease_until, row.updated_at):
            return None, None  # not provably abandoned: the worker holding it may still be pushing
        task = db.execute(
            outbox_tasks.update()
            .where(  # exactly the lease proven expired above, not one granted since
                _t.id == task_id, _t.status == TaskStatus.IN_FLIGHT, _t.lease_owner == row.lease_owner,
                _t.lease_until == row.lease_until,
            )
            .values(
                attempts=_t.attempts + 1, lease_owner=self.worker_id, lease_until=now + self._lease(),
                uncertain=True, updated_at=now,
            )
            .returning(*outbox_tasks.c)
        ).first()
        return task, str(row.lease_owner) if task is not None else None
