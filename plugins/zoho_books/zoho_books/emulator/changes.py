"""Modification times and the list behaviours that reconciliation relies on.

Sources (``zoho-books-openapi/`` beside ZOHO_BOOKS.md):

* Every invoice, contact and customer payment carries ``created_time`` and ``last_modified_time`` in Zoho's
  ``2013-11-18T02:17:40-0800`` style, in the organization's time zone (invoices.yml, ``last_modified_time``
  example; contacts.yml list rows). The emulator keeps them in the organization's fixed offset
  (``time_offset``, default ``+0000``) and moves ``last_modified_time`` on every change of the record.
* ``GET /invoices?last_modified_time=...``: "Search invoices modified after a specific time ... Use
  YYYY-MM-DDTHH:MM:SS-UTC format. Example: 2023-11-18T02:02:51-0800" (invoices.yml list_invoices).
  Undocumented, hence settings of the organization: whether "after" is strict (``modified_filter="after"``,
  the default), inclusive (``"from"``) or the parameter is not applied at all (``"ignored"``); and whether the
  offset given is honoured (``modified_filter_zone="given"``, default) or the wall time is read in the
  organization's own zone (``"org"``).
* ``GET /contacts?sort_column=...``: documented values ``contact_name, first_name, last_name, email,
  outstanding_receivable_amount, created_time and last_modified_time`` (contacts.yml list_contacts). The
  direction parameter ``sort_order`` (``A`` / ``D``) is not documented as a parameter, only as the
  ``page_context.sort_order`` of the answer (example ``D``): honoured unless ``list_sort_order="ignore"``,
  then always ascending. The answer's ``page_context`` names the column and order actually applied.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from .errors import invalid

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
MODIFIED_FILTERS = ("after", "from", "ignored")
FILTER_ZONES = ("given", "org")
SORT_ORDERS = ("honour", "ignore")
CONTACT_SORT_COLUMNS = ("contact_name", "first_name", "last_name", "email", "outstanding_receivable_amount",
                        "created_time", "last_modified_time")


def offset_zone(offset: str) -> timezone:
    """``+0530`` / ``-0800`` / ``+00:00`` as a fixed time zone."""
    text = offset.replace(":", "").strip()
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        raise ValueError(f"time_offset must look like +0000 or -0800, not {offset!r}")
    minutes = int(text[1:3]) * 60 + int(text[3:5])
    if minutes >= 24 * 60:
        raise ValueError(f"time_offset out of range: {offset!r}")
    return timezone(timedelta(minutes=minutes if text[0] == "+" else -minutes))


def now_stamp(offset: str = "+0000") -> str:
    """Now, in Zoho's ``2013-11-18T02:17:40-0800`` style, in the organization's offset."""
    return datetime.now(UTC).astimezone(offset_zone(offset)).strftime(STAMP_FORMAT)


def parse_stamp(value: str) -> datetime:
    return datetime.strptime(value, STAMP_FORMAT)


def check_settings(settings: dict[str, Any]) -> None:
    if "time_offset" in settings:
        offset_zone(str(settings["time_offset"]))
    if settings.get("modified_filter", "after") not in MODIFIED_FILTERS:
        raise ValueError(f"modified_filter is one of {MODIFIED_FILTERS}")
    if settings.get("modified_filter_zone", "given") not in FILTER_ZONES:
        raise ValueError(f"modified_filter_zone is one of {FILTER_ZONES}")
    if settings.get("list_sort_order", "honour") not in SORT_ORDERS:
        raise ValueError(f"list_sort_order is one of {SORT_ORDERS}")


def _filter_time(value: str, org: Any) -> datetime:
    """The ``last_modified_time`` parameter; a missing offset reads as the organization's zone."""
    text = value.strip().replace(" ", "+")  # an unencoded '+' arrives as a space
    for fmt in (STAMP_FORMAT, "%Y-%m-%dT%H:%M:%S"):
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if parsed.tzinfo is None or org.modified_filter_zone == "org":
            parsed = parsed.replace(tzinfo=offset_zone(org.time_offset))
        return parsed
    raise invalid("last_modified_time", "Use the format YYYY-MM-DDTHH:MM:SS-UTC, e.g. 2013-11-18T02:02:51-0800.")


def modified_since(org: Any, rows: list[dict[str, Any]], value: str | None) -> list[dict[str, Any]]:
    """Rows kept by ``last_modified_time=<value>`` as the organization's settings apply it."""
    if not value or org.modified_filter == "ignored":
        return rows
    since = _filter_time(value, org)
    if org.modified_filter == "from":
        return [r for r in rows if parse_stamp(r["last_modified_time"]) >= since]
    return [r for r in rows if parse_stamp(r["last_modified_time"]) > since]


def sort_contacts(org: Any, rows: list[dict[str, Any]], query: dict[str, str]) -> tuple[list[dict[str, Any]],
                                                                                        dict[str, str]]:
    """Contacts in the requested order and the ``page_context`` keys that say which order was applied."""
    column = query.get("sort_column") or "contact_name"
    if column not in CONTACT_SORT_COLUMNS:
        raise invalid("sort_column")
    order = (query.get("sort_order") or "A").upper()
    if order not in ("A", "D"):
        raise invalid("sort_order")
    if org.list_sort_order == "ignore":
        order = "A"

    def key(row: dict[str, Any]) -> tuple[Any, str]:
        value = row[column]
        if column in ("created_time", "last_modified_time"):
            value = parse_stamp(value)
        elif isinstance(value, str):
            value = value.lower()
        return value, row["contact_id"]

    return sorted(rows, key=key, reverse=order == "D"), {"sort_column": column, "sort_order": order}
