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
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from .. import inbound, mapping
from ..context import ProviderContext
from ..errors import DatabaseFileChanged, PermanentError, TransientError
from ..metrics import push_observed
from ..models import Connection, ConnectionStatus, Invoice, RemoteInvoice, TaskStatus
from ..plugins import ProviderHooks
from ..ratelimit import Budget
from ..redact import RepeatedErrors, safe_error
from ..store.db import lock_rows
from ..store.schema import connections, outbox_tasks, utcnow
from .calls import NoRoom, Started, rate_limit_of, read_links
from .finish import _LeaseLost, _StopBatch
from .leases import LeaseClock
from .payments import DependentTasks
from .schedule import pause_all, recompute_due, resume_all, task_audit
from .settings import OutboundSettings, TickStats, default_worker_id

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger(__name__)


class Outbound(DependentTasks):
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
            query = (
                sa.select(c.id)
                .where(c.next_due_at <= now, sa.or_(c.lease_owner.is_(None), c.lease_until < now))
                .order_by(c.next_due_at)
                .limit(max_connections)
            )
            if skip:
                query = query.where(c.id.not_in(list(skip)))
            ids = list(db.execute(lock_rows(db, query, skip_locked=True)).scalars())
            if ids:
                db.execute(
                    connections.update()
                    .where(c.id.in_(ids))
                    .values(lease_owner=self.worker_id, lease_until=now + self._lease())
                )
        return ids

    def _lease(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.lease_seconds)

    def _renew(self, db: sa.Connection, connection_id: str, now: dt.datetime) -> bool:
        c = connections.c
        result = db.execute(
            connections.update()
            .where(c.id == connection_id, c.lease_owner == self.worker_id)
            .values(lease_until=now + self._lease())
        )
        return result.rowcount == 1

    def release(
        self, connection_id: str, *, not_before: dt.datetime | None = None, budget: Budget | None = None
    ) -> None:
        """Recompute when the connection is next due and give its lease (and in-flight slot) back."""
        c = connections.c
        with self.engine.begin() as db:
            if budget is not None:
                budget.release_in(db)
            owner = db.execute(sa.select(c.lease_owner).where(c.id == connection_id)).scalar_one_or_none()
            if owner != self.worker_id:
                return  # the lease expired and another worker owns the connection now
            due = recompute_due(db, connection_id, not_before=not_before)
            if due is not None and due < utcnow():
                # Round robin: after a batch this connection queues behind those that waited longer.
                db.execute(connections.update().where(c.id == connection_id).values(next_due_at=utcnow()))
            db.execute(
                connections.update()
                .where(c.id == connection_id, c.lease_owner == self.worker_id)
                .values(lease_owner=None, lease_until=None)
            )

    # --- the tick ---------------------------------------------------------------------------------

    def tick(self, max_connections: int | None = None, batch_size: int | None = None) -> TickStats:
        """Claim due connections one at a time (each once) and push a bounded batch of each one's due tasks:
        the rest stay claimable meanwhile, so several workers (threads, processes) split the due connections."""
        stats = TickStats()
        drained: list[str] = []
        for _ in range(max_connections or self.settings.max_connections):
            ids = self.claim(1, skip=drained)
            if not ids:
                break
            connection_id = ids[0]
            drained.append(connection_id)
            stats.claimed += 1
            try:
                stats.add(self.drain_connection(connection_id, batch_size or self.settings.batch_size))
            except DatabaseFileChanged:
                raise  # the worker must stop (scheduler.Worker)
            except Exception as exc:  # one traceback, then counts: a full disk fails every connection
                self._errors.failed(exc)
        return stats

    def drain_connection(self, connection_id: str, batch_size: int) -> TickStats:
        """Process up to ``batch_size`` due tasks of a connection this worker has leased."""
        stats = TickStats()
        now = utcnow()
        with self.engine.begin() as db:
            if not self._renew(db, connection_id, self.leases.now(db)):
                return stats
            row = db.execute(sa.select(connections).where(connections.c.id == connection_id)).first()
        if row is None:
            return stats
        if row.status != ConnectionStatus.ACTIVE or not row.invoices_outbound:
            self._park(connection_id, row.status, stats)
            return stats
        if row.next_due_at is not None and row.next_due_at > now:
            self.release(connection_id)  # woken later by a retry schedule: nothing due yet
            return stats
        not_before: dt.datetime | None = None
        park = False
        budget: Budget | None = None
        try:
            # Tasks paused by an auth failure resume once the connection is active again, even when
            # whoever re-activated it did not call resume_paused().
            with self.engine.begin() as db:
                stats.resumed += resume_all(db, connection_id, utcnow())
            ctx = self.hub.context(connection_id)
            conn = ctx.record
            provider = self.hub.provider(conn.provider)
            s = self.settings
            budget = Budget(
                self.engine, connection_id, rate_limit_of(provider, ctx), holder=self.worker_id,
                fallback_costs=s.call_costs, guard=s.rate_guard_seconds, max_wait=s.rate_wait_seconds,
                hold_seconds=s.lease_seconds,
            )
            ctx.meter = budget.on_request  # a metered provider spends the budget per request
            for task_id in self._due_tasks(connection_id, batch_size, utcnow()):
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

    def _due_tasks(self, connection_id: str, batch_size: int, now: dt.datetime) -> list[int]:
        t = outbox_tasks.c
        with self.engine.connect() as db:
            pending = db.execute(
                sa.select(t.id)
                .where(t.connection_id == connection_id, t.status == TaskStatus.PENDING, t.next_attempt_at <= now)
                .order_by(t.next_attempt_at, t.id)
                .limit(batch_size)
            ).scalars()
            pending_ids = list(pending)
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

    # --- one task ---------------------------------------------------------------------------------

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
        t = outbox_tasks.c
        with self.engine.begin() as db:
            now = self.leases.now(db)
            row = db.execute(sa.select(outbox_tasks).where(t.id == task_id)).first()
            if row is None:
                return None
            orphan = row.status == TaskStatus.IN_FLIGHT
            if orphan and not self.leases.expired(db, row.id, row.lease_owner, row.lease_until, row.updated_at):
                return None  # not provably abandoned: the worker holding it may still be pushing
            result = db.execute(
                outbox_tasks.update()
                .where(
                    t.id == task_id,
                    sa.or_(
                        t.status == TaskStatus.PENDING,
                        sa.and_(  # exactly the lease proven expired above, not one granted since
                            t.status == TaskStatus.IN_FLIGHT,
                            t.lease_owner == row.lease_owner,
                            t.lease_until == row.lease_until,
                        ),
                    ),
                )
                .values(
                    status=TaskStatus.IN_FLIGHT,
                    attempts=t.attempts + 1,
                    lease_owner=self.worker_id,
                    lease_until=now + self._lease(),
                    uncertain=True if orphan else t.uncertain,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                return None
            if not self._renew(db, connection_id, now):
                raise _StopBatch()  # lost the connection lease: the transaction rolls back
            # Checked with every task, under the connection row's lock taken by the renewal: once `disable`
            # or `--no-invoices-outbound` has returned, no further push starts.
            c = connections.c
            live = db.execute(sa.select(c.status, c.invoices_outbound).where(c.id == connection_id)).one()
            if live.status != ConnectionStatus.ACTIVE or not live.invoices_outbound:
                raise _StopBatch()
            links = read_links(db, connection_id, row)
            first = links.first_call(lookup=row.attempts > 0 or bool(row.uncertain) or orphan)
            if first is not None and budget is not None:
                wait = budget.take_in(db, first)
                if wait > 0:
                    raise NoRoom(wait)  # rolls the transaction back: the task stays pending
            detail = f"attempt {row.attempts + 1} by {self.worker_id}"
            if orphan:
                detail += f"; previous attempt by {row.lease_owner} abandoned (lease expired), outcome uncertain"
            task_audit(db, task_id, connection_id, "in_flight", detail)
            task = db.execute(sa.select(outbox_tasks).where(t.id == task_id)).first()
            return Started(task, links, first)

    def _process(
        self,
        conn: Connection,
        ctx: ProviderContext,
        provider: ProviderHooks,
        budget: Budget,
        task_id: int,
        stats: TickStats,
    ) -> None:
        try:
            started = self._start(task_id, conn.id, budget)
        except _StopBatch as stop:
            stats.rate_limited += int(stop.rate_limited)
            raise
        if started is None:
            return
        task = started.task
        stats.attempted += 1
        if task.entity_type != mapping.INVOICE:  # a payment or a void (see .payments), a fetch (see .fetch)
            self._process_dependent(conn, ctx, provider, budget, task, stats)
            return
        try:
            invoice = Invoice.from_dict(task.payload)
        except (KeyError, TypeError, ValueError) as exc:  # the stored payload itself is bad: retrying cannot help
            self._fail(task, f"bad invoice payload: {safe_error(exc)}", stats)
            return
        remote = self._guarded(task, budget, stats, lambda: self._push(conn, ctx, provider, budget, started, invoice))
        if remote is not None and self._complete(task, remote):
            stats.done += 1
            stats.adopted += int(remote.adopted)

    def _push(
        self,
        conn: Connection,
        ctx: ProviderContext,
        provider: ProviderHooks,
        budget: Budget,
        started: Started,
        invoice: Invoice,
    ) -> RemoteInvoice:
        task, links, spent = started.task, started.links, started.first_call
        if links.invoice_id is not None:  # linked already (an earlier attempt committed it): nothing to call
            return RemoteInvoice(remote_id=links.invoice_id, adopted=True)
        contact_id = links.contact_id

        def call(name: str, fn: Any, **kwargs: Any) -> Any:
            nonlocal spent
            if spent != name:  # the first call's budget was spent when the task was started
                budget.take(name)
            spent = None
            try:
                return fn(ctx=ctx, **kwargs)
            finally:
                budget.end_call()

        if task.attempts > 1 or task.uncertain:
            found = call("find_invoice", provider.find_invoice, invoice=invoice)
            if found is not None:
                return attrs.evolve(found, adopted=True)
        if contact_id is None:
            contact_id = call("upsert_contact", provider.upsert_contact, customer=invoice.customer,
                              currency=invoice.currency)
            if not contact_id:
                raise PermanentError("the provider returned no contact id")
            self._link_contact(conn.id, links.contact_type, invoice.customer.id, str(contact_id), links.contact_print,
                               task.id)
        elif links.stale:
            # A linked contact whose customer data changed since it was sent is updated once, before the invoice.
            call("update_contact", provider.update_contact, customer=invoice.customer, remote_contact_id=contact_id,
                 currency=invoice.currency)
            with self.engine.begin() as db:
                mapping.set_fingerprint(db, conn.id, links.contact_type, invoice.customer.id, links.contact_print)
        remote = call("push_invoice", provider.push_invoice, invoice=invoice, remote_contact_id=str(contact_id))
        if remote is None or not remote.remote_id:
            raise TransientError("the provider returned no invoice id", uncertain=True)
        return remote

    def _link_contact(self, connection_id: str, contact_type: str, local: str, remote: str, fingerprint: str,
                      task_id: int) -> None:
        with self.engine.begin() as db:
            try:
                mapping.link(db, connection_id, contact_type, local, remote, fingerprint)
            except mapping.MappingConflict as exc:
                # Two host customers sharing one e-mail match one remote contact: push with it, unlinked.
                task_audit(db, task_id, connection_id, "contact_not_linked", str(exc))

    def _complete(self, task: Any, remote: RemoteInvoice) -> bool:
        """Link the invoice, mark the task done and the connection successful: one transaction."""
        now = utcnow()
        t = outbox_tasks.c
        try:
            with self.engine.begin() as db:
                result = db.execute(
                    outbox_tasks.update()
                    .where(t.id == task.id, t.status == TaskStatus.IN_FLIGHT, t.lease_owner == self.worker_id)
                    .values(
                        status=TaskStatus.DONE,
                        remote_id=remote.remote_id,
                        last_error=None,
                        lease_owner=None,
                        lease_until=None,
                        completed_at=now,
                        updated_at=now,
                    )
                )
                if result.rowcount != 1:
                    raise _LeaseLost()
                mapping.link(db, task.connection_id, mapping.INVOICE, task.local_id, remote.remote_id)
                db.execute(
                    connections.update()
                    .where(connections.c.id == task.connection_id)
                    .values(last_success_at=now)
                )
                how = "adopted existing" if remote.adopted else "created"
                number = f" ({remote.remote_number})" if remote.remote_number else ""
                task_audit(db, task.id, task.connection_id, "done", f"{how} remote {remote.remote_id}{number}")
            self._release_dependents(task.connection_id, task.local_id)
            self._apply_waiting_events(task.connection_id, remote.remote_id)
            return True
        except _LeaseLost:
            with self.engine.begin() as db:
                # Another worker took the task over; make sure whoever runs it next looks it up first.
                db.execute(outbox_tasks.update().where(t.id == task.id).values(uncertain=True))
                task_audit(
                    db, task.id, task.connection_id, "late_result",
                    f"remote {remote.remote_id} returned after this worker's lease expired",
                )
            return False
        except mapping.MappingConflict as exc:
            self._fail(task, str(exc), TickStats())
            return False

    def _apply_waiting_events(self, connection_id: str, remote_id: str) -> None:
        """Webhooks that arrived before this invoice was linked are applied now (see inbound.apply_waiting)."""
        try:
            applied = inbound.apply_waiting(self.hub, connection_id, remote_id)
        except Exception as exc:  # the push itself is done; the events stay visible in the inbox
            log.warning("applying waiting events for remote %s failed: %s", remote_id, type(exc).__name__)
            return
        if applied:
            log.info("applied %d event(s) that arrived before remote invoice %s was linked", len(applied), remote_id)
