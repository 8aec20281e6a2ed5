"""Small parts of one drain: a started task and its links, a window without room, the declared limit."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import sqlalchemy as sa

from .. import mapping
from ..context import ProviderContext
from ..models import Invoice, RateLimit
from ..plugins import ProviderHooks
from ..store.schema import entity_mappings

log = logging.getLogger("integration_core.outbox.drain")


class NoRoom(Exception):
    """The first call of a task does not fit the account's window for ``wait`` seconds."""

    def __init__(self, wait: float) -> None:
        self.wait = wait


@attrs.frozen
class Links:
    """What the mapping table knows for an invoice task, read in the transaction that starts it."""

    invoice_id: str | None = None  # the invoice is linked already: nothing to call
    contact_id: str | None = None
    contact_type: str = mapping.CUSTOMER
    contact_print: str = ""  # the customer's fingerprint now
    stale: bool = False  # the linked contact was sent with other customer data: update it first
    valid: bool = False  # False: no invoice payload to push (a bad payload, or not an invoice task)

    def first_call(self, *, lookup: bool) -> str | None:
        """The first provider call the task will make, whose budget is spent when it starts."""
        if not self.valid or self.invoice_id is not None:
            return None
        if lookup:
            return "find_invoice"
        if self.contact_id is None:
            return "upsert_contact"
        return "update_contact" if self.stale else "push_invoice"


@attrs.frozen
class Started:
    """A task marked in flight, its links, the call already paid for, and its invoice (an invoice task)."""

    task: Any
    links: Links
    first_call: str | None
    invoice: Invoice | None = None


_m = entity_mappings.c
_LINKS = sa.select(_m.entity_type, _m.remote_id, _m.fingerprint).where(  # the contact's and the invoice's links
    _m.connection_id == sa.bindparam("cid"),
    sa.or_(
        sa.and_(_m.entity_type == sa.bindparam("ctype"), _m.local_id == sa.bindparam("customer")),
        sa.and_(_m.entity_type == mapping.INVOICE, _m.local_id == sa.bindparam("invoice")),
    ),
)


def parse_invoice(row: Any) -> Invoice | None:
    """An invoice task's payload as an :class:`Invoice`; None for another kind of task or a bad payload."""
    if row.entity_type != mapping.INVOICE:
        return None
    try:
        return Invoice.from_dict(row.payload)
    except (KeyError, TypeError, ValueError):
        return None


def read_links(db: sa.Connection, connection_id: str, invoice: Invoice | None) -> Links:
    if invoice is None:
        return Links()
    contact_type = mapping.contact_type(invoice.currency)
    contact_print = mapping.fingerprint(invoice.customer.to_dict())
    contact_id = sent_print = invoice_id = None
    for row_ in db.execute(_LINKS, {"cid": connection_id, "ctype": contact_type, "customer": invoice.customer.id,
                                    "invoice": invoice.id}):
        if row_.entity_type == mapping.INVOICE:
            invoice_id = row_.remote_id
        else:
            contact_id, sent_print = row_.remote_id, row_.fingerprint
    return Links(
        invoice_id=invoice_id,
        contact_id=contact_id,
        contact_type=contact_type,
        contact_print=contact_print,
        stale=contact_id is not None and sent_print != contact_print,
        valid=True,
    )


def rate_limit_of(provider: ProviderHooks, ctx: ProviderContext) -> RateLimit | None:
    try:
        return provider.rate_limit(ctx=ctx)
    except Exception as exc:  # a provider without the hook, or a broken one: no limit known
        log.warning("rate_limit hook failed: %s", type(exc).__name__)
        return None
