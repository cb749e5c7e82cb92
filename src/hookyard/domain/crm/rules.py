"""The declarative sync rules: for each customer field, the HubSpot company property it maps
to, which way it flows and whose value wins.

Direction: `out` (we publish it; an inbound change is only recorded), `in` (HubSpot owns it),
`both`. Authority: `ours` (a differing inbound value is a conflict for a person), `theirs`
(an inbound value is applied), `latest` (the newer change wins, by time).

Only `name` is a standard HubSpot company property; the others are custom company properties
the HubSpot app defines (internal names prefixed `hookyard_`). `hookyard_services` is a
multiple-checkbox property whose values are `voice`, `messaging`, `telecom_data`, sent by
HubSpot joined with `;`.

Values are compared and stored in field_state as canonical text: text as is (trimmed),
money as a decimal with two places ("1500.00"), services as the known names in a fixed order
joined with `;` ("" for none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

SERVICES = ("voice", "messaging", "telecom_data")
MAX_CENTS = 10**15  # within BIGINT with room to spare


class Direction(StrEnum):
    OUT = "out"
    IN = "in"
    BOTH = "both"


class Authority(StrEnum):
    OURS = "ours"
    THEIRS = "theirs"
    LATEST = "latest"


class Kind(StrEnum):
    TEXT = "text"
    MONEY = "money"
    SERVICES = "services"


class UnusableValue(ValueError):
    """An inbound value this field cannot hold (not a number, an unknown service…)."""


@dataclass(frozen=True, slots=True)
class FieldRule:
    field: str
    hubspot_property: str
    direction: Direction
    authority: Authority
    kind: Kind = Kind.TEXT
    max_length: int = 255
    required: bool = True  # False: HubSpot clearing the property clears ours

    @property
    def inbound(self) -> bool:
        return self.direction is not Direction.OUT

    def parse(self, raw: Any) -> str | None:
        """HubSpot's propertyValue as canonical text; None when cleared."""
        if raw is None or isinstance(raw, bool) or not isinstance(raw, str | int | float):
            if raw is None:
                return self._cleared()
            raise UnusableValue(f"{self.field}: not a value")
        text = str(raw).strip()
        if self.kind is Kind.SERVICES:
            names = {part.strip().lower() for part in text.replace(",", ";").split(";")} - {""}
            unknown = names - set(SERVICES)
            if unknown:
                raise UnusableValue(f"{self.field}: unknown services {sorted(unknown)}")
            return ";".join(s for s in SERVICES if s in names)
        if not text:
            return self._cleared()
        if self.kind is Kind.MONEY:
            return money_text(to_cents(text))
        if len(text) > self.max_length or "\x00" in text:
            raise UnusableValue(f"{self.field}: longer than {self.max_length}")
        return text

    def _cleared(self) -> str | None:
        if self.required:
            raise UnusableValue(f"{self.field}: cannot be cleared")
        return None

    def columns(self, value: str | None) -> dict[str, Any]:
        """Canonical text as the customer row's column values."""
        if self.kind is Kind.MONEY:
            return {f"{self.field}_cents": None if value is None else to_cents(value)}
        if self.kind is Kind.SERVICES:
            names = set((value or "").split(";"))
            return {f"service_{s}": s in names for s in SERVICES}
        return {self.field: value}

    def current(self, customer: Mapping[Any, Any]) -> str | None:
        """The customer row's value as canonical text."""
        if self.kind is Kind.MONEY:
            cents = customer[f"{self.field}_cents"]
            return None if cents is None else money_text(int(cents))
        if self.kind is Kind.SERVICES:
            return ";".join(s for s in SERVICES if customer[f"service_{s}"])
        value = customer[self.field]
        return None if value is None else str(value)


def to_cents(text: str) -> int:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise UnusableValue(f"not a number: {text[:40]!r}") from None
    if not amount.is_finite():
        raise UnusableValue("not a finite number")
    cents = int((amount * 100).quantize(Decimal(1)))
    if abs(cents) >= MAX_CENTS:
        raise UnusableValue("amount out of range")
    return cents


def money_text(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


# The seed table of issue 3.
RULES: tuple[FieldRule, ...] = (
    FieldRule("ban", "hookyard_ban", Direction.OUT, Authority.OURS, max_length=11),
    FieldRule("company_name", "name", Direction.BOTH, Authority.LATEST),
    FieldRule("status", "hookyard_status", Direction.BOTH, Authority.OURS, max_length=30),
    FieldRule(
        "customer_type", "hookyard_customer_type", Direction.BOTH, Authority.OURS, max_length=30
    ),
    FieldRule(
        "credit_limit",
        "hookyard_credit_limit",
        Direction.IN,
        Authority.THEIRS,
        Kind.MONEY,
        required=False,
    ),
    FieldRule(
        "current_balance", "hookyard_current_balance", Direction.OUT, Authority.OURS, Kind.MONEY
    ),
    FieldRule("services", "hookyard_services", Direction.BOTH, Authority.OURS, Kind.SERVICES),
)

BY_FIELD: Mapping[str, FieldRule] = {r.field: r for r in RULES}
BY_PROPERTY: Mapping[str, FieldRule] = {r.hubspot_property: r for r in RULES}
