"""Jinja filters: times in UTC and relative, short texts, JSON. They return plain strings, which the
templates' autoescaping then escapes."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from typing import Any

import jinja2

from ..store.schema import utcnow


def when(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    seconds = (utcnow() - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        text = f"{int(seconds)} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 86400:
        text = f"{seconds / 3600:.1f} h"
    else:
        text = f"{seconds / 86400:.1f} days"
    return f"in {text}" if future else f"{text} ago"


def short(value: Any, width: int = 80) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def total(lines: Any) -> str:
    amount = Decimal(0)
    for line in lines or []:
        try:
            amount += Decimal(str((line or {}).get("amount", 0)))
        except (InvalidOperation, AttributeError):
            continue
    return f"{amount:,.2f}"


def install(env: jinja2.Environment) -> None:
    env.filters.update(when=when, ago=ago, short=short, pretty_json=pretty_json, total=total)
