"""The billing documents the host hands to the core: customers, their addresses, invoice lines and invoices.

Re-exported by :mod:`integration_core.models`. Money is always ``Decimal``; how amounts add up is in
:mod:`integration_core.amounts`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from . import validation

if TYPE_CHECKING:
    from .amounts import Totals


def _decimal(value: Any) -> Decimal:
    return validation.money(value)


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _optional_date(value: Any) -> dt.date | None:
    return None if value in (None, "") else _date(value)


def _currency(value: Any) -> str:
    return validation.currency(value)


def _nonempty(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    label = f"{type(instance).__name__.lower()} {attribute.name}"
    validation.required_text(label, value, multiline=attribute.name == "description")


def _email(value: Any) -> str | None:
    return validation.email(value)


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value.strip() or None


def _optional_decimal(value: Any) -> Decimal | None:
    return None if value is None or value == "" else _decimal(value)


def _metadata(value: Any) -> Mapping[str, str]:
    """Flat text key/value pairs (providers map chosen keys to their custom fields)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError("metadata must be an object of text keys and values")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError("metadata keys must be non-empty text")
        if isinstance(item, bool | float) or not isinstance(item, str | int | Decimal):
            raise TypeError(f"metadata[{key!r}] must be text or an integer")
        out[key] = str(item)
    return out


def _country(value: Any) -> str | None:
    code = _optional_text(value)
    if code is None:
        return None
    code = code.upper()
    if len(code) != 2 or not code.isalpha():
        raise ValueError(f"country must be an ISO 3166-1 alpha-2 code such as 'IN' or 'GB', got {value!r}")
    return code


def _region(value: Any) -> str | None:
    return (_optional_text(value) or "").upper() or None


@attrs.frozen
class Address:
    """A postal address; ``country`` is ISO 3166-1 alpha-2, ``state`` the region's code (e.g. ``KA``, ``CA``)."""

    line1: str | None = attrs.field(default=None, converter=_optional_text)
    line2: str | None = attrs.field(default=None, converter=_optional_text)
    city: str | None = attrs.field(default=None, converter=_optional_text)
    state: str | None = attrs.field(default=None, converter=_region)
    postal_code: str | None = attrs.field(default=None, converter=_optional_text)
    country: str | None = attrs.field(default=None, converter=_country)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Address:
        if not isinstance(data, Mapping):
            raise TypeError("billing_address must be an object")
        unknown = set(data) - {f.name for f in attrs.fields(cls)}
        if unknown:
            raise ValueError(f"billing_address has unknown fields {sorted(unknown)}")
        return cls(**data)


def _address(value: Any) -> Address | None:
    return value if value is None or isinstance(value, Address) else Address.from_dict(value)


# A provider-agnostic hint of how a customer is taxed; providers map it to their treatments
# (docs/invoice-schema.md). ``business``: registered for tax (``tax_number`` then required where the
# provider's country needs one); ``business_unregistered``; ``consumer``; ``overseas``; ``exempt``.
TAX_TREATMENTS = ("business", "business_unregistered", "consumer", "overseas", "exempt")


def _tax_treatment(value: Any) -> str | None:
    text = _optional_text(value)
    if text is not None and text not in TAX_TREATMENTS:
        raise ValueError(f"tax_treatment must be one of {', '.join(TAX_TREATMENTS)}, got {value!r}")
    return text


@attrs.frozen
class Customer:
    """The host's customer, as an invoice carries it."""

    id: str = attrs.field(validator=_nonempty)
    name: str = attrs.field(validator=_nonempty)
    email: str | None = attrs.field(default=None, converter=_email)
    company_name: str | None = None
    billing_address: Address | None = attrs.field(default=None, converter=_address)
    tax_number: str | None = attrs.field(default=None, converter=_optional_text)  # VAT / GSTIN / TRN ...
    tax_treatment: str | None = attrs.field(default=None, converter=_tax_treatment)
    metadata: Mapping[str, str] = attrs.field(factory=dict, converter=_metadata)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "email": self.email,
                               "company_name": self.company_name}
        if self.billing_address is not None:
            out["billing_address"] = self.billing_address.to_dict()
        if self.tax_number is not None:
            out["tax_number"] = self.tax_number
        if self.tax_treatment is not None:
            out["tax_treatment"] = self.tax_treatment
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Customer:
        if not isinstance(data, Mapping):
            raise TypeError("customer must be a JSON object")
        return cls(
            id=validation.required_text("customer id", data["id"]),
            name=validation.required_text("customer name", data["name"]),
            email=data.get("email"), company_name=data.get("company_name"),
            billing_address=data.get("billing_address"), tax_number=data.get("tax_number"),
            tax_treatment=data.get("tax_treatment"), metadata=data.get("metadata"),
        )


def _quantity(value: Any) -> Decimal | None:
    result = _optional_decimal(value)
    if result is not None and result <= 0:
        raise ValueError(f"quantity must be greater than zero, got {value!r}")
    return result


def _percent(value: Any) -> Decimal | None:
    result = _optional_decimal(value)
    if result is not None and not Decimal(0) <= result <= Decimal(100):
        raise ValueError(f"a percentage must be between 0 and 100, got {value!r}")
    return result


def _non_negative(value: Any) -> Decimal | None:
    result = _optional_decimal(value)
    if result is not None and result < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return result


@attrs.frozen
class LineItem:
    """One billed line. The first form, ``description`` and ``amount``, still holds (quantity 1, unit price =
    amount). A line may instead carry ``quantity`` and ``unit_price`` (its amount is then computed, see
    :mod:`integration_core.amounts`), a product code, a discount, and its tax: a rate with a name, a provider
    tax code, or an exemption with its reason. ``amount`` is before the invoice's discount, and includes
    tax when the invoice is tax-inclusive."""

    description: str = attrs.field(validator=_nonempty)
    amount: Decimal = attrs.field(default=None, converter=_optional_decimal)
    quantity: Decimal | None = attrs.field(default=None, converter=_quantity)
    unit_price: Decimal | None = attrs.field(default=None, converter=_optional_decimal)
    product_code: str | None = attrs.field(default=None, converter=_optional_text)
    unit: str | None = attrs.field(default=None, converter=_optional_text)
    discount_percent: Decimal | None = attrs.field(default=None, converter=_percent)
    discount_amount: Decimal | None = attrs.field(default=None, converter=_non_negative)
    tax_rate: Decimal | None = attrs.field(default=None, converter=_percent)
    tax_name: str | None = attrs.field(default=None, converter=_optional_text)
    tax_code: str | None = attrs.field(default=None, converter=_optional_text)
    tax_exemption: str | None = attrs.field(default=None, converter=_optional_text)
    tax_exemption_reason: str | None = attrs.field(default=None, converter=_optional_text)
    classification_code: str | None = attrs.field(default=None, converter=_optional_text)  # e.g. HSN/SAC

    def __attrs_post_init__(self) -> None:
        if self.discount_percent is not None and self.discount_amount is not None:
            raise ValueError(f"line {self.description!r}: give discount_percent or discount_amount, not both")
        if self.unit_price is None:
            if self.amount is None:
                raise ValueError(f"line {self.description!r} needs an amount or a unit_price")
            if self.discount_percent is not None or self.discount_amount is not None or self.quantity is not None:
                raise ValueError(f"line {self.description!r}: quantity and discounts need a unit_price")
        elif self.amount is None:  # unrounded here; the invoice rounds it to its currency
            gross = (self.quantity or Decimal(1)) * self.unit_price
            object.__setattr__(self, "amount", gross - _line_discount(self, gross, None))
        if self.tax_exemption is not None and (self.tax_rate or self.tax_code):
            raise ValueError(f"line {self.description!r}: a tax exemption excludes a tax rate or tax code")
        if self.tax_exemption_reason is not None and self.tax_exemption is None:
            raise ValueError(f"line {self.description!r}: tax_exemption_reason needs tax_exemption")

    @property
    def effective_quantity(self) -> Decimal:
        return self.quantity if self.quantity is not None else Decimal(1)

    @property
    def effective_unit_price(self) -> Decimal:
        return self.unit_price if self.unit_price is not None else self.amount

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": self.description, "amount": str(self.amount)}
        for field in attrs.fields(LineItem)[2:]:
            value = getattr(self, field.name)
            if value is not None:
                out[field.name] = str(value) if isinstance(value, Decimal) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LineItem:
        if not isinstance(data, Mapping):
            raise TypeError("each line must be an object")
        for key, value in data.items():
            if isinstance(value, float):
                raise TypeError(f"line {key} must be a string or an integer, not a float: money and quantities "
                                "are exact, never floats")
        unknown = set(data) - {f.name for f in attrs.fields(cls)}
        if unknown:
            raise ValueError(f"line has unknown fields {sorted(unknown)}")
        return cls(**data)


InvoiceLine = LineItem


def _line_discount(line: LineItem, gross: Decimal, places: int | None) -> Decimal:
    from .amounts import discount, round_money

    if places is None:
        if line.discount_percent is not None:
            return gross * line.discount_percent / 100
        return line.discount_amount or Decimal(0)
    return discount(round_money(gross, places), line.discount_percent,
                    round_money(line.discount_amount, places) if line.discount_amount is not None else None, places)


def _lines(value: Any) -> tuple[LineItem, ...]:
    lines = tuple(v if isinstance(v, LineItem) else LineItem.from_dict(v) for v in value)
    if not lines:
        raise ValueError("an invoice needs at least one line")
    return lines


@attrs.frozen
class Invoice:
    """A finalized host invoice, the unit of outbound sync. Amounts follow :mod:`integration_core.amounts`."""

    id: str = attrs.field(validator=_nonempty)
    number: str = attrs.field(validator=_nonempty)
    customer: Customer
    currency: str = attrs.field(converter=_currency)
    issue_date: dt.date = attrs.field(converter=_date)
    lines: tuple[LineItem, ...] = attrs.field(converter=_lines)
    due_date: dt.date | None = attrs.field(default=None, converter=_optional_date)
    notes: str | None = None
    tax_inclusive: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    discount_percent: Decimal | None = attrs.field(default=None, converter=_percent)
    discount_amount: Decimal | None = attrs.field(default=None, converter=_non_negative)
    metadata: Mapping[str, str] = attrs.field(factory=dict, converter=_metadata)

    def __attrs_post_init__(self) -> None:
        from .amounts import round_money

        if self.discount_percent is not None and self.discount_amount is not None:
            raise ValueError("give the invoice discount_percent or discount_amount, not both")
        places = self.precision
        lines = []
        for n, line in enumerate(self.lines, start=1):
            if line.unit_price is not None:
                gross = round_money(line.effective_quantity * line.unit_price, places)
                expected = gross - _line_discount(line, gross, places)
                if round_money(line.amount, places) != expected:
                    raise ValueError(
                        f"line {n} ({line.description!r}): amount {line.amount} is not quantity x unit_price less "
                        f"discount = {expected} {self.currency}")
                line = attrs.evolve(line, amount=expected)
            lines.append(line)
        object.__setattr__(self, "lines", tuple(lines))
        if self.discount_amount is not None and self.discount_amount > self.subtotal:
            raise ValueError(f"invoice discount {self.discount_amount} exceeds the subtotal {self.subtotal}")
        # The sign rules (docs/invoice-schema.md): a line may be a charge, zero or a credit (negative), a given
        # amount in the currency's precision; the invoice's total must be above zero (a credit note is not one).
        for n, line in enumerate(self.lines, start=1):
            if line.unit_price is None:
                validation.check_precision(line.amount, self.currency, f"line {n} amount")
        if self.total <= 0:
            raise ValueError(f"invoice total must be greater than zero, got {self.total} {self.currency}")

    @property
    def precision(self) -> int:
        """The currency's minor units (JPY 0, KWD 3, most 2)."""
        from .amounts import minor_units

        return minor_units(self.currency)

    def totals(self) -> Totals:
        """Subtotal, invoice discount, taxes and total (:class:`integration_core.amounts.Totals`)."""
        from .amounts import totals

        return totals(self.lines, self.precision, inclusive=self.tax_inclusive,
                      discount_percent=self.discount_percent, discount_amount=self.discount_amount)

    @property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0"))

    @property
    def total(self) -> Decimal:
        """What the customer owes: lines, less the invoice discount, plus tax unless amounts include it."""
        if self.discount_percent is None and self.discount_amount is None and \
                all(line.tax_rate is None for line in self.lines):
            return self.subtotal  # the first round's invoices: exactly the sum of their lines
        return self.totals().total

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "number": self.number,
            "customer": self.customer.to_dict(),
            "currency": self.currency,
            "issue_date": self.issue_date.isoformat(),
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "lines": [line.to_dict() for line in self.lines],
            "notes": self.notes,
        }
        if self.tax_inclusive:
            out["tax_inclusive"] = True
        for name in ("discount_percent", "discount_amount"):
            if getattr(self, name) is not None:
                out[name] = str(getattr(self, name))
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Invoice:
        """Build from JSON-like data; raises ``ValueError``/``KeyError``/``TypeError`` on bad input."""
        if not isinstance(data, Mapping):
            raise TypeError("an invoice must be a JSON object")
        lines = data["lines"]
        if not isinstance(lines, list):
            raise TypeError("lines must be a list")
        for name in ("discount_percent", "discount_amount"):
            if isinstance(data.get(name), float):
                raise TypeError(f"{name} must be a string or an integer, not a float (money is exact)")
        tax_inclusive = data.get("tax_inclusive", False)
        if not isinstance(tax_inclusive, bool):
            raise TypeError("tax_inclusive must be true or false")
        return cls(
            id=validation.required_text("invoice id", data["id"]),
            number=validation.required_text("invoice number", data["number"]),
            customer=Customer.from_dict(data["customer"]),
            currency=data["currency"],
            issue_date=data["issue_date"],
            due_date=data.get("due_date"),
            lines=[LineItem.from_dict(line) for line in lines],
            notes=data.get("notes"),
            tax_inclusive=tax_inclusive,
            discount_percent=data.get("discount_percent"),
            discount_amount=data.get("discount_amount"),
            metadata=data.get("metadata"),
        )


