"""`[[destination]]` in the sources file: where verified events are POSTed, signed with
Standard Webhooks.

```toml
[[destination]]
name = "billing"
url = "http://127.0.0.1:9000/hooks"      # http(s) only
secret = "${BILLING_DESTINATION_SECRET}"  # whsec_<base64>
sources = ["stripe", "demo"]              # whose events it receives
event_types = ["invoice.*"]               # optional globs (fnmatch, case-sensitive)
timeout_seconds = 10
max_attempts = 8
rate_per_second = 50                      # optional; per worker process
ordered = false                           # true: one entity's events in order, one at a time
tenant = "acme"                           # optional; absent: shared
```

A configuration that cannot work refuses to start, with a message naming the setting
(`destination 'billing': url must be http or https`).
"""

from __future__ import annotations

import binascii
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hookyard.config import ConfigError
from hookyard.providers.signing import standard_webhooks_key

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class DestinationError(ConfigError):
    pass


class DestinationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    secret: str = Field(repr=False)
    sources: tuple[str, ...]
    event_types: tuple[str, ...] = ()  # empty: every type
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=8, ge=1, le=100)
    rate_per_second: float | None = Field(default=None, gt=0)
    ordered: bool = False
    tenant: str | None = None  # None: shared (receives every tenant's events of its sources)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 1-100 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be http or https")
        if not parts.hostname:
            raise ValueError("has no host")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        # An empty key signs anything anyone could forge: refuse it (an unset variable after
        # `whsec_` leaves just the prefix).
        if not value.removeprefix("whsec_"):
            raise ValueError("is empty (a whsec_<base64> key, e.g. from an unset variable)")
        if not value.startswith("whsec_"):
            raise ValueError("must be a Standard Webhooks key: whsec_<base64>")
        try:
            key = standard_webhooks_key(value)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64 after whsec_") from None
        if len(key) < 16:
            raise ValueError("is too short (at least 16 bytes of key, i.e. 24 base64 characters)")
        return value

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one source")
        return value

    @field_validator("event_types")
    @classmethod
    def _event_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not t.strip() for t in value):
            raise ValueError("must be non-empty globs such as 'invoice.*'")
        return value

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty (leave it out for a shared destination)")
        return value

    def matches(self, source: str, event_type: str, tenant: str | None) -> bool:
        """Does an event of `source` of type `event_type` of `tenant` go to this destination?
        A tenant's destination receives only that tenant's events; a shared one all of them."""
        if source not in self.sources:
            return False
        if self.tenant is not None and tenant != self.tenant:
            return False
        if not self.event_types:
            return True
        return any(fnmatch.fnmatchcase(event_type, glob) for glob in self.event_types)


def _message(name: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "destination"
        if error["type"] == "value_error":
            problems.append(f"{field} {error['ctx']['error']!s}")
        elif error["type"] == "extra_forbidden":
            problems.append(f"{field} is not a destination setting")
        elif error["type"] == "missing":
            problems.append(f"{field} is required")
        else:
            problems.append(f"{field}: {error['msg']}")
    return f"destination {name!r}: " + "; ".join(problems)


def build_destination(raw: Mapping[str, Any]) -> DestinationConfig:
    name = raw.get("name")
    label = name if isinstance(name, str) else "?"
    try:
        return DestinationConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise DestinationError(_message(label, exc)) from None


@dataclass(frozen=True)
class Destinations:
    """Every configured destination; checked against the sources that exist."""

    items: tuple[DestinationConfig, ...] = ()

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def by_name(self) -> dict[str, DestinationConfig]:
        return {d.name: d for d in self.items}

    def for_source(self, source: str) -> tuple[DestinationConfig, ...]:
        return tuple(d for d in self.items if source in d.sources)


def build_destinations(
    entries: Sequence[Mapping[str, Any]], known_sources: Iterable[str]
) -> Destinations:
    known = set(known_sources)
    built: list[DestinationConfig] = []
    names: set[str] = set()
    for raw in entries:
        if not isinstance(raw, Mapping):
            raise DestinationError("declare destinations as [[destination]] tables")
        destination = build_destination(raw)
        if destination.name in names:
            raise DestinationError(f"two destinations are named {destination.name!r}")
        names.add(destination.name)
        unknown = [s for s in destination.sources if s not in known]
        if unknown:
            raise DestinationError(
                f"destination {destination.name!r}: sources names unknown source"
                f" {', '.join(repr(s) for s in unknown)} (known: {', '.join(sorted(known))})"
            )
        built.append(destination)
    return Destinations(tuple(built))


__all__ = [
    "DestinationConfig",
    "DestinationError",
    "Destinations",
    "build_destination",
    "build_destinations",
]
