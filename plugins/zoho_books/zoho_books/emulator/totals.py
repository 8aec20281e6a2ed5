"""How an invoice's lines, discounts and taxes add up, in the currency's precision.

Sources: line ``discount`` (percentage like ``"10%"`` or an amount) and ``discount_amount`` apply after
rate x quantity and before tax (invoices.yml:2888); the invoice ``discount`` applies to the whole invoice
(``discount_type: entity_level``) before tax when ``is_discount_before_tax`` is true (invoices.yml:2808-2818);
``is_inclusive_tax`` means rates include tax (invoices.yml:2821); Zoho computes tax and total (ZOHO_BOOKS.md);
amounts round to the currency's ``price_precision`` (ZOHO_BOOKS.md: JPY 0, KWD/BHD/OMR 3, most 2).

Not documented, so chosen here and mirrored by the plugin's own computation: rounding is half-up; a line's
amount is rounded once (rate x quantity, then its discount); an invoice discount is shared over lines in
proportion to their amounts; tax is summed per tax over all lines and rounded once per tax.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .errors import invalid

# ISO 4217 minor units where they differ from 2 (ZOHO_BOOKS.md "Currency precision").
PRECISION = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "UGX": 0, "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3,
             "TND": 3, "LYD": 3, "IQD": 3}
HUNDRED = Decimal(100)


def precision_of(code: str) -> int:
    return PRECISION.get(code.upper(), 2)


def rounded(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def discount_of(value: Any, base: Decimal, places: int, name: str) -> Decimal:
    """A discount given as ``"12.5%"`` (of ``base``) or as an amount; never negative nor above ``base``."""
    from .state import money

    if value in (None, "", 0):
        return Decimal(0)
    text = str(value).strip()
    if text.endswith("%"):
        pct = money(text[:-1], name)
        if pct < 0 or pct > HUNDRED:  # "up to a maximum of 100%" (invoices.yml:2809)
            raise invalid(name)
        amount = rounded(base * pct / HUNDRED, places)
    else:
        amount = rounded(money(value, name), places)
    if amount < 0 or amount > abs(base):
        raise invalid(name)
    return amount


@dataclass
class LineTax:
    """The member taxes applied to one line (one for a simple tax, several for a group)."""

    components: list[dict[str, Any]] = field(default_factory=list)
    tax_id: str = ""

    @property
    def percentage(self) -> Decimal:
        return sum((Decimal(c["tax_percentage"]) for c in self.components), Decimal(0))


@dataclass
class Totals:
    sub_total: Decimal
    discount_total: Decimal
    tax_total: Decimal
    total: Decimal
    taxes: list[dict[str, Any]]


def compute(item_totals: list[Decimal], line_taxes: list[LineTax], places: int, *, inclusive: bool,
            invoice_discount: Any, discount_before_tax: bool) -> Totals:
    sub_total = sum(item_totals, Decimal(0))
    discount = discount_of(invoice_discount, sub_total, places, "discount")
    share = (discount / sub_total) if (discount and sub_total and (discount_before_tax or inclusive)) else Decimal(0)
    per_tax: dict[str, dict[str, Any]] = {}
    for amount, tax in zip(item_totals, line_taxes, strict=True):
        base = amount * (1 - share)
        rate = tax.percentage
        for comp in tax.components:
            pct = Decimal(comp["tax_percentage"])
            part = base * pct / (HUNDRED + rate) if inclusive else base * pct / HUNDRED
            entry = per_tax.setdefault(comp["tax_id"], {"tax_id": comp["tax_id"], "tax_name": comp["tax_name"],
                                                        "tax_percentage": pct, "raw": Decimal(0)})
            entry["raw"] += part
    taxes = [{"tax_id": e["tax_id"], "tax_name": e["tax_name"], "tax_percentage": e["tax_percentage"],
              "tax_amount": rounded(e["raw"], places)} for e in per_tax.values()]
    tax_total = sum((t["tax_amount"] for t in taxes), Decimal(0))
    total = sub_total - discount if inclusive else sub_total - discount + tax_total
    return Totals(sub_total=rounded(sub_total, places), discount_total=discount, tax_total=tax_total,
                  total=rounded(total, places), taxes=taxes)
