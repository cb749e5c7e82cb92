"""The declarative sync rules: for each customer field, the HubSpot company property it maps
to, which way it flows and whose value wins (docs/sync.md has the table).

Direction: `out` (we publish it; HubSpot's value is recorded, never applied), `both`.
Authority: `ours` (a HubSpot change is not applied and ours is pushed again: automatic,
written to the sync log, no conflict), `latest` (the newer change wins, by time; a tie is
the one case the rule cannot decide: a conflict for a person), `hubspot` (HubSpot's change
is applied; ours is pushed only while HubSpot has not changed it since the last sync).

Property names: `company_name` is HubSpot's standard `name`; every other field is a custom
company property named `hookyard_<field>`. Each is configurable per field
(`HOOKYARD_HUBSPOT_PROPERTY_NAMES`, a JSON object field -> name); `hookyard hubspot
properties --create` makes the custom ones. `services` is a multiple-checkbox property whose
values are `voice`, `messaging`, `telecom_data`, sent by HubSpot joined with `;`.

Values are compared and stored in field_state as canonical text: text as is (trimmed),
money as a decimal with two places ("1500.00"), services as the known names in a fixed order
joined with `;` ("" for none).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from hookyard.config import ConfigError

SERVICES = ("voice", "messaging", "telecom_data")
MAX_CENTS = 10**15  # within BIGINT with room to spare


class Direction(StrEnum):
    OUT = "out"
    BOTH = "both"


class Authority(StrEnum):
    OURS = "ours"
    HUBSPOT = "hubspot"
    LATEST = "latest"


class OnTheirChange(StrEnum):
    """What a change made in HubSpot does (the table's last column)."""

    REPUSH = "not applied; re-pushed ours"
    LATEST_WINS = "latest change wins, by time"
    APPLIED = "applied; ours is pushed only when HubSpot has not changed it since the last sync"


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
        """HubSpot's value may be applied to ours."""
        return self.direction is Direction.BOTH

    @property
    def on_their_change(self) -> OnTheirChange:
        if not self.inbound or self.authority is Authority.OURS:
            return OnTheirChange.REPUSH
        if self.authority is Authority.LATEST:
            return OnTheirChange.LATEST_WINS
        return OnTheirChange.APPLIED

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


def default_property(field: str) -> str:
    return "name" if field == "company_name" else f"hookyard_{field}"


# The table of issue 14, one row per field (property names: the defaults).
RULES: tuple[FieldRule, ...] = (
    FieldRule("ban", default_property("ban"), Direction.OUT, Authority.OURS, max_length=11),
    FieldRule("company_name", default_property("company_name"), Direction.BOTH, Authority.LATEST),
    FieldRule("status", default_property("status"), Direction.OUT, Authority.OURS, max_length=30),
    FieldRule(
        "customer_type",
        default_property("customer_type"),
        Direction.OUT,
        Authority.OURS,
        max_length=30,
    ),
    FieldRule(
        "credit_limit",
        default_property("credit_limit"),
        Direction.BOTH,
        Authority.HUBSPOT,
        Kind.MONEY,
        required=False,
    ),
    FieldRule(
        "current_balance",
        default_property("current_balance"),
        Direction.OUT,
        Authority.OURS,
        Kind.MONEY,
    ),
    FieldRule(
        "services", default_property("services"), Direction.OUT, Authority.OURS, Kind.SERVICES
    ),
)

# Field metadata (direction, authority, kind) by field; for property names use `active()`.
BY_FIELD: Mapping[str, FieldRule] = {r.field: r for r in RULES}

# HubSpot's internal property names: lower-case letters, digits and underscores.
_PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")


@dataclass(frozen=True, slots=True)
class FieldRules:
    """The rules with the property names in use."""

    rules: tuple[FieldRule, ...]

    @classmethod
    def named(cls, names: Mapping[str, str] | None = None) -> FieldRules:
        """The rules with `names` (field -> HubSpot property) instead of the defaults;
        ConfigError naming the setting for an unknown field, a malformed or repeated name."""
        names = dict(names or {})
        setting = "HOOKYARD_HUBSPOT_PROPERTY_NAMES"
        unknown = sorted(set(names) - set(BY_FIELD))
        if unknown:
            raise ConfigError(f"{setting}: no field {unknown} (fields: {', '.join(BY_FIELD)})")
        for field, name in names.items():
            if not isinstance(name, str) or not _PROPERTY_NAME.fullmatch(name):
                raise ConfigError(
                    f"{setting}: {field} -> {name!r} is not a HubSpot property name"
                    " (lower-case letters, digits, _)"
                )
        rules = tuple(replace(r, hubspot_property=names.get(r.field, r.hubspot_property))
                      for r in RULES)  # fmt: skip
        taken = [r.hubspot_property for r in rules]
        if len(set(taken)) != len(taken):
            raise ConfigError(f"{setting}: two fields map to one property: {sorted(taken)}")
        return cls(rules)

    @property
    def by_field(self) -> Mapping[str, FieldRule]:
        return {r.field: r for r in self.rules}

    @property
    def by_property(self) -> Mapping[str, FieldRule]:
        return {r.hubspot_property: r for r in self.rules}

    def prop(self, field: str) -> str:
        return self.by_field[field].hubspot_property


DEFAULT = FieldRules.named()
_active = DEFAULT


def active() -> FieldRules:
    """The rules this process uses (property names from the settings, `use`)."""
    return _active


def use(rules: FieldRules) -> None:
    """Set the process's property names, once at start (Runtime.build, from the settings)."""
    global _active
    _active = rules
