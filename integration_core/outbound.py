"""The outbox: submit invoices, claim connections with due work, push each invoice exactly once.

Exactly-once rests on three things:

* one task per ``(connection, "invoice", invoice id)`` (a unique constraint; resubmission updates it);
* a task is marked ``in_flight`` and committed *before* the provider is called, so any crash leaves a
  visible trace, and every later attempt (or an ``uncertain`` one) looks the invoice up by its stable
  reference before creating it;
* the remote id is linked in the mapping table in the same transaction that marks the task done.

Connections are the unit of scheduling: ``connections.next_due_at`` (indexed) holds the earliest due
task, and a tick claims a few due connections with a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL),
so its cost follows the due work, never the number of connections.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import random
import re
import socket
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import sqlalchemy as sa

from . import audit, mapping
from .errors import AuthError, NotFoundError, PermanentError, RateLimitedError, TransientError
from .mapping import INVOICE
from .models import ConnectionStatus, Invoice, RateLimit, RemoteInvoice
from .ratelimit import Budget
from .store.db import is_postgres
from .store.schema import audit_log, connections, outbox_tasks, utcnow
from .tasks import TaskStatus, get_task

log = logging.getLogger(__name__)

class Outcome:
    """What a submission did for one connection."""

    QUEUED = "queued"  # a new task
    UNCHANGED = "unchanged"  # same snapshot as the waiting task: only ``submissions`` counted
    UPDATED = "updated"  # changed snapshot replaced a task that had not been pushed yet
    IN_FLIGHT = "in_flight"  # being pushed right now: left alone (a changed snapshot is audited)
    ALREADY_SYNCED = "already_synced"  # done: never pushed again (a changed snapshot is audited)


@attrs.frozen
class ConnectionOutcome:
    connection_id: str
    provider: str
    task_id: int
    outcome: str
    status: str
    changed: bool = False  # the snapshot differs from the stored one


@attrs.frozen
class SubmitResult:
    """Per-connection outcome of :func:`submit_invoice` (empty when no connection syncs invoices)."""

    invoice_id: str
    outcomes: tuple[ConnectionOutcome, ...] = ()

    @property
    def queued(self) -> list[ConnectionOutcome]:
        return [o for o in self.outcomes if o.outcome == Outcome.QUEUED]

    @property
    def changed_after_sync(self) -> list[ConnectionOutcome]:
        """Connections where the invoice was already pushed and the new snapshot differs from it."""
        return [o for o in self.outcomes if o.changed and o.outcome in (Outcome.ALREADY_SYNCED, Outcome.IN_FLIGHT)]

    def for_connection(self, connection_id: str) -> ConnectionOutcome | None:
        return next((o for o in self.outcomes if o.connection_id == connection_id), None)


def payload_hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _task_audit(db: sa.Connection, task_id: int, connection_id: str, action: str, detail: str | None = None) -> None:
    audit.record(db, "task", task_id, action, detail, connection_id=connection_id)


# --- submit ---------------------------------------------------------------------------------------------


def submit_invoice(hub: Any, tenant_id: str, environment_id: str, invoice: Invoice) -> SubmitResult:
    """Queue ``invoice`` for each connection of the tenant/environment that syncs invoices out.

    One transaction. Safe under concurrent submits of the same invoice: the unique key decides, and
    the loser of an INSERT race updates the winner's task instead.
    """
    payload = invoice.to_dict()
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
            outcome = _submit_one(db, hub.engine, target, invoice.id, payload, digest, now)
            outcomes.append(outcome)
            if outcome.outcome in (Outcome.QUEUED, Outcome.UPDATED):
                _wake(db, target.id, now)
    return SubmitResult(invoice_id=invoice.id, outcomes=tuple(outcomes))


def _select_task(db: sa.Connection, engine: sa.Engine, connection_id: str, local_id: str) -> Any:
    t = outbox_tasks.c
    query = sa.select(outbox_tasks).where(
        t.connection_id == connection_id, t.entity_type == INVOICE, t.local_id == local_id
    )
    if is_postgres(engine):
        query = query.with_for_update()
    return db.execute(query).first()


def _submit_one(
    db: sa.Connection,
    engine: sa.Engine,
    target: Any,
    local_id: str,
    payload: dict[str, Any],
    digest: str,
    now: dt.datetime,
) -> ConnectionOutcome:
    task = _select_task(db, engine, target.id, local_id)
    if task is None:
        status = TaskStatus.PAUSED if target.status == ConnectionStatus.NEEDS_REAUTH else TaskStatus.PENDING
        try:
            with db.begin_nested():
                task_id = db.execute(
                    outbox_tasks.insert().values(
                        connection_id=target.id,
                        entity_type=INVOICE,
                        local_id=local_id,
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
            task = _select_task(db, engine, target.id, local_id)  # a concurrent submit won the insert
            if task is None:
                raise
        else:
            _task_audit(db, task_id, target.id, "queued", f"invoice {local_id} ({status})")
            return ConnectionOutcome(target.id, target.provider, task_id, Outcome.QUEUED, status)

    t = outbox_tasks.c
    changed = task.payload_hash != digest
    values: dict[str, Any] = {"submissions": t.submissions + 1, "updated_at": now}
    if task.status in (TaskStatus.DONE, TaskStatus.IN_FLIGHT):
        outcome = Outcome.ALREADY_SYNCED if task.status == TaskStatus.DONE else Outcome.IN_FLIGHT
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
        outcome, action, detail, status = Outcome.UNCHANGED, "resubmitted", None, task.status
    else:
        # Not pushed yet (pending, paused) or stopped (failed, dead): the new snapshot replaces the old
        # one. A failed or dead task is requeued, since new data is what an operator fixes it with; it
        # keeps ``attempts`` so the next push looks the invoice up first.
        status = task.status
        if status in (TaskStatus.FAILED, TaskStatus.DEAD):
            status = TaskStatus.PENDING
            values.update(next_attempt_at=now, uncertain=sa.or_(t.uncertain, t.attempts > 0))
        values.update(payload=payload, payload_hash=digest, status=status)
        outcome, action, detail = Outcome.UPDATED, "updated", f"new snapshot ({task.status} → {status})"
    db.execute(outbox_tasks.update().where(t.id == task.id).values(**values))
    _task_audit(db, task.id, target.id, action, detail)
    return ConnectionOutcome(target.id, target.provider, task.id, outcome, status, changed)


def _wake(db: sa.Connection, connection_id: str, due: dt.datetime) -> None:
    """Move the connection's ``next_due_at`` earlier to ``due`` (never later)."""
    c = connections.c
    db.execute(
        connections.update()
        .where(c.id == connection_id, sa.or_(c.next_due_at.is_(None), c.next_due_at > due))
        .values(next_due_at=due)
    )


def _min_pending(db: sa.Connection, connection_id: str) -> dt.datetime | None:
    t = outbox_tasks.c
    query = sa.select(sa.func.min(t.next_attempt_at))
    return db.execute(query.where(t.connection_id == connection_id, t.status == TaskStatus.PENDING)).scalar()


def recompute_due(
    db: sa.Connection, engine: sa.Engine, connection_id: str, *, not_before: dt.datetime | None = None
) -> dt.datetime | None:
    """Set ``next_due_at`` from the connection's tasks (an index range read), never before ``not_before``.

    The connection row is locked first, so a concurrent submit either is seen here or applies its own
    ``_wake`` after us: a wake-up is never lost.
    """
    c = connections.c
    t = outbox_tasks.c
    lock = sa.select(c.id).where(c.id == connection_id)
    if is_postgres(engine):
        lock = lock.with_for_update()
    db.execute(lock)
    pending = _min_pending(db, connection_id)
    in_flight = db.execute(
        sa.select(sa.func.min(t.lease_until)).where(t.connection_id == connection_id, t.status == TaskStatus.IN_FLIGHT)
    ).scalar()
    candidates = [d for d in (pending, in_flight) if d is not None]
    due = min(candidates) if candidates else None
    if due is not None and not_before is not None and due < not_before:
        due = not_before
    db.execute(connections.update().where(c.id == connection_id).values(next_due_at=due))
    return due


# --- drain ----------------------------------------------------------------------------------------------


@attrs.frozen
class OutboundSettings:
    """Tuning of the drain. Defaults suit production; tests shrink the times."""

    max_connections: int = 10  # connections claimed per tick
    batch_size: int = 50  # tasks per connection per tick (fairness bound)
    lease_seconds: float = 300.0  # must exceed the longest provider call (HTTP timeouts)
    backoff_base: float = 2.0
    backoff_cap: float = 3600.0
    max_attempts: int = 8
    park_seconds: float = 300.0  # re-check interval of a connection that cannot push (disabled, reauth)
    rate_chunk: int = 5  # calls reserved from the shared window at a time
    # Worst-case API requests per hook call, reserved before each call (contact lookup + create, etc.).
    call_costs: Mapping[str, int] = attrs.field(
        factory=lambda: {"upsert_contact": 2, "find_invoice": 1, "push_invoice": 2}
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OutboundSettings:
        """Overrides from ``IC_OUTBOUND_<FIELD>`` variables, e.g. ``IC_OUTBOUND_BATCH_SIZE=100``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            raw = env.get(f"IC_OUTBOUND_{field.name.upper()}")
            if raw is None or field.name == "call_costs":
                continue
            values[field.name] = float(raw) if field.type in ("float", float) else int(raw)
        return cls(**values)


@attrs.define
class TickStats:
    """What one tick did; ``claimed`` is the number of connection rows the claim query locked."""

    claimed: int = 0
    attempted: int = 0
    done: int = 0
    adopted: int = 0
    retrying: int = 0
    failed: int = 0
    dead: int = 0
    paused: int = 0
    rate_limited: int = 0
    parked: int = 0
    resumed: int = 0

    def add(self, other: TickStats) -> None:
        for field in attrs.fields(TickStats):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


_SECRETISH = re.compile(
    r"(?i)(access_token|refresh_token|client_secret|api_key|password|authorization|token|secret)"
    r"(\"?\s*[:=]\s*\"?)([^\s\"&,;]+)"
)


def safe_error(exc: BaseException) -> str:
    """A loggable one-line description: type and message, with anything token-like redacted."""
    text = f"{type(exc).__name__}: {exc}"
    text = re.sub(r"(?i)(bearer|[\w-]*oauthtoken)\s+[^\s\"',;]+", r"\1 [redacted]", text)
    text = _SECRETISH.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", text)
    return text[:1000]


class _StopBatch(Exception):
    def __init__(self, not_before: dt.datetime | None = None, *, park: bool = False) -> None:
        self.not_before = not_before
        self.park = park  # the connection cannot push any more (credentials refused)


class Outbound:
    """One worker's drain loop. Safe to run in many processes on one PostgreSQL database."""

    def __init__(
        self,
        hub: Any,
        worker_id: str | None = None,
        settings: OutboundSettings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.hub = hub
        self.engine: sa.Engine = hub.engine
        self.worker_id = worker_id or default_worker_id()
        self.settings = settings or OutboundSettings()
        self.rng = rng or random.Random()

    # --- claiming ---------------------------------------------------------------------------------

    def claim(self, max_connections: int) -> list[str]:
        """Lease up to ``max_connections`` due connections, earliest ``next_due_at`` first."""
        now = utcnow()
        c = connections.c
        query = (
            sa.select(c.id)
            .where(c.next_due_at <= now, sa.or_(c.lease_owner.is_(None), c.lease_until < now))
            .order_by(c.next_due_at)
            .limit(max_connections)
        )
        if is_postgres(self.engine):
            query = query.with_for_update(skip_locked=True)
        with self.engine.begin() as db:
            ids = list(db.execute(query).scalars())
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

    def release(self, connection_id: str, *, not_before: dt.datetime | None = None) -> None:
        """Recompute when the connection is next due and give its lease back."""
        c = connections.c
        with self.engine.begin() as db:
            owner = db.execute(sa.select(c.lease_owner).where(c.id == connection_id)).scalar_one_or_none()
            if owner != self.worker_id:
                return  # the lease expired and another worker owns the connection now
            due = recompute_due(db, self.engine, connection_id, not_before=not_before)
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
        """Claim due connections and push a bounded batch of each one's due tasks."""
        stats = TickStats()
        ids = self.claim(max_connections or self.settings.max_connections)
        stats.claimed = len(ids)
        for connection_id in ids:
            try:
                stats.add(self.drain_connection(connection_id, batch_size or self.settings.batch_size))
            except Exception:
                log.exception("draining connection %s failed; its lease will expire", connection_id)
        return stats

    def drain_connection(self, connection_id: str, batch_size: int) -> TickStats:
        """Process up to ``batch_size`` due tasks of a connection this worker has leased."""
        stats = TickStats()
        now = utcnow()
        with self.engine.begin() as db:
            if not self._renew(db, connection_id, now):
                return stats
            row = db.execute(sa.select(connections).where(connections.c.id == connection_id)).first()
        if row is None:
            return stats
        if row.status != ConnectionStatus.ACTIVE:
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
                stats.resumed += _resume_paused(db, connection_id, utcnow())
            ctx = self.hub.context(connection_id)
            conn = ctx.record
            provider = self.hub.provider(conn.provider)
            budget = Budget(
                self.engine, connection_id, _rate_limit(provider, ctx), self.settings.rate_chunk,
                min_requests=sum(self.settings.call_costs.values()),
            )
            for task_id in self._due_tasks(connection_id, batch_size, utcnow()):
                self._process(conn, ctx, provider, budget, task_id, stats)
        except _StopBatch as stop:
            not_before, park = stop.not_before, stop.park
        finally:
            if budget is not None:
                budget.refund()
            if park:
                self._park(connection_id, ConnectionStatus.NEEDS_REAUTH, stats)
            else:
                self.release(connection_id, not_before=not_before)
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
            orphaned = db.execute(
                sa.select(t.id)
                .where(t.connection_id == connection_id, t.status == TaskStatus.IN_FLIGHT, t.lease_until < now)
                .order_by(t.lease_until, t.id)
                .limit(batch_size)
            ).scalars()
            # Orphans (a worker died mid-push) first: they are the oldest work and need the lookup.
            return (list(orphaned) + list(pending))[:batch_size]

    def _park(self, connection_id: str, status: str, stats: TickStats) -> None:
        """A connection that cannot push (disabled, needs re-authorization): pause, re-check later.

        Parking, rather than clearing ``next_due_at``, means a connection re-activated by any code path
        is picked up again within ``park_seconds`` (``resume_paused`` makes it immediate).
        """
        now = utcnow()
        c = connections.c
        with self.engine.begin() as db:
            if status == ConnectionStatus.NEEDS_REAUTH:
                stats.paused += _pause_all(db, connection_id, "connection needs re-authorization")
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

    def _start(self, task_id: int, connection_id: str) -> Any:
        """Mark the task in flight and COMMIT before any provider call: a crash after this is visible."""
        now = utcnow()
        t = outbox_tasks.c
        with self.engine.begin() as db:
            row = db.execute(sa.select(outbox_tasks).where(t.id == task_id)).first()
            if row is None:
                return None
            orphan = row.status == TaskStatus.IN_FLIGHT
            result = db.execute(
                outbox_tasks.update()
                .where(
                    t.id == task_id,
                    sa.or_(
                        t.status == TaskStatus.PENDING,
                        sa.and_(t.status == TaskStatus.IN_FLIGHT, t.lease_until < now),
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
            detail = f"attempt {row.attempts + 1} by {self.worker_id}"
            if orphan:
                detail += f"; previous attempt by {row.lease_owner} abandoned (lease expired), outcome uncertain"
            _task_audit(db, task_id, connection_id, "in_flight", detail)
            return db.execute(sa.select(outbox_tasks).where(t.id == task_id)).first()

    def _cost(self, name: str) -> int:
        return self.settings.call_costs.get(name, 1)

    def _process(
        self, conn: Any, ctx: Any, provider: Any, budget: Budget, task_id: int, stats: TickStats
    ) -> None:
        task = self._start(task_id, conn.id)
        if task is None:
            return
        stats.attempted += 1
        try:
            invoice = Invoice.from_dict(task.payload)
        except (KeyError, TypeError, ValueError) as exc:  # the stored payload itself is bad: retrying cannot help
            self._fail(task, f"bad invoice payload: {safe_error(exc)}", stats)
            return
        try:
            remote = self._push(conn, ctx, provider, budget, task, invoice)
        except _RateWindowFull as full:
            self._requeue(task, full.retry_at, "rate window full", count_attempt=False)
            stats.rate_limited += 1
            raise _StopBatch(full.retry_at) from None
        except RateLimitedError as exc:
            wait = exc.retry_after if exc.retry_after is not None else _window(budget.limit)
            until = utcnow() + dt.timedelta(seconds=max(wait, 0.0))
            self._requeue(task, until, safe_error(exc), count_attempt=exc.uncertain, uncertain=exc.uncertain)
            stats.rate_limited += 1
            raise _StopBatch(until) from None
        except TransientError as exc:
            self._retry_or_die(task, safe_error(exc), exc.uncertain, stats, retry_after=exc.retry_after)
            raise _StopBatch() from None
        except AuthError as exc:
            self._auth_failed(task, safe_error(exc), stats)
            raise _StopBatch(park=True) from None
        except (PermanentError, mapping.MappingConflict) as exc:
            self._fail(task, getattr(exc, "message", None) or str(exc), stats)
            return
        except Exception as exc:
            # Unknown failure: we cannot tell whether the remote applied the write, so look up first.
            log.warning("task %s: unexpected %s", task.id, type(exc).__name__)
            self._retry_or_die(task, safe_error(exc), True, stats)
            raise _StopBatch() from None
        if self._complete(task, remote):
            stats.done += 1
            stats.adopted += int(remote.adopted)

    def _push(
        self, conn: Any, ctx: Any, provider: Any, budget: Budget, task: Any, invoice: Invoice
    ) -> RemoteInvoice:
        with self.engine.connect() as db:
            existing = mapping.remote_id(db, conn.id, mapping.INVOICE, invoice.id)
            contact_id = mapping.remote_id(db, conn.id, mapping.CUSTOMER, invoice.customer.id)
        if existing is not None:  # linked already (e.g. an earlier attempt committed it): nothing to call
            return RemoteInvoice(remote_id=existing, adopted=True)
        lookup = task.attempts > 1 or task.uncertain
        # The whole task's calls are reserved at once: a task never stops half-way for the rate window,
        # so a small window cannot livelock on the first call of every task.
        cost = self._cost("push_invoice") + (self._cost("find_invoice") if lookup else 0)
        cost += self._cost("upsert_contact") if contact_id is None else 0
        if not budget.take(cost):
            raise _RateWindowFull(budget.retry_at)
        made_before = ctx.requests_made
        try:
            if lookup:
                found = provider.find_invoice(connection=ctx, invoice=invoice)
                if found is not None:
                    return attrs.evolve(found, adopted=True)
            if contact_id is None:
                contact_id = provider.upsert_contact(connection=ctx, customer=invoice.customer)
                if not contact_id:
                    raise PermanentError("the provider returned no contact id")
                self._link_contact(conn.id, invoice.customer.id, str(contact_id), task.id)
            remote = provider.push_invoice(connection=ctx, invoice=invoice, remote_contact_id=str(contact_id))
        finally:
            # A provider that reports its requests gets the unused part of the worst case back.
            if ctx.metered:
                budget.settle(cost, ctx.requests_made - made_before)
        if remote is None or not remote.remote_id:
            raise TransientError("the provider returned no invoice id", uncertain=True)
        return remote

    def _link_contact(self, connection_id: str, local: str, remote: str, task_id: int) -> None:
        with self.engine.begin() as db:
            try:
                mapping.link(db, connection_id, mapping.CUSTOMER, local, remote)
            except mapping.MappingConflict as exc:
                # Two host customers sharing one e-mail match one remote contact: push with it, unlinked.
                _task_audit(db, task_id, connection_id, "contact_not_linked", str(exc))

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
                _task_audit(db, task.id, task.connection_id, "done", f"{how} remote {remote.remote_id}{number}")
            self._apply_waiting_events(task.connection_id, remote.remote_id)
            return True
        except _LeaseLost:
            with self.engine.begin() as db:
                # Another worker took the task over; make sure whoever runs it next looks it up first.
                db.execute(outbox_tasks.update().where(t.id == task.id).values(uncertain=True))
                _task_audit(
                    db, task.id, task.connection_id, "late_result",
                    f"remote {remote.remote_id} returned after this worker's lease expired",
                )
            return False
        except mapping.MappingConflict as exc:
            self._fail(task, str(exc), TickStats())
            return False

    def _apply_waiting_events(self, connection_id: str, remote_id: str) -> None:
        """Webhooks that arrived before this invoice was linked are applied now (see inbound.apply_waiting)."""
        from .inbound import apply_waiting

        try:
            applied = apply_waiting(self.hub, connection_id, remote_id)
        except Exception as exc:  # the push itself is done; the events stay visible in the inbox
            log.warning("applying waiting events for remote %s failed: %s", remote_id, type(exc).__name__)
            return
        if applied:
            log.info("applied %d event(s) that arrived before remote invoice %s was linked", len(applied), remote_id)

    def _finish(self, task: Any, action: str, detail: str | None, **values: Any) -> bool:
        """Move an in-flight task owned by this worker to another state, with its audit row."""
        t = outbox_tasks.c
        now = utcnow()
        with self.engine.begin() as db:
            result = db.execute(
                outbox_tasks.update()
                .where(t.id == task.id, t.status == TaskStatus.IN_FLIGHT, t.lease_owner == self.worker_id)
                .values(lease_owner=None, lease_until=None, updated_at=now, **values)
            )
            if result.rowcount != 1:
                return False
            _task_audit(db, task.id, task.connection_id, action, detail)
            if values.get("last_error"):
                db.execute(
                    connections.update()
                    .where(connections.c.id == task.connection_id)
                    .values(last_error=values["last_error"], last_error_at=now)
                )
        return True

    def _requeue(
        self, task: Any, at: dt.datetime | None, reason: str, *, count_attempt: bool, uncertain: bool = False
    ) -> None:
        t = outbox_tasks.c
        values: dict[str, Any] = {"status": TaskStatus.PENDING, "next_attempt_at": at or utcnow()}
        if not count_attempt:
            values["attempts"] = t.attempts - 1  # waiting for rate is not the task's failure
        if uncertain:
            values["uncertain"] = True
        self._finish(task, "rate_limited", f"{reason}; next attempt at {values['next_attempt_at']:%H:%M:%S}", **values)

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**(attempts-1)))."""
        s = self.settings
        ceiling = min(s.backoff_cap, s.backoff_base * (2 ** max(attempts - 1, 0)))
        return self.rng.uniform(0, ceiling)

    def _retry_or_die(
        self, task: Any, error: str, uncertain: bool, stats: TickStats, *, retry_after: float | None = None
    ) -> None:
        if task.attempts >= self.settings.max_attempts:
            if self._finish(
                task, "dead", f"gave up after {task.attempts} attempts: {error}",
                status=TaskStatus.DEAD, last_error=error, uncertain=True if uncertain else outbox_tasks.c.uncertain,
            ):
                stats.dead += 1
            return
        delay = max(self.backoff(task.attempts), retry_after or 0.0)
        at = utcnow() + dt.timedelta(seconds=delay)
        if self._finish(
            task, "retry", f"attempt {task.attempts} failed: {error}; retry in {delay:.1f}s",
            status=TaskStatus.PENDING, next_attempt_at=at, last_error=error,
            uncertain=True if uncertain else outbox_tasks.c.uncertain,
        ):
            stats.retrying += 1

    def _fail(self, task: Any, message: str, stats: TickStats) -> None:
        if self._finish(task, "failed", message, status=TaskStatus.FAILED, last_error=message[:4000]):
            stats.failed += 1

    def _auth_failed(self, task: Any, error: str, stats: TickStats) -> None:
        """Credentials refused: the connection needs re-authorization and every waiting task pauses."""
        if self._finish(
            task, "paused", f"auth refused: {error}",
            status=TaskStatus.PAUSED, last_error=error, attempts=outbox_tasks.c.attempts - 1,
        ):
            stats.paused += 1
        self.hub.set_status(task.connection_id, ConnectionStatus.NEEDS_REAUTH, error)


class _RateWindowFull(Exception):
    def __init__(self, retry_at: dt.datetime | None) -> None:
        self.retry_at = retry_at


class _LeaseLost(Exception):
    pass


def _rate_limit(provider: Any, ctx: Any) -> RateLimit | None:
    try:
        return provider.rate_limit(connection=ctx)
    except Exception as exc:  # a provider without the hook, or a broken one: no limit known
        log.warning("rate_limit hook failed: %s", type(exc).__name__)
        return None


def _window(limit: RateLimit | None) -> float:
    return float(limit.per_seconds) if limit is not None else 60.0


def _bulk_audit(db: sa.Connection, connection_id: str, task_ids: Iterable[int], action: str, detail: str) -> None:
    now = utcnow()
    rows = [
        {"at": now, "connection_id": connection_id, "subject": "task", "subject_id": str(i), "action": action,
         "detail": detail}
        for i in task_ids
    ]
    if rows:
        db.execute(audit_log.insert(), rows)


def _pause_all(db: sa.Connection, connection_id: str, reason: str) -> int:
    t = outbox_tasks.c
    ids = list(
        db.execute(
            sa.select(t.id).where(t.connection_id == connection_id, t.status == TaskStatus.PENDING)
        ).scalars()
    )
    if not ids:
        return 0
    db.execute(
        outbox_tasks.update()
        .where(t.connection_id == connection_id, t.status == TaskStatus.PENDING, t.id.in_(ids))
        .values(status=TaskStatus.PAUSED, updated_at=utcnow())
    )
    _bulk_audit(db, connection_id, ids, "paused", reason)
    return len(ids)


# --- operator actions -------------------------------------------------------------------------------------


def resume_paused(hub: Any, connection_id: str) -> int:
    """Paused tasks of a re-authorized (or re-enabled) connection become pending; it is due now.

    Call it whenever a connection becomes active again. A no-op unless the connection is active.
    """
    now = utcnow()
    with hub.engine.begin() as db:
        status = db.execute(
            sa.select(connections.c.status).where(connections.c.id == connection_id)
        ).scalar_one_or_none()
        if status is None:
            raise NotFoundError(f"no connection {connection_id!r}")
        if status != ConnectionStatus.ACTIVE:
            return 0
        resumed = _resume_paused(db, connection_id, now)
        recompute_due(db, hub.engine, connection_id)
    return resumed


def _resume_paused(db: sa.Connection, connection_id: str, now: dt.datetime) -> int:
    t = outbox_tasks.c
    ids = list(
        db.execute(sa.select(t.id).where(t.connection_id == connection_id, t.status == TaskStatus.PAUSED)).scalars()
    )
    if ids:
        db.execute(
            outbox_tasks.update()
            .where(t.id.in_(ids), t.status == TaskStatus.PAUSED)
            .values(status=TaskStatus.PENDING, next_attempt_at=now, updated_at=now)
        )
        _bulk_audit(db, connection_id, ids, "resumed", "connection active again")
    return len(ids)


def retry_task(hub: Any, task_id: int) -> Any:
    """Operator retry of a failed, dead or paused task: pending now, attempts reset, lookup first."""
    t = outbox_tasks.c
    now = utcnow()
    with hub.engine.begin() as db:
        row = db.execute(sa.select(outbox_tasks).where(t.id == task_id)).first()
        if row is None:
            raise NotFoundError(f"no task {task_id}")
        if row.status not in (TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.PAUSED):
            from .errors import ConfigurationError

            raise ConfigurationError(f"task {task_id} is {row.status}; only failed, dead or paused tasks are retried")
        db.execute(
            outbox_tasks.update()
            .where(t.id == task_id)
            .values(
                status=TaskStatus.PENDING,
                attempts=0,
                uncertain=row.uncertain or row.attempts > 0,
                next_attempt_at=now,
                updated_at=now,
            )
        )
        _task_audit(db, task_id, row.connection_id, "retry_requested", f"operator retry (was {row.status})")
        _wake(db, row.connection_id, now)
    return get_task(hub, task_id)


def retry_failed(hub: Any, connection_id: str | None = None, *, include_dead: bool = True) -> list[int]:
    """Operator retry of every failed (and dead) task, optionally of one connection."""
    t = outbox_tasks.c
    statuses = [TaskStatus.FAILED, TaskStatus.DEAD] if include_dead else [TaskStatus.FAILED]
    query = sa.select(t.id).where(t.status.in_(statuses)).order_by(t.id)
    if connection_id is not None:
        query = query.where(t.connection_id == connection_id)
    with hub.engine.connect() as db:
        ids = list(db.execute(query).scalars())
    for task_id in ids:
        retry_task(hub, task_id)
    return ids
