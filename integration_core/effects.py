"""What an inbound event does: the host hooks it calls and the mappings it reads or writes.

Called by the inbox (:mod:`integration_core.inbound`) inside the transaction that stores the event, so the
host's effect, the mappings and the event's status commit together or not at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import mapping, notices
from .errors import IntegrationError
from .models import (
    Connection,
    CustomerCreated,
    Event,
    Ignored,
    InvoicePaid,
    InvoiceVoided,
    Notice,
    PaymentReversed,
    TaskStatus,
)
from .store.db import is_postgres, lock_rows
from .store.schema import connections, outbox_tasks

if TYPE_CHECKING:
    from .hub import Hub

LOOK_UP: Any = object()  # apply()'s local_invoice when the caller has not read it


class Skip(Exception):
    """The effect of an event is "nothing, because <reason>": stored as ``ignored``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HostHookMissing(Exception):
    """No host application implements the hook an event needs; the event waits as ``failed``."""


def failure_reason(exc: Exception) -> str:
    if isinstance(exc, HostHookMissing | IntegrationError):
        return str(exc)[:500]
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"host hook failed: {exc.__class__.__name__}" + (f": {text}" if text else "")


def _host_hook(hub: Hub, name: str) -> Any:
    hook = getattr(hub.plugins.host, name)
    if not hook.get_hookimpls():
        raise HostHookMissing(f"no host application implements {name}; register one with hub.plugins.set_host")
    return hook


def apply(hub: Hub, db: sa.Connection, conn: Connection, event: Event, local_invoice: Any = LOOK_UP) -> str:
    """Apply one event through the host hooks; return an audit detail, or raise ``Skip(reason)``.

    ``local_invoice``: the local invoice an invoice event's remote invoice maps to, when the caller already
    read it in this transaction (the inbox's insert returns it); ``None`` when it is not mapped."""
    if isinstance(event, Ignored):
        raise Skip(event.reason)
    if isinstance(event, Notice):  # a thin event: fetched later by the outbox
        return notices.queue_fetch(db, conn.id, event)
    if isinstance(event, InvoicePaid | InvoiceVoided | PaymentReversed):
        local = (mapping.local_id(db, conn.id, mapping.INVOICE, event.remote_invoice_id)
                 if local_invoice is LOOK_UP else local_invoice)
        if local is None:
            local = _linked_meanwhile(db, conn.id, event.remote_invoice_id)
        if local is None:
            raise Skip(f"invoice {event.remote_invoice_id} was not created from this side (no mapping)")
        if isinstance(event, InvoicePaid):
            return _invoice_paid(hub, db, conn, event, local)
        if isinstance(event, PaymentReversed):
            return _payment_reversed(hub, db, conn, event, local)
        _host_hook(hub, "void_invoice")(tenant_id=conn.tenant_id, environment_id=conn.environment_id, invoice_id=local)
        return f"invoice {local} voided"
    if isinstance(event, CustomerCreated):
        return _customer_created(hub, db, conn, event)
    raise Skip(f"unknown event kind {getattr(event, 'kind', '?')}")


def _linked_meanwhile(db: sa.Connection, connection_id: str, remote_invoice_id: str) -> str | None:
    """The local invoice, when its link was committing while this event was read as unlinked.

    The outbox links an invoice in a transaction that updates the connection row and only then reads the
    events that wait for the link (``outbox/invoices.py`` ``_complete``). Under PostgreSQL's READ COMMITTED
    neither transaction sees the other's uncommitted rows: without an order, this event could be stored
    ``ignored`` while the link's transaction missed it, and the payment would never reach the host. Waiting
    for a shared lock on the connection row orders the two. Either the link commits first and is read again
    here, or this event commits first and the outbox reads it and applies it (``apply_waiting``). SQLite
    needs none of this: ``BEGIN IMMEDIATE`` already runs writers one at a time."""
    if not is_postgres(db):
        return None
    db.execute(lock_rows(db, sa.select(connections.c.id).where(connections.c.id == connection_id), shared=True))
    return mapping.local_id(db, connection_id, mapping.INVOICE, remote_invoice_id)


def _invoice_paid(hub: Hub, db: sa.Connection, conn: Connection, event: InvoicePaid, local: str) -> str:
    if event.remote_payment_id:
        ours = mapping.local_id(db, conn.id, mapping.PAYMENT, event.remote_payment_id)
        if ours is not None:  # no echo: the host recorded this payment and submitted it
            raise Skip(f"payment {event.remote_payment_id} was pushed from this side (host payment {ours})")
        pushing = _payment_in_doubt(db, conn.id, local)
        if pushing is not None:
            # Our own push of a payment to this invoice has no known outcome yet: this may be its echo.
            # Decided again (apply_waiting) when that task is done or failed.
            raise Skip(f"waiting: payment {pushing} to invoice {local} is being pushed from this side; "
                        f"decided when that push ends")
    _host_hook(hub, "record_payment")(
        tenant_id=conn.tenant_id,
        environment_id=conn.environment_id,
        invoice_id=local,
        amount=event.amount,
        currency=event.currency,
        paid_on=event.paid_on,
        payment_key=event.dedupe_key,
    )
    detail = f"payment {event.amount} {event.currency or ''} recorded on invoice {local}".replace("  ", " ")
    if event.paid_on_source:
        detail += f"; paid on {event.paid_on.isoformat()} taken from the {event.paid_on_source} (no payment date)"
    return detail


def _payment_in_doubt(db: sa.Connection, connection_id: str, invoice_id: str) -> str | None:
    """A payment task of this invoice whose remote outcome is unknown: in flight, or retried after an
    uncertain attempt."""
    t = outbox_tasks.c
    return db.execute(
        sa.select(t.local_id)
        .where(
            t.connection_id == connection_id,
            t.entity_type == mapping.PAYMENT,
            t.parent_id == invoice_id,
            sa.or_(
                t.status == TaskStatus.IN_FLIGHT,
                sa.and_(t.uncertain.is_(True), t.status.in_((TaskStatus.PENDING, TaskStatus.PAUSED))),
            ),
        )
        .limit(1)
    ).scalar_one_or_none()


def _payment_reversed(hub: Hub, db: sa.Connection, conn: Connection, event: PaymentReversed, local: str) -> str:
    ours = mapping.local_id(db, conn.id, mapping.PAYMENT, event.remote_payment_id)
    payment_key = ours if ours is not None else event.payment_key
    _host_hook(hub, "reverse_payment")(
        tenant_id=conn.tenant_id,
        environment_id=conn.environment_id,
        invoice_id=local,
        payment_key=payment_key,
        amount=event.amount,
        reason=event.reason,
        reversal_key=event.dedupe_key,
    )
    return f"payment {payment_key} on invoice {local} {event.reason}: {event.amount} taken back"


def _customer_created(hub: Hub, db: sa.Connection, conn: Connection, event: CustomerCreated) -> str:
    if not _customers_inbound(db, conn):
        raise Skip("customer inbound sync is off")
    linked = mapping.customer_for_remote(db, conn.id, event.remote_customer_id)
    if linked is not None:
        raise Skip(f"remote customer {event.remote_customer_id} is already linked to host customer {linked}")
    local = None
    if event.email:
        local = _host_hook(hub, "find_customer_by_email")(
            tenant_id=conn.tenant_id, environment_id=conn.environment_id, email=event.email
        )
    if local is not None:
        other = mapping.remote_id(db, conn.id, mapping.CUSTOMER, str(local))
        if other is not None and other != event.remote_customer_id:
            raise Skip(
                f"host customer {local} (same email) is already linked to remote customer {other}; not linked twice"
            )
        mapping.link(db, conn.id, mapping.CUSTOMER, str(local), event.remote_customer_id)
        return f"linked remote customer {event.remote_customer_id} to existing host customer {local} (same email)"
    created = _host_hook(hub, "create_customer")(
        tenant_id=conn.tenant_id, environment_id=conn.environment_id, name=event.name, email=event.email
    )
    if created is None:
        raise HostHookMissing("the host's create_customer returned no customer id")
    mapping.link(db, conn.id, mapping.CUSTOMER, str(created), event.remote_customer_id)
    return f"created host customer {created} for remote customer {event.remote_customer_id}"


def _customers_inbound(db: sa.Connection, conn: Connection) -> bool:
    """Read fresh (settings may have changed since the dispatcher loaded the connection), and on the
    same database connection: on SQLite a second one would wait for the write lock this one holds."""
    value = db.execute(
        sa.select(connections.c.customers_inbound).where(connections.c.id == conn.id)
    ).scalar_one_or_none()
    return conn.sync.customers_inbound if value is None else bool(value)
