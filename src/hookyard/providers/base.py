"""The adapter contract: the only code that knows a provider's format.

An adapter verifies a request (every verifier in its stack must pass), parses the raw body
into one or more events (each with its dedup key, entity key and provider timestamp) and
handles a stored event inside the worker's transaction.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    method: str
    url: str  # as the sender saw it: scheme://host/path?query
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    client_ip: str | None = None


@dataclass(frozen=True, slots=True)
class PlainResponse:
    """What an adapter answers itself (e.g. Meta's GET handshake)."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


class ParseError(ValueError):
    """The body is not what this provider sends (answered 400)."""


# Provider clocks run a little ahead of ours; beyond this, a provider time counts as now.
FUTURE_TOLERANCE = timedelta(minutes=5)

# Column widths of the inbox (db/schema.py): what a parsed event must fit.
EVENT_TYPE_LENGTH = 200
KEY_LENGTH = 300


def _storable(value: str, limit: int) -> bool:
    if len(value) > limit or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which no database column takes
        return False
    return True


def storable_key(value: str) -> str:
    """The key itself when a column can hold it; else a digest of it (still one per value)."""
    if _storable(value, KEY_LENGTH):
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def storable_text(value: str, limit: int) -> str:
    """A readable label: NUL dropped, lone surrogates escaped, cut to the column width."""
    if not _storable(value, limit):
        value = value.replace("\x00", "").encode("utf-8", "backslashreplace").decode("utf-8")
    return value[:limit]


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """One event of a request, in the shape the inbox stores: every adapter's output passes
    through here, so a provider's odd value (a 400-character id, a NUL, a lone surrogate, a
    time no database holds) becomes a storable key or a ParseError, never a failed commit."""

    event_type: str
    dedup_key: str
    payload: Any
    entity_key: str | None = None
    provider_ts: datetime | None = None
    # True when the payload is the whole body (one event per request): the inbox then keeps
    # only the raw body, and the payload is decoded from it when read.
    payload_is_body: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_type", storable_text(self.event_type, EVENT_TYPE_LENGTH))
        object.__setattr__(self, "dedup_key", storable_key(self.dedup_key))
        if self.entity_key is not None:
            object.__setattr__(self, "entity_key", storable_key(self.entity_key))
        if self.provider_ts is not None:
            if self.provider_ts.tzinfo is None:
                raise ParseError("provider timestamp without a time zone")
            try:
                utc = self.provider_ts.astimezone(UTC)
            except OverflowError:
                raise ParseError("provider timestamp out of range") from None
            # A time from the future (a wrong clock, or a forged 9999-12-31) would make every
            # later genuine event of the entity look older and be superseded, for good: for
            # ordering it counts as now (the payload keeps what was sent).
            now = datetime.now(UTC)
            if utc > now + FUTURE_TOLERANCE:
                utc = now
            object.__setattr__(self, "provider_ts", utc)


class Outcome(StrEnum):
    DONE = "done"
    IGNORED = "ignored"
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as a handler sees it."""

    id: int
    source: str
    provider: str
    tenant: str | None
    event_type: str
    dedup_key: str
    entity_key: str | None
    provider_ts: datetime | None
    payload: Any
    headers: Mapping[str, str]
    attempts: int
    origin: str


class Verifier(Protocol):
    @property
    def secret_headers(self) -> tuple[str, ...]:
        """The (lower-case) headers carrying the signature or credential it checks."""
        ...

    def verify(self, request: WebhookRequest) -> str | None:
        """None when the request passes; otherwise the reason it does not."""


class SourceConfig(BaseModel):
    """Options common to every source; providers extend it with their own secrets.

    A secret field (`secret_fields`) takes one secret or a list, newest first, while a secret
    is rotated (`client_secret = ["new", "old"]`): requests signed with any of them pass, and
    the field itself holds the newest (what hookyard's own tools sign with)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    secret_fields: ClassVar[tuple[str, ...]] = ()

    name: str
    provider: str
    path: str
    tenant: str | None = None
    description: str = ""
    # A source with no verifier (a TCR source without a token or an IP allow-list) accepts
    # anyone's requests: refused at start-up unless said here, on purpose.
    allow_unauthenticated: bool = False
    # Most events one request may carry (None: the provider's own bound, `Adapter.max_events`);
    # more are refused with 413 and nothing is stored.
    max_events_per_request: int | None = Field(default=None, ge=1, le=10_000)
    # The older secrets of a rotation, by field: filled from a list given for a secret field.
    previous_secrets: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _rotating_secrets(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        previous = dict(data.get("previous_secrets") or {})
        for name in cls.secret_fields:
            value = data.get(name)
            if isinstance(value, list | tuple):
                if not value or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"{name}: a secret, or a list of secrets (newest first)")
                data[name], previous[name] = value[0], tuple(value[1:])
        if previous:
            data["previous_secrets"] = previous
        return data

    def secrets(self, name: str) -> tuple[str, ...]:
        """The secrets of field `name` a request may be signed with, newest first."""
        current = getattr(self, name)
        return (current, *self.previous_secrets.get(name, ())) if current is not None else ()


@dataclass(frozen=True)
class Source:
    config: SourceConfig
    adapter: Adapter = field(repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def path(self) -> str:
        return self.config.path


class Adapter(ABC):
    provider: ClassVar[str]
    config_model: ClassVar[type[SourceConfig]] = SourceConfig
    # Content types this provider sends; anything else is answered 415. A missing
    # Content-Type is tolerated (some senders omit it) and the body decides.
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    # Most events one request may carry (HubSpot sends up to 100); a source may lower it.
    max_events: ClassVar[int] = 1

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.verifiers: Sequence[Verifier] = self.build_verifiers()
        # Headers holding a signature or a credential: never stored (a signature with its
        # body is a request anyone could send again).
        self.secret_headers: frozenset[str] = frozenset(
            name for verifier in self.verifiers for name in verifier.secret_headers
        )

    @property
    def events_per_request(self) -> int:
        return self.config.max_events_per_request or self.max_events

    @abstractmethod
    def build_verifiers(self) -> Sequence[Verifier]: ...

    def verify(self, request: WebhookRequest) -> str | None:
        # Every verifier in the stack runs and must pass: a missing header never skips one.
        for verifier in self.verifiers:
            reason = verifier.verify(request)
            if reason is not None:
                return reason
        return None

    def handshake(self, request: WebhookRequest) -> PlainResponse | None:
        """Answer a GET (subscription handshake); None means GET is not supported."""
        return None

    @abstractmethod
    def parse(self, request: WebhookRequest) -> list[ParsedEvent]: ...

    def handle(self, event: StoredEvent, tx: Connection) -> Outcome:
        """Apply the event inside `tx`, the transaction that also marks it done."""
        return Outcome.IGNORED

    def handle_batch(self, events: Sequence[StoredEvent], tx: Connection) -> dict[int, Outcome]:
        """Apply a claimed batch of this source's events (in id order) inside `tx`; the outcome
        of each by id. One at a time here; the seed providers' domains apply a whole batch
        with a few statements (domain/batch.py)."""
        return {event.id: self.handle(event, tx) for event in events}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN/Infinity: no JSON column stores them


def load_json(body: bytes) -> Any:
    try:
        # JSON on the wire is UTF-8 (RFC 8259); decoding first skips json's encoding sniffing.
        return json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError:
        try:
            return json.loads(body, parse_constant=_no_constants)  # UTF-16/32, as json allows
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ParseError(f"body is not valid JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"body is not valid JSON: {exc}") from None


def body_hash(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


def canonical_json(value: Any) -> str:
    # ASCII-only: escapes keep even a lone surrogate hashable.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
