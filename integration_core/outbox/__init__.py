"""The outbox: invoices, payments and voids out, each pushed exactly once.

* :mod:`.submit`: a host hands an invoice over (idempotent, one task per connection);
* :mod:`.drain`: a worker claims due connections and pushes their tasks (:class:`Outbound`);
* :mod:`.payments`: payment and void tasks, pushed after the invoice they depend on;
* :mod:`.finish`: how an attempt that did not succeed ends (retry, failed, dead, paused);
* :mod:`.schedule`: when a connection is next due, and bulk pause / resume;
* :mod:`.ops`: operator actions (retry, resume);
* :mod:`.views`: read-only views of tasks and connections;
* :mod:`.settings`: the drain's tuning and per-tick statistics.
"""

from .drain import Outbound
from .ops import resume_paused, retry_failed, retry_task
from .settings import OutboundSettings, TickStats, default_worker_id
from .submit import (
    ConnectionOutcome,
    SubmitOutcome,
    SubmitResult,
    payload_hash,
    submit_invoice,
    submit_payment,
    submit_void,
)
from .views import (
    ConnectionSummary,
    TaskInfo,
    connection_summaries,
    find_task,
    get_task,
    list_tasks,
    pending_work,
    task_history,
)

__all__ = [
    "ConnectionOutcome",
    "ConnectionSummary",
    "Outbound",
    "OutboundSettings",
    "SubmitOutcome",
    "SubmitResult",
    "TaskInfo",
    "TickStats",
    "connection_summaries",
    "default_worker_id",
    "find_task",
    "get_task",
    "list_tasks",
    "payload_hash",
    "pending_work",
    "resume_paused",
    "retry_failed",
    "retry_task",
    "submit_invoice",
    "submit_payment",
    "submit_void",
    "task_history",
]
