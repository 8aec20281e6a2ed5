"""How an invoice's lines, discounts and taxes add up, in its currency's precision (provider-agnostic).

The rules (documented in docs/invoice-schema.md; a provider compares its own computed total with ours):

* amounts round half-up to the currency's minor units (ISO 4217: JPY 0, KWD/BHD/OMR 3, most 2);
* a line with a unit price is ``round(quantity x unit_price)`` less its discount (a percentage of that,
  rounded, or an amount); a line without one is its ``amount`` as given;
* an invoice discount (a percentage of the subtotal, rounded, or an amount) applies before tax and is shared
  over the lines in proportion to their amounts;
* tax is summed per tax (code, else name, else rate) over all lines and rounded once per tax; with
  tax-inclusive amounts the tax is the part of the discounted amount, and the total is not increased.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import attrs

from . import validation

HUNDRED = Decimal(100)
# ISO 4217 minor units where they are not 2.
MINOR_UNITS: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
    "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}


def minor_units(currency: str) -> int:
    """The currency's minor units from the ISO 4217 list (``iso4217``), else the table above."""
    places = validation.minor_units(currency.upper())
    return places if places is not None else MINOR_UNITS.get(currency.upper(), 2)


def round_money(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def discount(base: Decimal, percent: Decimal | None, amount: Decimal | None, places: int) -> Decimal:
    if percent is not None:
        return round_money(base * percent / HUNDRED, places)
    return round_money(amount, places) if amount is not None else Decimal(0)


@attrs.frozen
class TaxAmount:
    """One tax of an invoice: its key (code, name or rate), rate, name and rounded amount."""

    key: str
    rate: Decimal
    name: str | None
    code: str | None
    amount: Decimal


@attrs.frozen
class Totals:
    subtotal: Decimal
    discount: Decimal
    taxes: tuple[TaxAmount, ...]
    total: Decimal

    @property
    def tax_total(self) -> Decimal:
        return sum((t.amount for t in self.taxes), Decimal(0))


def tax_key(line: Any) -> str | None:
    """How lines' taxes are grouped: provider code, else name and rate, else rate; ``None`` when untaxed."""
    if line.tax_rate is None and line.tax_code is None:
        return None
    if line.tax_code:
        return f"code:{line.tax_code}"
    return f"name:{line.tax_name or ''}:{line.tax_rate}"


def totals(lines: Iterable[Any], places: int, *, inclusive: bool, discount_percent: Decimal | None,
           discount_amount: Decimal | None) -> Totals:
    """Lines carry ``amount``, ``tax_rate``, ``tax_name``, ``tax_code`` (``LineItem``)."""
    lines = list(lines)
    subtotal = sum((line.amount for line in lines), Decimal(0))
    off = discount(subtotal, discount_percent, discount_amount, places)
    share = off / subtotal if off and subtotal else Decimal(0)
    raw: dict[str, list[Any]] = {}
    for line in lines:
        key = tax_key(line)
        if key is None or not line.tax_rate:
            continue
        base = line.amount * (1 - share)
        rate = Decimal(line.tax_rate)
        part = base * rate / (HUNDRED + rate) if inclusive else base * rate / HUNDRED
        entry = raw.setdefault(key, [rate, line.tax_name, line.tax_code, Decimal(0)])
        entry[3] += part
    taxes = tuple(TaxAmount(key=k, rate=v[0], name=v[1], code=v[2], amount=round_money(v[3], places))
                  for k, v in raw.items())
    tax_total = sum((t.amount for t in taxes), Decimal(0))
    total = subtotal - off if inclusive else subtotal - off + tax_total
    return Totals(subtotal=subtotal, discount=off, taxes=taxes, total=total)
