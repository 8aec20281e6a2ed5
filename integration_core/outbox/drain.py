"""Draining: claim connections with due work, push each due invoice exactly once.

Exactly-once rests on three things:

* one task per ``(connection, "invoice", invoice id)`` (see :mod:`.submit`);
* a task is marked ``in_flight`` and committed *before* the provider is called, so any crash leaves a
  visible trace, and every later attempt (or an ``uncertain`` one) looks the invoice up by its stable
  reference before creating it;
* the remote id is linked in the mapping table in the same transaction that marks the task done.

Connections are the unit of scheduling: a tick claims a few due connections with a lease
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so its cost follows the due work, never the number of
connections.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import DatabaseFileChanged
from ..metrics import push_observed
from ..models import ConnectionStatus, TaskStatus
from ..ratelimit import Budget, drop_holder
from ..redact import RepeatedErrors
from ..store.db import lock_rows
from ..store.schema import UTCDateTime, connections, outbox_tasks, utcnow
from .calls import rate_limit_of
from .finish import _StopBatch
from .invoices import InvoiceTasks
from .leases import LeaseClock
from .schedule import pause_all, resume_all
from .settings import OutboundSettings, TickStats, default_worker_id

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger(__name__)

_c = connections.c
_t = outbox_tasks.c
_CID: sa.BindParameter[str] = sa.bindparam("b_cid")
_RENEW_ROW = (  # a batch starts: the lease renewed, and the connection row back from the same statement
    connections.update()
    .where(_c.id == _CID, _c.lease_owner == sa.bindparam("b_owner"))
    .values(lease_until=sa.bindparam("b_until", type_=UTCDateTime))
    .returning(*connections.c)
)
_LEASE_ROW = (  # a claim: the lease taken, and the connection row back from the same statement
    connections.update()
    .where(_c.id == _CID)
    .values(lease_owner=sa.bindparam("b_owner"), lease_until=sa.bindparam("b_until", type_=UTCDateTime))
    .returning(*connections.c)
)
_DUE = sa.select(  # when the connection is next due: its earliest pending task, or its earliest in-flight lease end
    sa.select(sa.func.min(_t.next_attempt_at))
    .where(_t.connection_id == _CID, _t.status == TaskStatus.PENDING).scalar_subquery(),
    sa.select(sa.func.min(_t.lease_until))
    .where(_t.connection_id == _CID, _t.status == TaskStatus.IN_FLIGHT).scalar_subquery(),
)


class Outbound(InvoiceTasks):
    """One worker's drain loop. Safe to run in many processes on one PostgreSQL database."""

    def __init__(
        self,
        hub: Hub,
        worker_id: str | None = None,
        settings: OutboundSettings | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.hub = hub
        self.engine: sa.Engine = hub.engine
        self.worker_id = worker_id or default_worker_id()
        self.settings = settings or OutboundSettings()
        self.rng = rng or random.Random()
        # ``clock``: this worker's wall clock (tests give one that is offset); leases use ``self.leases``.
        self.leases = LeaseClock(self.engine, self.settings.lease_seconds, clock)
        self._errors = RepeatedErrors(log, "draining a connection failed; its lease will expire")

    # --- claiming ---------------------------------------------------------------------------------

    def claim(self, max_connections: int, *, skip: Collection[str] = ()) -> list[str]:
        """Lease up to ``max_connections`` due connections (not in ``skip``), earliest ``next_due_at`` first."""
        c = connections.c
        with self.engine.begin() as db:
            now = self.leases.now(db)
            ids = _lock_due(db, now, skip, max_connections)
            if ids:
                db.execute(
                    connections.update()
                    .where(c.id.in_(ids))
                    .values(lease_owner=self.worker_id, lease_until=now + self._lease())
                )
        return ids

    def release(
        self, connection_id: str, *, not_before: dt.datetime | None = None, budget: Budget | None = None
    ) -> None:
        """Recompute when the connection is next due and give its lease (and in-flight slot) back: the row
        is locked first (a concurrent submit is seen here, or wakes it after us), then one update."""
        c = connections.c
        with self.engine.begin() as db:
            row = db.execute(lock_rows(db, sa.select(c.lease_owner, c.rate_state).where(c.id == connection_id))).first()
            if row is None:
                return
            values: dict[str, Any] = {}
            if budget is not None and budget.holding:
                budget.holding = False
                rate_state = drop_holder(row.rate_state, budget.holder)
                if rate_state is not None:
                    values["rate_state"] = rate_state
            if row.lease_owner == self.worker_id:  # else the lease expired and another worker owns it now
                pending, in_flight = db.execute(_DUE, {"b_cid": connection_id}).one()
                due = min((d for d in (pending, in_flight) if d is not None), default=None)
                if due is not None and not_before is not None and due < not_before:
                    due = not_before
                now = utcnow()
                if due is not None and due < now:
                    due = now  # round robin: after a batch this connection queues behind those that waited longer
                values.update(next_due_at=due, lease_owner=None, lease_until=None)
            if values:
                db.execute(connections.update().where(c.id == connection_id).values(**values))

    # --- the tick ---------------------------------------------------------------------------------

    def tick(self, max_connections: int | None = None, batch_size: int | None = None) -> TickStats:
        """Claim due connections one at a time (each once) and push a bounded batch of each one's due tasks:
        the rest stay claimable meanwhile, so several workers (threads, processes) split the due connections."""
        stats = TickStats()
        drained: list[str] = []
        batch = batch_size or self.settings.batch_size
        for _ in range(max_connections or self.settings.max_connections):
            claimed = self._claim_batch(drained, batch)
            if claimed is None:
                break
            row, task_ids, resumed, more = claimed
            drained.append(row.id)
            stats.claimed += 1
            stats.resumed += resumed
            try:
                stats.add(self._drain(row, task_ids))
            except DatabaseFileChanged:
                raise  # the worker must stop (scheduler.Worker)
            except Exception as exc:  # one traceback, then counts: a full disk fails every connection
                self._errors.failed(exc)
            if not more:
                break  # the claim saw no other due connection: no further claim this tick
        return stats

    def _claim_batch(self, skip: Collection[str], batch_size: int) -> tuple[Any, list[int], int, bool] | None:
        """Lease the earliest due connection (not in ``skip``) and read its batch, in one transaction: its row,
        its due tasks (paused ones resumed first), and whether another due connection was seen."""
        with self.engine.begin() as db:
            now = self.leases.now(db)
            ids = _lock_due(db, now, skip, 2)
            if not ids:
                return None
            row = db.execute(_LEASE_ROW, {"b_cid": ids[0], "b_owner": self.worker_id,
                                          "b_until": now + self._lease()}).one()
            task_ids, resumed = self._open_batch(db, row, batch_size)
        return row, task_ids, resumed, len(ids) > 1

    def _open_batch(self, db: sa.Connection, row: Any, batch_size: int) -> tuple[list[int], int]:
        """In the transaction that leased or renewed the connection: its due tasks, paused ones resumed first."""
        if not _can_push(row) or not _due(row):
            return [], 0
        # Tasks paused by an auth failure resume once the connection is active again, even when
        # whoever re-activated it did not call resume_paused().
        resumed = resume_all(db, row.id, utcnow())
        return self._due_tasks(db, row.id, batch_size, utcnow()), resumed

    def drain_connection(self, connection_id: str, batch_size: int) -> TickStats:
        """Process up to ``batch_size`` due tasks of a connection this worker has leased."""
        with self.engine.begin() as db:  # the lease renewed, the row, paused tasks resumed and due tasks: one read
            now = self.leases.now(db)
            row = db.execute(_RENEW_ROW, {"b_cid": connection_id, "b_owner": self.worker_id,
                                          "b_until": now + self._lease()}).first()
            if row is None:
                return TickStats()
            task_ids, resumed = self._open_batch(db, row, batch_size)
        stats = self._drain(row, task_ids)
        stats.resumed += resumed
        return stats

    def _drain(self, row: Any, task_ids: list[int]) -> TickStats:
        """Push the batch ``task_ids`` of the leased connection ``row``, then give the lease back."""
        stats = TickStats()
        connection_id = row.id
        if not _can_push(row):
            self._park(connection_id, row.status, stats)
            return stats
        if not _due(row):
            self.release(connection_id)  # woken later by a retry schedule: nothing due yet
            return stats
        not_before: dt.datetime | None = None
        park = False
        budget: Budget | None = None
        try:
            ctx = self.hub.context_from_row(row)
            conn = ctx.record
            provider = self.hub.provider(conn.provider)
            s = self.settings
            budget = Budget(
                self.engine, connection_id, rate_limit_of(provider, ctx), holder=self.worker_id,
                fallback_costs=s.call_costs, guard=s.rate_guard_seconds, max_wait=s.rate_wait_seconds,
                hold_seconds=s.lease_seconds,
            )
            ctx.meter = budget.on_request  # a metered provider spends the budget per request
            for task_id in task_ids:
                with push_observed(conn.provider, stats):
                    self._process(conn, ctx, provider, budget, task_id, stats)
        except _StopBatch as stop:
            not_before, park = stop.not_before, stop.park
        finally:
            if park:
                self._park(connection_id, ConnectionStatus.NEEDS_REAUTH, stats, budget=budget)
            else:
                self.release(connection_id, not_before=not_before, budget=budget)
        return stats

    def _due_tasks(self, db: sa.Connection, connection_id: str, batch_size: int, now: dt.datetime) -> list[int]:
        t = outbox_tasks.c
        pending_ids = list(db.execute(
            sa.select(t.id)
            .where(t.connection_id == connection_id, t.status == TaskStatus.PENDING, t.next_attempt_at <= now)
            .order_by(t.next_attempt_at, t.id)
            .limit(batch_size)
        ).scalars())
        in_flight = db.execute(
            sa.select(t.id, t.lease_owner, t.lease_until, t.updated_at)
            .where(t.connection_id == connection_id, t.status == TaskStatus.IN_FLIGHT)
            .order_by(t.lease_until, t.id)
            .limit(batch_size)
        ).all()
        expired = self.leases.expired
        orphaned = [r.id for r in in_flight if expired(db, r.id, r.lease_owner, r.lease_until, r.updated_at)]
        # Orphans (a worker died mid-push) first: they are the oldest work and need the lookup.
        return (orphaned + pending_ids)[:batch_size]

    def _park(self, connection_id: str, status: str, stats: TickStats, *, budget: Budget | None = None) -> None:
        """A connection that cannot push (disabled, needs re-authorization): pause, re-check later.

        Parking, rather than clearing ``next_due_at``, means a connection re-activated by any code path
        is picked up again within ``park_seconds`` (``resume_paused`` makes it immediate).
        """
        now = utcnow()
        c = connections.c
        with self.engine.begin() as db:
            if budget is not None:
                budget.release_in(db)
            if status == ConnectionStatus.NEEDS_REAUTH:
                stats.paused += pause_all(db, connection_id, "connection needs re-authorization")
            db.execute(
                connections.update()
                .where(c.id == connection_id, c.lease_owner == self.worker_id)
                .values(
                    next_due_at=now + dt.timedelta(seconds=self.settings.park_seconds),
                    lease_owner=None,
                    lease_until=None,
                )
            )
        stats.parked += 1


def _can_push(row: Any) -> bool:
    return row.status == ConnectionStatus.ACTIVE and bool(row.invoices_outbound)


def _due(row: Any) -> bool:
    return row.next_due_at is None or row.next_due_at <= utcnow()


def _lock_due(db: sa.Connection, now: dt.datetime, skip: Collection[str], limit: int) -> list[str]:
    """Lock (skipping rows others hold) up to ``limit`` due, unleased connections not in ``skip``, earliest
    ``next_due_at`` first."""
    c = connections.c
    query = (
        sa.select(c.id)
        .where(c.next_due_at <= now, sa.or_(c.lease_owner.is_(None), c.lease_until < now))
        .order_by(c.next_due_at)
        .limit(limit)
    )
    if skip:
        query = query.where(c.id.not_in(list(skip)))
    return list(db.execute(lock_rows(db, query, skip_locked=True)).scalars())
