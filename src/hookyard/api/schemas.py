"""What the management API shows of events, sources, the rejected log and statistics."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from hookyard.api.privacy import MAX_DEPTH, clip_depth, mask_error
from hookyard.inbox.model import Status

# Text a query may carry: no NUL (PostgreSQL refuses it in text); the pattern says so in
# the OpenAPI schema, so that a client knows before it asks.
NO_NUL = r"^[^\x00]*$"


def without_surrogates(value: Any) -> Any:
    """A JSON value with every lone surrogate (JSON allows "\\ud800", UTF-8 does not)
    replaced by U+FFFD: no driver could store one, and no error message could echo one."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_surrogates(v) for v in value]
    return value


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def rfc3339(value: Any) -> Any:
    """Only what the schema's `date-time` promises: an RFC 3339 text with its UTC offset
    (not a bare date, a naive time or a number of seconds, which pydantic would guess at)."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError("give a date-time with its offset, e.g. 2025-01-31T12:00:00Z")


def as_utc(value: datetime) -> datetime:
    """A time bound in UTC (a naive datetime from Python is taken as UTC); one whose UTC
    form falls outside the calendar (0001-01-01T00:00:00+01:00) becomes the calendar's end
    on that side."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if value.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


UTCBound = Annotated[datetime, BeforeValidator(rfc3339), AfterValidator(as_utc)]


class Problem(BaseModel):
    """Every error the API raises itself (validation errors have FastAPI's shape)."""

    detail: str


class EventSummary(BaseModel):
    id: int
    source: str
    provider: str
    tenant: str | None
    event_type: str
    dedup_key: str
    entity_key: str | None
    provider_ts: datetime | None
    status: str
    attempts: int
    origin: str
    replay_count: int
    next_attempt_at: datetime
    received_at: datetime
    processed_at: datetime | None
    last_error: str | None = Field(
        description="the last failure; for viewers, quoted values, e-mail addresses and long"
        " numbers masked (an error can echo the payload)"
    )

    @classmethod
    def masked_from_row(cls, row: dict[str, Any]) -> EventSummary:
        return cls.model_validate({**row, "last_error": mask_error(row["last_error"])})


class EventDetail(EventSummary):
    request_id: int | None = Field(description="the request that carried the event")
    headers: dict[str, str] | None = Field(
        description="the request's headers kept (never credentials); superadmins only"
    )
    payload: Any = Field(
        description="personal values replaced by '***' when masked; what nests deeper than"
        f" {MAX_DEPTH} levels is replaced (by '***' when masked)"
    )
    body: str | None = Field(
        description="the request's raw body: UTF-8 text, or base64 when body_encoding says"
        " so; superadmins only (a request can carry several tenants' events)"
    )
    body_encoding: str | None
    last_traceback: str | None = Field(description="null when masked")
    masked: bool = Field(
        False, description="personal data withheld: the caller is a viewer (see the route)"
    )

    @classmethod
    def from_row(cls, row: dict[str, Any], *, raw: bool = True) -> EventDetail:
        """The event as stored; with `raw` False, without the request's body and headers."""
        row = {**row, "payload": clip_depth(row["payload"])}
        if not raw:
            return cls.model_validate({**row, "headers": None, "body": None,
                                       "body_encoding": None})  # fmt: skip
        data: bytes = row["body"]
        try:
            body, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(data).decode(), "base64"
        return cls.model_validate({**row, "body": body, "body_encoding": encoding})

    @classmethod
    def masked_from_row(cls, row: dict[str, Any]) -> EventDetail:
        """The detail without personal data: see `mask_personal` and `mask_error`; no
        headers, raw body or traceback (they repeat the payload, or may)."""
        return cls.model_validate(
            {
                **row,
                "payload": mask_personal(row["payload"]),
                "last_error": mask_error(row["last_error"]),
                "headers": None,
                "body": None,
                "body_encoding": None,
                "last_traceback": None,
                "masked": True,
            }
        )


MASK = "***"
# Keys whose values are personal data, compared lowercased without separators
# ("E-mail", "customer_email" and "emailAddress" all contain "email").
_PERSONAL_PARTS = ("email", "phone", "mobile", "document", "cpf", "cnpj", "passport", "address")
_PERSONAL_KEYS = frozenset(
    {
        "name",
        "firstname",
        "lastname",
        "fullname",
        "surname",
        "givenname",
        "familyname",
        "contactname",
        "customername",
        "leadname",
        "rg",
        "ssn",
        "taxid",
        "birthdate",
        "dateofbirth",
        "waid",
    }
)
_SEPARATORS = re.compile(r"[^0-9a-z]")


def is_personal_key(key: str) -> bool:
    folded = _SEPARATORS.sub("", key.lower())
    return folded in _PERSONAL_KEYS or any(part in folded for part in _PERSONAL_PARTS)


def mask_personal(value: Any) -> Any:
    """A copy of a JSON value with the value of every personal key (at any depth) replaced
    by '***', whatever it holds (a string, a number, an object, a list); null stays null.
    Whatever nests deeper than MAX_DEPTH is replaced by '***' too. Built without recursion:
    a payload may nest as deep as its sender likes."""
    return clip_depth(value, MASK, MAX_DEPTH, hide=is_personal_key)


class EventPage(BaseModel):
    items: list[EventSummary]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


class ReplayFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str | None = Field(None, max_length=100, pattern=NO_NUL)
    provider: str | None = Field(None, max_length=50, pattern=NO_NUL)
    event_type: str | None = Field(None, max_length=200, pattern=NO_NUL)
    status: Status | None = Status.DEAD
    q: str | None = Field(
        None,
        max_length=200,
        pattern=NO_NUL,
        description="contained in dedup_key, entity_key or event_type",
    )
    since: UTCBound | None = None
    until: UTCBound | None = None
    limit: int = Field(1000, ge=1, le=10_000)

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: Any) -> Any:
        return without_surrogates(data)


class ReplayResult(BaseModel):
    replayed: int


class DiscardResult(BaseModel):
    discarded: int


class SourceHealth(BaseModel):
    window_hours: int
    received: int = Field(description="events received in the window")
    last_received_at: datetime | None = Field(description="the latest in the window (or null)")
    dead: int = Field(description="dead events now, whenever received")


class SourceInfo(BaseModel):
    name: str
    provider: str
    path: str
    tenant: str | None = Field(description="null: a shared source")
    health: SourceHealth = Field(description="counts of the caller's events only")


class RejectedInfo(BaseModel):
    id: int
    source: str | None
    path: str
    status_code: int
    reason: str
    client_ip: str | None
    received_at: datetime


class Latency(BaseModel):
    """Seconds from received to processed, over the finished events (done, ignored,
    superseded); null without any."""

    samples: int
    average: float | None
    p95: float | None = Field(description="nearest rank: the ceil(0.95·n)-th smallest")
    max: float | None


class DeliveryDay(BaseModel):
    source: str
    day: date = Field(description="UTC day the events were received")
    total: int
    done: int
    ignored: int
    superseded: int
    failed: int = Field(description="failed at least once, waiting for a retry")
    dead: int
    pending: int = Field(description="waiting for a first attempt")
    processing: int
    success_rate: float | None = Field(
        description="(done + ignored + superseded) / (those + dead); null before any settled"
    )
    latency: Latency

    @classmethod
    def from_stats(cls, row: dict[str, Any]) -> DeliveryDay:
        n: dict[str, int] = row["by_status"]
        ok = sum(n.get(s, 0) for s in (Status.DONE, Status.IGNORED, Status.SUPERSEDED))
        settled = ok + n.get(Status.DEAD, 0)
        lat = row["latency"]
        return cls(
            source=row["source"],
            day=row["day"],
            total=sum(n.values()),
            done=n.get(Status.DONE, 0),
            ignored=n.get(Status.IGNORED, 0),
            superseded=n.get(Status.SUPERSEDED, 0),
            failed=n.get(Status.FAILED, 0),
            dead=n.get(Status.DEAD, 0),
            pending=n.get(Status.PENDING, 0),
            processing=n.get(Status.PROCESSING, 0),
            success_rate=round(ok / settled, 4) if settled else None,
            latency=Latency(
                samples=lat["samples"],
                average=_ms(lat["average"]),
                p95=_ms(lat["p95"]),
                max=_ms(lat["max"]),
            ),
        )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


class LeadDay(BaseModel):
    """One UTC day of C2S leads: every key present, zero included."""

    day: date
    hook_actions: dict[str, int] = Field(
        description="C2S events received this day per `hook_action`: on_create_lead, "
        "on_update_lead, on_close_lead, and `other` (any other action: stored and ignored)"
    )
    enrichment: dict[str, int] = Field(
        description="leads whose enrichment ended this day per outcome: done, "
        "enriched_single_source, unmatched, not_same_person, failed (a lead counts once, "
        "on the day its last run ended)"
    )

    @property
    def total(self) -> int:
        return sum(self.hook_actions.values()) + sum(self.enrichment.values())


class DeliveryStats(BaseModel):
    since: datetime = Field(description="the window actually counted (at most 366 days)")
    until: datetime
    days: list[DeliveryDay]
    leads: list[LeadDay] = Field(
        description="every UTC day of the window, oldest first: C2S events per hook_action "
        "(of `source` when given) and enrichment outcomes (of every source)"
    )


def optional_not_null(schema: dict[str, Any]) -> None:
    """`json_schema_extra` of a PATCH body (customers, WhatsApp campaigns): at least one
    field, each a value (not null)."""
    schema["minProperties"] = 1
    for prop in schema["properties"].values():
        prop.pop("default", None)
        kept = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
        if len(kept) == 1:
            prop.update(kept[0])
        elif kept:
            prop["anyOf"] = kept
