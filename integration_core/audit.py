"""The attempt/audit log: every state change of a connection, task or event leaves a row."""

from __future__ import annotations

import sqlalchemy as sa

from .store.schema import audit_log, utcnow

_INSERT = audit_log.insert()


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
    at = utcnow()
    conn.execute(
        _INSERT,
        [
            {
                "at": at,
                "connection_id": connection_id,
                "subject": subject,
                "subject_id": str(subject_id),
                "action": action,
                "detail": (detail or None) and detail[:4000],
            }
            for action, detail in actions
        ],
    )


def history(conn: sa.Connection, subject: str, subject_id: str | int) -> list[sa.Row]:
    a = audit_log.c
    return list(
        conn.execute(sa.select(audit_log).where(a.subject == subject, a.subject_id == str(subject_id)).order_by(a.id))
    )
