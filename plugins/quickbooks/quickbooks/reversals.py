"""Voided and deleted QuickBooks payments taken back at the host (``PaymentReversed``), each share once.

A payment applied to several invoices reached the host as one ``InvoicePaid`` per invoice, under the key
``qbo:<realm>:payment:<payment id>:invoice:<invoice id>`` (its *share*). When the payment is voided
(QUICKBOOKS.md §4: ``operation=update&include=void``, its amounts go to 0) or deleted (``operation=delete``: a
later read gives 610, CDC lists it as ``status: Deleted`` with only its Id, §7), the shares can no longer be
read from QuickBooks. So every share the plugin hands to the core is remembered in the core's mapping table
(``ctx.mappings``, entity type ``payment-share``: ``<payment id>#<n>`` → ``<payment id>#<invoice id>#<amount>``),
and so is every payment pushed from our side. A void or a delete then becomes one ``PaymentReversed`` per
remembered share, with the dedupe key ``<share key>:reversed`` (the same for a void, a later delete of the
voided payment, the webhook and reconciliation: each share is taken back once). The host's contract knows
``deleted`` and ``refunded``; a void takes the whole share back, as a deletion does, so both are ``deleted``.

A payment that never reached the host (created and voided before anything fetched it) has no remembered
shares and nothing is taken back.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from integration_core.context import ProviderContext
from integration_core.models import Event, PaymentReversed

SHARE = "payment-share"  # entity type in the core's mapping table (ctx.mappings)
MAX_SHARES = 1000  # a payment's lines are bounded far below this


def share_key(realm_id: str, payment_id: str, invoice_id: str) -> str:
    """The key a payment's share of one invoice reached the host under (``InvoicePaid.dedupe_key``)."""
    return f"qbo:{realm_id}:payment:{payment_id}:invoice:{invoice_id}"


def recall(ctx: ProviderContext, payment_id: str) -> list[tuple[str, Decimal]]:
    """The remembered shares of a payment: (invoice id, amount) in the order first seen."""
    shares: list[tuple[str, Decimal]] = []
    for n in range(MAX_SHARES):
        value = ctx.mappings.get(SHARE, f"{payment_id}#{n}")
        if value is None:
            break
        _payment, invoice_id, amount = str(value).split("#", 2)
        shares.append((invoice_id, Decimal(amount)))
    return shares


def remember(ctx: ProviderContext, payment_id: str, shares: Iterable[tuple[str, Decimal]]) -> None:
    """Remember the shares not yet known (the first amount seen of a share is what the host recorded: a
    later one arrives under the same dedupe key and is not recorded again)."""
    shares = [(str(i), Decimal(a)) for i, a in shares]
    if not shares:
        return
    known = recall(ctx, payment_id)
    have = {invoice_id for invoice_id, _ in known}
    n = len(known)
    for invoice_id, amount in shares:
        if invoice_id in have or n >= MAX_SHARES:
            continue
        ctx.mappings.remember(SHARE, f"{payment_id}#{n}", f"{payment_id}#{invoice_id}#{amount}")
        have.add(invoice_id)
        n += 1


def reversal_events(ctx: ProviderContext, realm_id: str, payment_id: str) -> list[Event]:
    """One ``PaymentReversed`` per remembered share of a voided or deleted payment (none when it never reached
    the host)."""
    events: list[Event] = []
    for invoice_id, amount in recall(ctx, payment_id):
        key = share_key(realm_id, payment_id, invoice_id)
        events.append(PaymentReversed(dedupe_key=f"{key}:reversed", remote_invoice_id=invoice_id,
                                      remote_payment_id=str(payment_id), payment_key=key, amount=amount,
                                      reason="deleted"))
    return events


def is_voided(payment: dict[str, Any]) -> bool:
    """§4 Payment void: the payment's amounts go to 0 (total and every line)."""
    if Decimal(str(payment.get("TotalAmt") or 0)) != 0:
        return False
    return all(Decimal(str(line.get("Amount") or 0)) == 0 for line in payment.get("Line") or [])
