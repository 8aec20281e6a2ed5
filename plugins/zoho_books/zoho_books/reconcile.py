"""Reconciliation (the core's ``changes_since``): what the webhooks may have missed, from Zoho's lists.

What it asks (zoho-books-openapi/, ZOHO_BOOKS.md):

* ``GET /invoices?last_modified_time=<time>`` ("Search invoices modified after a specific time",
  invoices.yml list_invoices), every page (``page`` / ``per_page`` up to 200, ``page_context.has_more_page``).
  A paid or partly paid invoice then needs its payments: ``GET /invoices/{id}/payments``
  (list_invoice_payments; list rows carry no payments). The record, with its ``payments``, goes through the
  invoice webhook's own parser (:func:`webhooks.parse_invoice_events`), so the events and their dedupe keys
  are the webhooks' exactly: ``payment:<payment id>:<invoice id>`` per payment (as the payment webhook's),
  ``invoice:<id>:void`` for a void invoice.
* ``GET /contacts?contact_type=customer&sort_column=created_time&sort_order=D`` (contacts.yml: the column is
  documented, the direction only as ``page_context.sort_order``), page by page until the rows are older than
  the cursor; a customer created since then becomes ``CustomerCreated`` with the contact webhook's key
  ``contact:<id>:created``. When the answer is not in descending ``created_time`` order, every page is read.

Uncertain, and handled without relying on it: whether the ``last_modified_time`` filter is strict or
inclusive, which zone it reads (the filter is sent in the very offset Zoho wrote its own times in), and
whether it is applied at all (rows older than the window are dropped here, so an unfiltered answer costs
pages, not correctness). The window starts ``OVERLAP`` before the newest time seen, so a change committed
while we read, or stamped on the boundary second, is read again; the cursor remembers what it already
turned into events inside that overlap (a short fingerprint of record id, time, status and balance), so a
quiet run sends no events and reads only the two lists.

The cursor is JSON: ``{"v": 1, "invoices": <newest invoice last_modified_time>, "contacts": <newest
customer created_time>, "done": [...]}``, each time as Zoho wrote it (its own offset; our clock never
enters after the first run, which looks back ``FIRST_RUN_LOOKBACK``). A run fetches the payments of at most
``MAX_FETCHES`` invoices (the organization allows 100 requests a minute, shared with the outbox); the rest
wait for the next run, which starts at the first one left. So does everything after a fetch that is rate
limited or fails for a while: a run keeps what it did instead of starting over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator
from typing import Any

from integration_core.context import ProviderContext
from integration_core.errors import PermanentError, RateLimitedError, TransientError, WebhookRejected
from integration_core.models import Event, Ignored

from . import webhooks
from .client import ZohoClient

log = logging.getLogger(__name__)

CURSOR_VERSION = 1
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
OVERLAP = dt.timedelta(seconds=60)
FIRST_RUN_LOOKBACK = dt.timedelta(days=30)
PER_PAGE = 200  # ZOHO_BOOKS.md: per_page default and maximum 200
MAX_PAGES = 25  # per list and run (5,000 rows)
MAX_FETCHES = 40  # invoice payment lists per run
PAID_STATUSES = ("paid", "partially_paid")
NOT_FOUND = 1002  # ZOHO_BOOKS.md: "<X> does not exist."


def parse_stamp(value: Any) -> dt.datetime | None:
    """Zoho's ``2013-11-18T02:17:40-0800`` (also with ``+05:30`` or ``Z``); ``None`` when unreadable or naive."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def format_stamp(moment: dt.datetime) -> str:
    return moment.strftime(STAMP_FORMAT)


class Cursor:
    """The state between runs; an unreadable cursor starts over (repeats are harmless)."""

    def __init__(self, text: str | None, now: dt.datetime) -> None:
        start = format_stamp((now - FIRST_RUN_LOOKBACK).astimezone(dt.UTC))
        data: dict[str, Any] = {}
        if text:
            try:
                loaded = json.loads(text)
                if isinstance(loaded, dict) and loaded.get("v") == CURSOR_VERSION:
                    data = loaded
                else:
                    raise ValueError("unknown cursor version")
            except ValueError:
                log.warning("zoho_books: unreadable reconciliation cursor; looking back %s again", FIRST_RUN_LOOKBACK)
        self.invoices: str = str(data["invoices"]) if parse_stamp(data.get("invoices")) else start
        self.contacts: str = str(data["contacts"]) if parse_stamp(data.get("contacts")) else start
        self.done = {str(m) for m in data.get("done") or [] if isinstance(m, str)}

    @staticmethod
    def dump(invoices: str, contacts: str, done: set[str]) -> str:
        return json.dumps({"v": CURSOR_VERSION, "invoices": invoices, "contacts": contacts, "done": sorted(done)},
                          separators=(",", ":"))


def _pages(client: ZohoClient, path: str, key: str, params: dict[str, Any]) -> Iterator[tuple[list[dict[str, Any]],
                                                                                          dict[str, Any]]]:
    """Each page's rows and ``page_context``, up to ``MAX_PAGES``."""
    for page in range(1, MAX_PAGES + 1):
        answer = client.get(path, {**params, "page": page, "per_page": PER_PAGE})
        rows = [r for r in answer.get(key) or [] if isinstance(r, dict)]
        context = answer.get("page_context")
        context = context[0] if isinstance(context, list) and context else context
        context = context if isinstance(context, dict) else {}
        yield rows, context
        if not webhooks._truthy(context.get("has_more_page")):
            return
    log.warning("zoho_books: %s has more than %d pages of changes; this run reads the first ones", path, MAX_PAGES)


def _marker(text: str) -> str:
    """A short fingerprint of what was handled (48 bits: the cursor stays small in bursts)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _invoice_marker(row: dict[str, Any]) -> str:
    return _marker(f"i:{row.get('invoice_id')}:{row.get('last_modified_time')}:{row.get('status')}:"
                   f"{row.get('balance')}")


def _paid_record(client: ZohoClient, invoice_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """A paid or partly paid invoice as its webhook carries it: the list row with its ``payments``. Paid with
    no payment listed (credits applied), the whole record instead (``GET /invoices/{id}``), whose
    ``payment_made`` the invoice webhook's key uses."""
    payments = client.get(f"/invoices/{invoice_id}/payments").get("payments") or []
    if payments:
        return {**row, "payments": payments}
    whole = client.get(f"/invoices/{invoice_id}").get("invoice")
    return {**row, **(whole if isinstance(whole, dict) else {}), "payments": []}


def invoice_changes(client: ZohoClient, since_text: str, done: set[str]) -> tuple[list[Event], str, set[str]]:
    """Events of the invoices modified since ``since_text`` (minus the overlap), the next invoice cursor and the
    markers of what is done inside the next overlap."""
    since = parse_stamp(since_text)
    assert since is not None
    window = since - OVERLAP
    rows: list[tuple[dt.datetime, dict[str, Any]]] = []
    last: dict[str, Any] = {}
    for page, context in _pages(client, "/invoices", "invoices", {"last_modified_time": format_stamp(window)}):
        last = context
        for row in page:
            stamp = parse_stamp(row.get("last_modified_time"))
            if stamp is None or stamp >= window:  # unreadable: keep (read again next time, harmlessly)
                rows.append((stamp or since, row))
    complete = not webhooks._truthy(last.get("has_more_page"))
    rows.sort(key=lambda item: (item[0], str(item[1].get("invoice_id"))))
    events: list[Event] = []
    handled: list[tuple[dt.datetime, str]] = []
    fetches = 0
    next_since, stopped = since, False
    for stamp, row in rows:
        marker = _invoice_marker(row)
        if marker in done:
            handled.append((stamp, marker))
            continue
        invoice_id = webhooks._id(row.get("invoice_id"))
        if invoice_id is None:
            continue
        record = dict(row)
        if str(row.get("status") or "").lower() in PAID_STATUSES:
            if fetches >= MAX_FETCHES:
                next_since, stopped = stamp, True
                break
            fetches += 1
            try:
                record = _paid_record(client, invoice_id, row)
            except (RateLimitedError, TransientError) as exc:
                # keep what is done; the next run starts at this invoice (the rate window, or Zoho, recovers)
                log.info("zoho_books: reconciliation stops at invoice %s until the next run (%s)", invoice_id, exc)
                next_since, stopped = stamp, True
                break
            except PermanentError as exc:
                # 1002: deleted meanwhile, nothing to record; anything else must not block every later change
                level = logging.INFO if exc.code == NOT_FOUND else logging.WARNING
                log.log(level, "zoho_books: reconciliation skips invoice %s (%s)", invoice_id, exc)
                continue
        try:
            found = webhooks.parse_invoice_events(record)
        except WebhookRejected as exc:
            log.warning("zoho_books: reconciliation skips invoice %s: %s", invoice_id, exc)
            found = []
        events.extend(e for e in found if not isinstance(e, Ignored))
        handled.append((stamp, marker))
        next_since = max(next_since, stamp)
    if not complete and not stopped:
        next_since = since  # an unread page may hold older changes: keep the window (repeats are harmless)
    keep = next_since - OVERLAP
    # next_since is a time Zoho wrote, in its own offset: the next filter speaks the organization's zone.
    return events, format_stamp(next_since), {m for s, m in handled if s >= keep}


def contact_changes(client: ZohoClient, since_text: str, done: set[str]) -> tuple[list[Event], str, set[str]]:
    """``CustomerCreated`` for the customers created since ``since_text`` (minus the overlap)."""
    since = parse_stamp(since_text)
    assert since is not None
    window = since - OVERLAP
    events: list[Event] = []
    newest = since
    seen: list[tuple[dt.datetime, str]] = []
    params = {"contact_type": "customer", "sort_column": "created_time", "sort_order": "D"}
    context: dict[str, Any] = {}
    for page, context in _pages(client, "/contacts", "contacts", params):
        descending = (str(context.get("sort_column") or "") == "created_time"
                      and str(context.get("sort_order") or "").upper() == "D")
        older = False
        for row in page:
            stamp = parse_stamp(row.get("created_time"))
            if stamp is None or stamp < window:
                older = older or stamp is not None
                continue
            marker = _marker(f"c:{row.get('contact_id')}")
            seen.append((stamp, marker))
            newest = max(newest, stamp)
            if marker in done:
                continue
            try:
                event = webhooks.parse_contact(row)
            except WebhookRejected as exc:
                log.warning("zoho_books: reconciliation skips a contact: %s", exc)
                continue
            if not isinstance(event, Ignored):
                events.append(event)
        if descending and older:
            break
    else:
        if webhooks._truthy(context.get("has_more_page")):
            newest = since  # pages left unread may hold newer customers: keep the window
    keep = newest - OVERLAP
    return events, format_stamp(newest), {m for s, m in seen if s >= keep}


def changes_since(ctx: ProviderContext, cursor: str | None, *,
                  now: dt.datetime | None = None) -> tuple[list[Event], str]:
    """The events of the invoices and customers changed since ``cursor`` and the next cursor."""
    client = ZohoClient(ctx)
    state = Cursor(cursor, now or dt.datetime.now(dt.UTC))
    invoice_events, invoices, invoice_done = invoice_changes(client, state.invoices, state.done)
    contact_events, contacts, contact_done = contact_changes(client, state.contacts, state.done)
    return invoice_events + contact_events, Cursor.dump(invoices, contacts, invoice_done | contact_done)
