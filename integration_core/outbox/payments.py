"""Payments and voids out: tasks that depend on an invoice task, pushed exactly once after it.

A payment or void task names its invoice (``parent_id``). Before any provider call the drain checks
that invoice on the same connection:

* linked (its task is done): go on;
* its task still waits (pending, paused, or in flight): the dependent task waits too, without counting
  an attempt, until that task's next attempt; the invoice goes first;
* its task failed or died, or it was never submitted to this connection: the dependent task is **held**
  (``failed`` with a ``held:`` reason that says what to fix). When the invoice's task completes later
  (an operator retried it), held tasks are released to ``pending`` at once.

Exactly-once is the invoice's machinery: ``in_flight`` committed first (``_start``), a payment looked up
by its stable reference (``find_payment``) before any re-create after an uncertain outcome, and the
payment linked in the mapping table in the transaction that marks its task done. A void needs no lookup:
``void_remote_invoice`` is idempotent at the provider, and a done void task is never pushed again.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import attrs
import sqlalchemy as sa

from .. import inbound, mapping
from ..context import ProviderContext
from ..errors import PermanentError, TransientError
from ..models import Connection, Invoice, Payment, RemotePayment, TaskStatus
from ..notices import FETCH
from ..plugins import ProviderHooks
from ..ratelimit import Budget
from ..redact import safe_error
from ..store.schema import UTCDateTime, connections, outbox_tasks, utcnow
from .fetch import FetchTasks
from .finish import _LeaseLost
from .schedule import bulk_audit, task_audit
from .settings import TickStats

log = logging.getLogger(__name__)

HELD = "held: "
_WAITING = (TaskStatus.PENDING, TaskStatus.PAUSED, TaskStatus.IN_FLIGHT)


class _Wait(Exception):
    def __init__(self, until: dt.datetime, reason: str) -> None:
        self.until = until
        self.reason = reason


class _Hold(Exception):
    pass


@attrs.frozen
class _Parent:
    invoice: Invoice
    remote_id: str


_t = outbox_tasks.c
_NOW = sa.bindparam("b_now", type_=UTCDateTime)
_RELEASE_HELD = (
    outbox_tasks.update()
    .where(
        _t.connection_id == sa.bindparam("b_cid"), _t.parent_id == sa.bindparam("b_parent"),
        _t.status == TaskStatus.FAILED, _t.last_error.like(HELD + "%"),
    )
    .values(status=TaskStatus.PENDING, next_attempt_at=_NOW, last_error=None, updated_at=_NOW)
    .returning(_t.id)
)


class DependentTasks(FetchTasks):
    """Payment and void tasks of one worker's drain (a part of :class:`~.drain.Outbound`)."""

    def _process_dependent(
        self,
        conn: Connection,
        ctx: ProviderContext,
        provider: ProviderHooks,
        budget: Budget,
        task: Any,
        stats: TickStats,
    ) -> None:
        if task.entity_type == FETCH:  # a thin notice to fetch: see .fetch
            self._process_fetch(conn, ctx, provider, budget, task, stats)
            return
        try:
            parent = self._parent(conn.id, task)
        except _Wait as wait:
            self._finish(
                task, "waiting", f"{wait.reason}; next look at {wait.until:%H:%M:%S}",
                status=TaskStatus.PENDING, next_attempt_at=wait.until, attempts=outbox_tasks.c.attempts - 1,
            )
            return
        except _Hold as hold:
            self._fail(task, HELD + str(hold), stats)
            return
        if task.entity_type == mapping.PAYMENT:
            try:
                payment = Payment.from_dict(task.payload)
            except (KeyError, TypeError, ValueError) as exc:
                self._fail(task, f"bad payment payload: {safe_error(exc)}", stats)
                return
            remote = self._guarded(
                task, budget, stats, lambda: self._push_payment(conn, ctx, provider, budget, task, payment, parent)
            )
            if remote is not None and self._complete_dependent(task, remote.remote_id, remote.adopted, parent):
                stats.done += 1
                stats.adopted += int(remote.adopted)
            self._settled(task, parent)
            return
        if task.entity_type == mapping.VOID:
            voided = self._guarded(task, budget, stats, lambda: self._push_void(ctx, provider, budget, parent))
            if voided is not None and self._complete_dependent(task, parent.remote_id, False, parent):
                stats.done += 1
            return
        self._fail(task, f"unknown task kind {task.entity_type!r}", stats)

    # --- the invoice a task depends on -------------------------------------------------------------

    def _parent(self, connection_id: str, task: Any) -> _Parent:
        """The linked invoice, or ``_Wait`` while its task is still going, or ``_Hold`` when it cannot go."""
        invoice_id = task.parent_id or task.local_id
        t = outbox_tasks.c
        with self.engine.connect() as db:
            remote = mapping.remote_id(db, connection_id, mapping.INVOICE, invoice_id)
            row = db.execute(
                sa.select(outbox_tasks).where(
                    t.connection_id == connection_id, t.entity_type == mapping.INVOICE, t.local_id == invoice_id
                )
            ).first()
        what = "payment" if task.entity_type == mapping.PAYMENT else "void"
        if row is None:
            raise _Hold(
                f"invoice {invoice_id} was never submitted to this connection; submit it (hub.submit_invoice) "
                f"and this {what} follows"
            )
        if remote is not None:
            try:
                return _Parent(Invoice.from_dict(row.payload), remote)
            except (KeyError, TypeError, ValueError) as exc:
                raise _Hold(f"invoice {invoice_id} has a bad stored payload ({safe_error(exc)})") from None
        if row.status in _WAITING:
            now = utcnow()
            if row.status == TaskStatus.PAUSED:  # the connection needs re-authorization first
                until = now + dt.timedelta(seconds=self.settings.park_seconds)
            else:
                until = row.lease_until if row.status == TaskStatus.IN_FLIGHT else row.next_attempt_at
                until = max(until or now, now) + dt.timedelta(milliseconds=1)  # strictly after the invoice
            raise _Wait(until, f"waiting for invoice {invoice_id} (its task is {row.status})")
        if row.status == TaskStatus.DONE:
            raise _Hold(f"invoice {invoice_id} was pushed but is not linked to a remote invoice")
        raise _Hold(
            f"invoice {invoice_id} {row.status} ({(row.last_error or 'no reason recorded')[:300]}); fix it and "
            f"retry that invoice's task: this {what} follows once it is pushed"
        )

    def _release_held(self, db: sa.Connection, connection_id: str, invoice_id: str) -> int:
        """In the transaction that links an invoice: its held payment and void tasks go back to ``pending``."""
        now = utcnow()
        ids = list(db.execute(_RELEASE_HELD, {"b_cid": connection_id, "b_parent": invoice_id, "b_now": now}).scalars())
        bulk_audit(db, connection_id, ids, "released", f"invoice {invoice_id} is linked now")
        return len(ids)

    # --- pushes ------------------------------------------------------------------------------------

    def _push_payment(
        self,
        conn: Connection,
        ctx: ProviderContext,
        provider: ProviderHooks,
        budget: Budget,
        task: Any,
        payment: Payment,
        parent: _Parent,
    ) -> RemotePayment:
        with self.engine.connect() as db:
            existing = mapping.remote_id(db, conn.id, mapping.PAYMENT, payment.id)
        if existing is not None:
            return RemotePayment(remote_id=existing, adopted=True)
        if payment.currency != parent.invoice.currency:
            raise PermanentError(
                f"payment {payment.id} is in {payment.currency} but invoice {parent.invoice.number} is in "
                f"{parent.invoice.currency}; submit the payment in the invoice's currency"
            )
        # Each call spends its cost from the shared budget first (ratelimit.Budget; WindowFull when no room).
        try:
            if task.attempts > 1 or task.uncertain:
                budget.take("find_payment")
                found = provider.find_payment(ctx=ctx, payment=payment, remote_invoice_id=parent.remote_id)
                if found is not None:
                    return attrs.evolve(found, adopted=True)
                budget.end_call()
            budget.take("push_payment")
            remote = provider.push_payment(
                ctx=ctx, payment=payment, invoice=parent.invoice, remote_invoice_id=parent.remote_id
            )
        finally:
            budget.end_call()
        if remote is None or not remote.remote_id:
            raise TransientError("the provider returned no payment id", uncertain=True)
        return remote

    def _push_void(self, ctx: ProviderContext, provider: ProviderHooks, budget: Budget, parent: _Parent) -> bool:
        budget.take("void_remote_invoice")
        try:
            provider.void_remote_invoice(ctx=ctx, remote_invoice_id=parent.remote_id)
        finally:
            budget.end_call()
        return True

    # --- completion --------------------------------------------------------------------------------

    def _complete_dependent(self, task: Any, remote_id: str, adopted: bool, parent: _Parent) -> bool:
        """Mark the task done (a payment linked too) and the connection successful: one transaction."""
        now = utcnow()
        t = outbox_tasks.c
        try:
            with self.engine.begin() as db:
                result = db.execute(
                    outbox_tasks.update()
                    .where(t.id == task.id, t.status == TaskStatus.IN_FLIGHT, t.lease_owner == self.worker_id)
                    .values(
                        status=TaskStatus.DONE, remote_id=remote_id, last_error=None, lease_owner=None,
                        lease_until=None, completed_at=now, updated_at=now,
                    )
                )
                if result.rowcount != 1:
                    raise _LeaseLost()
                if task.entity_type == mapping.PAYMENT:
                    mapping.link(db, task.connection_id, mapping.PAYMENT, task.local_id, remote_id)
                    detail = f"{'adopted existing' if adopted else 'created'} remote payment {remote_id} on " \
                             f"remote invoice {parent.remote_id}"
                else:
                    detail = f"voided remote invoice {parent.remote_id}"
                db.execute(
                    connections.update().where(connections.c.id == task.connection_id).values(last_success_at=now)
                )
                task_audit(db, task.id, task.connection_id, "done", detail)
            return True
        except _LeaseLost:
            with self.engine.begin() as db:
                db.execute(outbox_tasks.update().where(t.id == task.id).values(uncertain=True))
                task_audit(db, task.id, task.connection_id, "late_result",
                           f"remote {remote_id} returned after this worker's lease expired")
            return False
        except mapping.MappingConflict as exc:
            self._fail(task, str(exc), TickStats())
            return False

    def _settled(self, task: Any, parent: _Parent) -> None:
        """Webhooks about this invoice that waited for this payment's outcome (an echo of our own payment,
        or another payment) are decided now; a task that will be retried keeps them waiting."""
        with self.engine.connect() as db:
            status = db.execute(sa.select(outbox_tasks.c.status).where(outbox_tasks.c.id == task.id)).scalar()
        if status not in (TaskStatus.DONE, TaskStatus.FAILED):
            return
        try:
            inbound.apply_waiting(self.hub, task.connection_id, parent.remote_id)
        except Exception as exc:  # the payment itself is settled; the events stay visible in the inbox
            log.warning("applying waiting events for remote %s failed: %s", parent.remote_id, type(exc).__name__)
