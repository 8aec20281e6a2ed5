"""Submitting: a host hands an invoice, a payment or a void over, one task per connection that syncs out.

Exactly-once starts here: one task per ``(connection, "invoice", invoice id)`` (a unique constraint); a
resubmission updates that task and never makes a second one that could create a second invoice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from ..mapping import INVOICE, PAYMENT, VOID
from ..models import ConnectionStatus, Invoice, Payment, TaskStatus
from ..store.db import lock_rows
from ..store.schema import connections, outbox_tasks, utcnow
from .schedule import task_audit, wake

if TYPE_CHECKING:
    from ..hub import Hub


class SubmitOutcome(StrEnum):
    """What a submission did for one connection."""

    QUEUED = "queued"  # a new task
    UPDATED = "updated"  # changed snapshot replaced a task that had not been pushed yet
    UNCHANGED = "unchanged"  # same snapshot as the waiting task: only ``submissions`` counted
    IN_FLIGHT = "in_flight"  # being pushed right now: left alone (a changed snapshot is audited)
    ALREADY_SYNCED = "already_synced"  # done: never pushed again (a changed snapshot is audited)


@attrs.frozen
class ConnectionOutcome:
    connection_id: str
    provider: str
    task_id: int
    outcome: SubmitOutcome
    status: TaskStatus
    changed: bool = False  # the snapshot differs from the stored one


@attrs.frozen
class SubmitResult:
    """Per-connection outcome of a submission (empty when no connection syncs out).

    ``invoice_id`` is the submitted entity's local id (the invoice's, the payment's, or the voided
    invoice's); ``kind`` says which."""

    invoice_id: str
    outcomes: tuple[ConnectionOutcome, ...] = ()
    kind: str = "invoice"

    @property
    def queued(self) -> list[ConnectionOutcome]:
        return [o for o in self.outcomes if o.outcome == SubmitOutcome.QUEUED]

    @property
    def changed_after_sync(self) -> list[ConnectionOutcome]:
        """Connections where the invoice was already pushed and the new snapshot differs from it."""
        return [
            o for o in self.outcomes
            if o.changed and o.outcome in (SubmitOutcome.ALREADY_SYNCED, SubmitOutcome.IN_FLIGHT)
        ]

    def for_connection(self, connection_id: str) -> ConnectionOutcome | None:
        return next((o for o in self.outcomes if o.connection_id == connection_id), None)


def payload_hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def submit_invoice(hub: Hub, tenant_id: str, environment_id: str, invoice: Invoice) -> SubmitResult:
    """Queue ``invoice`` for each connection of the tenant/environment that syncs invoices out.

    One transaction. Safe under concurrent submits of the same invoice: the unique key decides, and
    the loser of an INSERT race updates the winner's task instead.
    """
    return submit_entity(hub, tenant_id, environment_id, INVOICE, invoice.id, invoice.to_dict())


def submit_payment(hub: Hub, tenant_id: str, environment_id: str, payment: Payment) -> SubmitResult:
    """Queue ``payment`` (one task per connection, keyed by the payment's id) after its invoice's task.

    The drain pushes it once the invoice is in the remote system (see :mod:`.payments`)."""
    if not isinstance(payment, Payment):
        raise TypeError(f"submit_payment takes a models.Payment, got {type(payment).__name__}")
    return submit_entity(
        hub, tenant_id, environment_id, PAYMENT, payment.id, payment.to_dict(), parent_id=payment.invoice_id
    )


def submit_void(hub: Hub, tenant_id: str, environment_id: str, invoice_id: str) -> SubmitResult:
    """Queue the void of the remote invoice for ``invoice_id`` (one task per connection, pushed once,
    after any pending push of that invoice)."""
    if not isinstance(invoice_id, str) or not invoice_id.strip():
        raise ValueError("submit_void needs the id of an invoice submitted before")
    return submit_entity(
        hub, tenant_id, environment_id, VOID, invoice_id, {"invoice_id": invoice_id}, parent_id=invoice_id
    )


def submit_entity(
    hub: Hub,
    tenant_id: str,
    environment_id: str,
    entity_type: str,
    local_id: str,
    payload: dict[str, Any],
    *,
    parent_id: str | None = None,
) -> SubmitResult:
    """One task of ``entity_type`` per syncing connection; a resubmission updates it (see the table in
    docs/architecture.md)."""
    digest = payload_hash(payload)
    now = utcnow()
    c = connections.c
    outcomes: list[ConnectionOutcome] = []
    with hub.engine.begin() as db:
        targets = db.execute(
            sa.select(c.id, c.provider, c.status)
            .where(
                c.tenant_id == tenant_id,
                c.environment_id == environment_id,
                c.invoices_outbound.is_(True),
                c.status != ConnectionStatus.DISABLED,
            )
            .order_by(c.id)  # one lock order for every submitter: no deadlocks between them
        ).fetchall()
        for target in targets:
            outcome = _submit_one(db, target, entity_type, local_id, payload, digest, now, parent_id)
            outcomes.append(outcome)
            if outcome.outcome in (SubmitOutcome.QUEUED, SubmitOutcome.UPDATED):
                wake(db, target.id, now)
    return SubmitResult(invoice_id=local_id, outcomes=tuple(outcomes), kind=entity_type)


def _select_task(db: sa.Connection, connection_id: str, entity_type: str, local_id: str) -> Any:
    t = outbox_tasks.c
    query = sa.select(outbox_tasks).where(
        t.connection_id == connection_id, t.entity_type == entity_type, t.local_id == local_id
    )
    return db.execute(lock_rows(db, query)).first()


def _submit_one(
    db: sa.Connection,
    target: Any,
    entity_type: str,
    local_id: str,
    payload: dict[str, Any],
    digest: str,
    now: dt.datetime,
    parent_id: str | None,
) -> ConnectionOutcome:
    task = _select_task(db, target.id, entity_type, local_id)
    if task is None:
        status = TaskStatus.PAUSED if target.status == ConnectionStatus.NEEDS_REAUTH else TaskStatus.PENDING
        try:
            with db.begin_nested():
                task_id = db.execute(
                    outbox_tasks.insert().values(
                        connection_id=target.id,
                        entity_type=entity_type,
                        local_id=local_id,
                        parent_id=parent_id,
                        payload=payload,
                        payload_hash=digest,
                        status=status,
                        attempts=0,
                        submissions=1,
                        next_attempt_at=now,
                        uncertain=False,
                        created_at=now,
                        updated_at=now,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
        except sa.exc.IntegrityError:
            task = _select_task(db, target.id, entity_type, local_id)  # a concurrent submit won the insert
            if task is None:
                raise
        else:
            task_audit(db, task_id, target.id, "queued", f"{entity_type} {local_id} ({status})")
            return ConnectionOutcome(target.id, target.provider, task_id, SubmitOutcome.QUEUED, status)

    t = outbox_tasks.c
    changed = task.payload_hash != digest
    values: dict[str, Any] = {"submissions": t.submissions + 1, "updated_at": now}
    if task.status in (TaskStatus.DONE, TaskStatus.IN_FLIGHT):
        outcome = SubmitOutcome.ALREADY_SYNCED if task.status == TaskStatus.DONE else SubmitOutcome.IN_FLIGHT
        action = "resubmitted"
        detail = None
        if changed:
            action = "changed_after_sync"
            detail = (
                "changed after sync; not re-pushed"
                if task.status == TaskStatus.DONE
                else "changed while being pushed; not re-pushed"
            )
        status = task.status
    elif not changed:
        outcome, action, detail, status = SubmitOutcome.UNCHANGED, "resubmitted", None, task.status
    else:
        # Not pushed yet (pending, paused) or stopped (failed, dead): the new snapshot replaces the old
        # one. A failed or dead task is requeued, since new data is what an operator fixes it with; it
        # keeps ``attempts`` so the next push looks the invoice up first.
        status = task.status
        if status in (TaskStatus.FAILED, TaskStatus.DEAD):
            status = TaskStatus.PENDING
            values.update(next_attempt_at=now, uncertain=sa.or_(t.uncertain, t.attempts > 0))
        values.update(payload=payload, payload_hash=digest, status=status)
        outcome, action, detail = SubmitOutcome.UPDATED, "updated", f"new snapshot ({task.status} → {status})"
    db.execute(outbox_tasks.update().where(t.id == task.id).values(**values))
    task_audit(db, task.id, target.id, action, detail)
    return ConnectionOutcome(target.id, target.provider, task.id, outcome, status, changed)
