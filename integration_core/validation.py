"""The rules for values that come from outside: ids, money, currencies, e-mail addresses.

One place for each rule, so the models, the CLI, the Hub and the webhook dispatcher agree:

* :func:`segment_id`: a tenant or environment id must fit in one URL path segment of a webhook URL;
* :func:`required_text`: a required text field refuses ``None``, non-text and blank values, naming the field;
* :func:`money`: a plain decimal (``"12.50"``, ``12``), finite, no float, no bool, no ``"1_000"`` or padding;
* :func:`currency`: a code on the ISO 4217 list (the ``iso4217`` package) that has minor units;
* :func:`email`: the syntax of an address (``email-validator``), without any DNS lookup; ``.test`` allowed.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import email_validator
from iso4217 import Currency

SEGMENT_MAX = 200
# Letters, digits and ``. _ - ~ @ : +``: unreserved or allowed as-is in a URL path segment (RFC 3986), so the
# webhook URL carries the id unchanged; nothing that a proxy or the dispatcher could read differently.
_SEGMENT = re.compile(r"[A-Za-z0-9._~@:+-]+")
_MONEY = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def segment_error(value: object) -> str | None:
    """Why ``value`` cannot be a tenant or environment id, or ``None`` when it can."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if len(value) > SEGMENT_MAX:
        return f"must be at most {SEGMENT_MAX} characters"
    if value in (".", "..") or not _SEGMENT.fullmatch(value):
        return "may hold only ASCII letters, digits and . _ - ~ @ : + (it is part of the webhook URL)"
    return None


def segment_id(label: str, value: object) -> str:
    """``value`` when it is a valid tenant or environment id, else ``ValueError`` naming ``label``."""
    problem = segment_error(value)
    if problem:
        raise ValueError(f"{label} {problem}, got {value!r}"[:300])
    assert isinstance(value, str)
    return value


def required_text(label: str, value: object, *, multiline: bool = False) -> str:
    """A required text field: never ``None`` (JSON ``null``), a number is taken as its text, blanks refused,
    no control characters (line breaks and tabs only where ``multiline``)."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"{label} is required (got {'null' if value is None else value!r})")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(f"{label} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{label} must not be empty")
    allowed = "\n\r\t" if multiline else ""
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value):
        raise ValueError(f"{label} must not contain control characters")
    return value


def money(value: Any, label: str = "amount") -> Decimal:
    """A decimal amount written plainly: ``Decimal``, ``int`` or a string such as ``"-12.50"``."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool) or value is None or isinstance(value, float):
        kind = "floats (money is exact: write it as a string)" if isinstance(value, float) else repr(value)
        raise TypeError(f"{label} must be a decimal string or an integer, not {kind}")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str) and _MONEY.fullmatch(value):
        try:
            result = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            raise ValueError(f"{label} is not a decimal: {value!r}") from None
    else:
        raise ValueError(f"{label} must be a plain decimal such as \"12.50\", got {value!r}"[:200])
    if not result.is_finite():
        raise ValueError(f"{label} must be finite, got {value!r}")
    return result


@cache
def minor_units(code: str) -> int | None:
    """The number of decimal places of an ISO 4217 currency; ``None`` for an unknown or unit-less code."""
    try:
        exponent = Currency(code).exponent
    except ValueError:
        return None
    return exponent


def currency(value: Any) -> str:
    """An ISO 4217 currency code (upper-cased) in which an invoice can be issued."""
    code = value.strip().upper() if isinstance(value, str) else None
    if code is None or not code.isascii() or minor_units(code) is None:
        raise ValueError(f"currency must be an ISO 4217 currency code such as 'USD', got {value!r}"[:200])
    return code


def check_precision(amount: Decimal, code: str, label: str = "amount") -> None:
    """Refuse an amount finer than its currency's minor unit (``0.001`` USD, ``1.5`` JPY; ``100.00`` JPY is 100)."""
    places = minor_units(code)
    if places is not None and amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise ValueError(f"{label} {amount} has more than {places} decimal place(s), the precision of {code}")


def email(value: Any) -> str | None:
    """A syntactically valid e-mail address, lower-cased; ``None`` for no address."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"email must be a string, got {type(value).__name__}")
    try:
        # ``test_environment``: addresses under ``.test`` (RFC 2606) are fine, as emulators and staging use them.
        checked = email_validator.validate_email(value.strip(), check_deliverability=False, test_environment=True)
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"email {value!r} is not a valid address: {exc}"[:300]) from None
    return str(checked.normalized).lower()
