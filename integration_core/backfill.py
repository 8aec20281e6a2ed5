"""Submit historical invoices from a JSON Lines file, one invoice per line (see docs/invoice-schema.md).

Streamed line by line: a file of any size needs constant memory. A bad line is reported with its line
number and the reason, and never stops the lines after it. Each invoice is one ordinary
:func:`~integration_core.outbox.submit_invoice`, so running a backfill twice queues nothing twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from .models import Invoice
from .outbox import SubmitOutcome, submit_invoice

if TYPE_CHECKING:
    from .hub import Hub

MAX_LINE_BYTES = 1024 * 1024


@attrs.define
class BadLine:
    line: int
    reason: str


@attrs.define
class BackfillReport:
    """``invoices`` read; per-connection ``outcomes`` (queued, updated, unchanged, ...); ``bad`` lines."""

    invoices: int = 0
    outcomes: Counter[str] = attrs.field(factory=Counter)
    no_connection: int = 0  # valid invoices that no connection of the tenant/environment syncs
    bad: list[BadLine] = attrs.field(factory=list)

    def summary(self) -> str:
        parts = [f"{self.invoices} invoice(s) read"]
        for outcome in SubmitOutcome:
            if self.outcomes[outcome] or outcome in (SubmitOutcome.QUEUED, SubmitOutcome.UNCHANGED):
                parts.append(f"{self.outcomes[outcome]} {outcome.replace('_', ' ')}")
        if self.no_connection:
            parts.append(f"{self.no_connection} with no syncing connection")
        parts.append(f"{len(self.bad)} bad")
        return ", ".join(parts)


def parse_line(raw: bytes | str) -> Invoice:
    """One line to an :class:`Invoice`; raises ``ValueError`` with a reason an operator can act on."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_LINE_BYTES:
            raise ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    try:
        return Invoice.from_dict(data)
    except KeyError as exc:
        raise ValueError(f"missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise ValueError(f"invalid invoice: {exc}") from None


def backfill(
    hub: Hub,
    lines: Iterable[bytes | str],
    tenant_id: str,
    environment_id: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> BackfillReport:
    """Submit each line's invoice; ``progress`` gets the size of each line read (for a progress bar)."""
    report = BackfillReport()
    for number, raw in enumerate(lines, start=1):
        if progress is not None:
            progress(len(raw))
        if number == 1:  # a UTF-8 byte-order mark, as some editors and spreadsheet exports write
            raw = raw.removeprefix(b"\xef\xbb\xbf") if isinstance(raw, bytes) else raw.removeprefix("\ufeff")
        if not raw.strip():
            continue
        try:
            invoice = parse_line(raw)
        except ValueError as exc:
            report.bad.append(BadLine(number, str(exc)))
            continue
        result = submit_invoice(hub, tenant_id, environment_id, invoice)
        report.invoices += 1
        if not result.outcomes:
            report.no_connection += 1
        report.outcomes.update(o.outcome for o in result.outcomes)
    return report
