"""Invoice tasks: push one invoice (its contact first when needed) and complete it in one transaction.

Per pushed invoice the database sees two transactions: the start (:mod:`.start`: in flight, links, budget)
and the completion here (done, linked, the connection's success, held payments released, and the webhook
events that waited for this link read). Only when such events exist are they applied afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import attrs
import sqlalchemy as sa

from .. import inbound, mapping
from ..context import ProviderContext
from ..errors import PermanentError, TransientError
from ..models import Connection, Invoice, RemoteInvoice, TaskStatus
from ..plugins import ProviderHooks
from ..ratelimit import Budget
from ..redact import safe_error
from ..store.schema import UTCDateTime, connections, outbox_tasks, utcnow
from .calls import Started
from .finish import _LeaseLost, _StopBatch
from .payments import DependentTasks
from .schedule import task_audit
from .settings import TickStats
from .start import TaskStart

log = logging.getLogger("integration_core.outbox.drain")

_t = outbox_tasks.c
_NOW = sa.bindparam("b_now", type_=UTCDateTime)
_DONE = (
    outbox_tasks.update()
    .where(_t.id == sa.bindparam("b_id"), _t.status == TaskStatus.IN_FLIGHT, _t.lease_owner == sa.bindparam("b_owner"))
    .values(
        status=TaskStatus.DONE, remote_id=sa.bindparam("b_remote"), last_error=None, lease_owner=None,
        lease_until=None, completed_at=_NOW, updated_at=_NOW,
    )
)
_SUCCESS = connections.update().where(connections.c.id == sa.bindparam("b_cid")).values(last_success_at=_NOW)


class InvoiceTasks(TaskStart, DependentTasks):
    """Tasks of kind ``invoice`` of one worker's drain (a part of :class:`~.drain.Outbound`)."""

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
        invoice = started.invoice
        if invoice is None:
            try:  # parsed once already: this only words the error
                invoice = Invoice.from_dict(task.payload)
            except (KeyError, TypeError, ValueError) as exc:  # the stored payload is bad: retrying cannot help
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
        """Link the invoice, mark the task done and the connection successful, release the invoice's held
        payments and read the webhook events that waited for this link: one transaction."""
        now = utcnow()
        t = outbox_tasks.c
        try:
            with self.engine.begin() as db:
                result = db.execute(_DONE, {"b_id": task.id, "b_owner": self.worker_id, "b_remote": remote.remote_id,
                                            "b_now": now})
                if result.rowcount != 1:
                    raise _LeaseLost()
                mapping.link_new(db, task.connection_id, mapping.INVOICE, task.local_id, remote.remote_id)
                # Before the waiting events are read: an event stored meanwhile as unlinked waits for this row's
                # lock and then sees the link, or committed first and is read below (effects._linked_meanwhile).
                db.execute(_SUCCESS, {"b_cid": task.connection_id, "b_now": now})
                how = "adopted existing" if remote.adopted else "created"
                number = f" ({remote.remote_number})" if remote.remote_number else ""
                task_audit(db, task.id, task.connection_id, "done", f"{how} remote {remote.remote_id}{number}")
                self._release_held(db, task.connection_id, task.local_id)
                waiting = inbound.waiting_events(db, task.connection_id, remote.remote_id)
            if waiting:
                self._apply_waiting_events(task.connection_id, remote.remote_id, waiting)
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

    def _apply_waiting_events(self, connection_id: str, remote_id: str, ids: Sequence[int]) -> None:
        """Webhooks that arrived before this invoice was linked are applied now (see inbound.apply_waiting)."""
        try:
            applied = inbound.apply_waiting(self.hub, connection_id, remote_id, ids)
        except Exception as exc:  # the push itself is done; the events stay visible in the inbox
            log.warning("applying waiting events for remote %s failed: %s", remote_id, type(exc).__name__)
            return
        if applied:
            log.info("applied %d event(s) that arrived before remote invoice %s was linked", len(applied), remote_id)
