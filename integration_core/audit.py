"""The attempt/audit log: every state change of a connection, task or event leaves a row."""

from __future__ import annotations

import functools

import sqlalchemy as sa

from .actor import current_actor
from .store.schema import audit_log, utcnow

_INSERT = audit_log.insert()
_FIELDS = ("at", "connection_id", "subject", "subject_id", "action", "detail", "actor")


@functools.cache
def _insert_rows(count: int) -> sa.Insert:
    """``count`` rows in one statement, built once per count: one round trip, and none of the driver's
    executemany machinery (on PostgreSQL a pipeline per call). INSERT ... SELECT ... UNION ALL SELECT rather
    than a multi-row VALUES, which SQLAlchemy compiles again on every call."""
    rows = [sa.select(*(sa.bindparam(f"{name}_{row}", type_=audit_log.c[name].type) for name in _FIELDS))
            for row in range(count)]
    return audit_log.insert().from_select(list(_FIELDS), rows[0] if count == 1 else sa.union_all(*rows))


def record(
    conn: sa.Connection,
    subject: str,
    subject_id: str | int | None,
    action: str,
    detail: str | None = None,
    *,
    connection_id: str | None = None,
) -> None:
    conn.execute(  # a statement built once: no construction or cache-key work per row
        _INSERT,
        {
            "at": utcnow(),
            "connection_id": connection_id,
            "subject": subject,
            "subject_id": None if subject_id is None else str(subject_id),
            "action": action,
            "detail": (detail or None) and detail[:4000],
        },
    )


def record_many(
    conn: sa.Connection,
    subject: str,
    subject_id: str | int,
    actions: list[tuple[str, str | None]],
    *,
    connection_id: str | None = None,
) -> None:
    """Several ``(action, detail)`` rows for one subject in one statement, in order."""
    at, actor = utcnow(), current_actor()
    common = {"at": at, "connection_id": connection_id, "subject": subject, "subject_id": str(subject_id),
              "actor": actor}
    params: dict[str, object] = {}
    for i, (action, detail) in enumerate(actions):
        row = {**common, "action": action, "detail": (detail or None) and detail[:4000]}
        params.update({f"{name}_{i}": value for name, value in row.items()})
    conn.execute(_insert_rows(len(actions)), params)


def history(conn: sa.Connection, subject: str, subject_id: str | int) -> list[sa.Row]:
    a = audit_log.c
    return list(
        conn.execute(sa.select(audit_log).where(a.subject == subject, a.subject_id == str(subject_id)).order_by(a.id))
    )
