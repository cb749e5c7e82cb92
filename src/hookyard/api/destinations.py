"""`/api/v1/destinations` and `/api/v1/deliveries`: destinations with their health, their
deliveries with every attempt, replay (one delivery, or those a filter matches), pause,
resume, and discarding the deliveries that wait for a destination no longer sending
(docs/destinations.md).

Tenancy: a destination is a tenant's or shared (no tenant). A tenant's people see their own
destinations and the shared ones, and only their own tenant's deliveries (also those through
a shared destination, whose health then counts their attempts only); another tenant's
destination or delivery is a 404, like a missing one. A shared destination is read-only for
everyone but superadmins: a tenant's admin pausing or resuming one gets 403 with that reason
(it sees the destination, so a 404 would be a lie). Replays, pauses and resumes are for
admins; reading for viewers and up, viewers seeing personal data masked in errors and in the
receivers' answers (as in events).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from hookyard.accounts.identity import Role
from hookyard.api.auth import AdminScope, Scope, ViewerScope, engine_of
from hookyard.api.events import Store
from hookyard.api.params import MAX_ID, Cursor, Limit, next_cursor
from hookyard.api.privacy import mask_error, mask_personal
from hookyard.api.schemas import NO_NUL, DiscardResult, ReplayResult
from hookyard.destinations import manage, queries
from hookyard.destinations.config import Destinations
from hookyard.destinations.queries import DeliveryFilter
from hookyard.destinations.tables import Circuit, DeliveryStatus, Outcome, State

router = APIRouter(prefix="/api/v1", tags=["destinations"])
Reader = Annotated[Engine, Depends(engine_of)]

HEALTH_WINDOW = timedelta(hours=24)
DestinationName = Annotated[
    str, Path(min_length=1, max_length=100, pattern=NO_NUL, description="the destination's name")
]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID, description="the delivery's id")]
DestinationQuery = Annotated[
    str | None, Query(min_length=1, max_length=100, pattern=NO_NUL, description="its name")
]
EventQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="the event's id")]


# -- what the API shows -----------------------------------------------------------------------


class DestinationHealth(BaseModel):
    window_hours: int
    attempts: int = Field(description="attempts in the window (those whose lease ran out left out)")
    delivered: int = Field(description="of which the receiver answered 2xx")
    success_rate: float | None = Field(description="delivered / attempts; null without any")
    latency_p95_ms: int | None = Field(
        description="nearest rank over the window's attempts that have a latency"
    )
    last_attempt_at: datetime | None
    waiting: int = Field(description="deliveries pending, being sent or failed (due again)")
    dead: int = Field(description="dead deliveries (replayable), whenever created")


class DestinationInfo(BaseModel):
    name: str
    tenant: str | None = Field(description="null: shared by every tenant (read-only for them)")
    url: str = Field(description="a password in the URL is shown as ***")
    state: State = Field(
        description="active; paused by an operator; disabled by the receiver's 410"
    )
    disabled_reason: str | None
    circuit: Circuit = Field(description="open: failing, one probe per interval")
    consecutive_failures: int
    circuit_opened_at: datetime | None
    next_probe_at: datetime | None
    state_changed_at: datetime
    configured: bool = Field(
        description="declared in the sources file now (false: only its past deliveries remain)"
    )
    sources: list[str] = Field(description="whose events it receives (empty if not configured)")
    event_types: list[str] = Field(description="globs; empty: every type")
    ordered: bool
    max_attempts: int | None
    timeout_seconds: float | None
    rate_per_second: float | None
    health: DestinationHealth = Field(description="counts of the caller's deliveries only")


class Delivery(BaseModel):
    id: int
    webhook_id: str = Field(description="the `webhook-id` header: the same on every attempt")
    destination: str
    event_id: int
    tenant: str | None
    source: str
    event_type: str
    entity_key: str | None
    status: DeliveryStatus
    attempts: int
    replay_count: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None = Field(description="masked for viewers, as events' errors are")
    created_at: datetime
    finished_at: datetime | None = Field(description="when delivered or dead")
    held: str | None = Field(
        None,
        description="why a waiting delivery is not sent: `destination not configured` (it"
        " left the sources file; the delivery waits until it is configured again); else null",
    )


class Attempt(BaseModel):
    id: int
    attempt: int = Field(description="1, 2, … (counted again from 1 after a replay)")
    started_at: datetime
    latency_ms: int | None
    status_code: int | None = Field(description="null: no answer (timeout, refused, …)")
    response_excerpt: str | None = Field(
        description="the first 2 KB of the answer; personal data masked for viewers"
    )
    error: str | None
    outcome: Outcome
    probe: bool = Field(description="sent as the open circuit's probe")


class DeliveryDetail(Delivery):
    attempt_log: list[Attempt] = Field(description="every attempt, oldest first")
    masked: bool = Field(description="personal data withheld: the caller is a viewer")


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


class DeliveryReplayFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: str | None = Field(None, min_length=1, max_length=100, pattern=NO_NUL)
    status: DeliveryStatus | None = Field(
        DeliveryStatus.DEAD, description="null: every status but sending"
    )
    event_id: int | None = Field(None, ge=1, le=MAX_ID)
    limit: int = Field(1000, ge=1, le=10_000)


# -- shaping rows ---------------------------------------------------------------------------


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _info(request: Request, row: dict[str, Any]) -> DestinationInfo:
    configured: Destinations = request.app.state.destinations
    config = configured.by_name().get(row["name"])
    return DestinationInfo.model_validate(
        {
            **row,
            "url": _safe_url(row["url"]),
            "configured": config is not None,
            "sources": list(config.sources) if config else [],
            "event_types": list(config.event_types) if config else [],
            "ordered": config.ordered if config else False,
            "max_attempts": config.max_attempts if config else None,
            "timeout_seconds": config.timeout_seconds if config else None,
            "rate_per_second": config.rate_per_second if config else None,
            "health": {
                **row["health"],
                "window_hours": int(HEALTH_WINDOW.total_seconds() // 3600),
            },
        }
    )


def _masked_excerpt(text: str | None) -> str | None:
    """A receiver's answer for a viewer: JSON with its personal values masked by field name
    and by look (api/privacy.py), other text with addresses, long numbers and quotes masked."""
    if not text:
        return text
    try:
        parsed = json.loads(text)
    except ValueError:
        return mask_error(text)
    return json.dumps(mask_personal(parsed), ensure_ascii=False)


NOT_CONFIGURED = "destination not configured"


def _delivery(request: Request, row: dict[str, Any], scope: Scope) -> Delivery:
    configured: Destinations = request.app.state.destinations
    shown = dict(row)
    if row["status"] in queries.WAITING and row["destination"] not in configured.by_name():
        shown["held"] = NOT_CONFIGURED
    if not scope.principal.sees_personal_data:
        shown["last_error"] = mask_error(row["last_error"])
    return Delivery.model_validate(shown)


def _detail(request: Request, row: dict[str, Any], scope: Scope) -> DeliveryDetail:
    shown = scope.principal.sees_personal_data
    tried = [
        a
        if shown
        else {
            **a,
            "response_excerpt": _masked_excerpt(a["response_excerpt"]),
            "error": mask_error(a["error"]),
        }
        for a in row["attempt_log"]
    ]
    return DeliveryDetail.model_validate(
        {
            **_delivery(request, row, scope).model_dump(),
            "attempt_log": tried,
            "masked": not shown,
        }
    )


def _since() -> datetime:
    return datetime.now(UTC) - HEALTH_WINDOW


def _visible(request: Request, engine: Engine, scope: Scope, name: str) -> DestinationInfo:
    with engine.connect() as conn:
        row = queries.find_destination(conn, name, tenant=scope.tenant, since=_since())
    if row is None:
        raise HTTPException(404, f"no destination {name!r}")
    return _info(request, row)


# -- destinations ---------------------------------------------------------------------------


@router.get("/destinations", response_model=list[DestinationInfo])
def list_destinations(
    request: Request, scope: ViewerScope, engine: Reader
) -> list[DestinationInfo]:
    """The scope's destinations and the shared ones, by name, with their health over the
    last 24 hours; viewers and up. The secret is never shown."""
    with engine.connect() as conn:
        rows = queries.list_destinations(conn, tenant=scope.tenant, since=_since())
    return [_info(request, r) for r in rows]


@router.get("/destinations/{name}", response_model=DestinationInfo)
def show_destination(
    request: Request, scope: ViewerScope, engine: Reader, name: DestinationName
) -> DestinationInfo:
    return _visible(request, engine, scope, name)


@router.get("/destinations/{name}/deliveries", response_model=DeliveryPage)
def destination_deliveries(
    request: Request,
    scope: ViewerScope,
    engine: Reader,
    name: DestinationName,
    status: DeliveryStatus | None = None,
    limit: Limit = 50,
    before_id: Cursor = None,
) -> DeliveryPage:
    """The destination's deliveries of the scope, newest first."""
    _visible(request, engine, scope, name)
    flt = DeliveryFilter(scope.tenant, name, status)
    return _page(request, engine, scope, flt, limit, before_id)


def _changeable(request: Request, engine: Engine, scope: Scope, name: str) -> DestinationInfo:
    found = _visible(request, engine, scope, name)
    if found.tenant is None and scope.principal.role is not Role.SUPERADMIN:
        raise HTTPException(403, f"{name!r} is a shared destination: only superadmins change it")
    return found


@router.post("/destinations/{name}/pause", response_model=DestinationInfo)
def pause_destination(
    request: Request, scope: AdminScope, engine: Reader, name: DestinationName
) -> DestinationInfo:
    """Stop sending to the destination: its deliveries wait (none is lost) until it is
    resumed; admins of its tenant and superadmins. Pausing a paused one changes nothing;
    a disabled one (the receiver answered 410) is 409: resume it instead."""
    found = _changeable(request, engine, scope, name)
    if found.state is State.DISABLED:
        raise HTTPException(409, f"{name!r} is disabled by its receiver: resume it to send again")
    if found.state is State.ACTIVE:
        manage.pause(engine, name, tenant=found.tenant)
    return _visible(request, engine, scope, name)


@router.post("/destinations/{name}/resume", response_model=DestinationInfo)
def resume_destination(
    request: Request, scope: AdminScope, engine: Reader, name: DestinationName
) -> DestinationInfo:
    """Send to the destination again: active (a disabled one too), the circuit closed, its
    waiting deliveries sent; admins of its tenant and superadmins."""
    found = _changeable(request, engine, scope, name)
    manage.resume(engine, name, tenant=found.tenant)
    return _visible(request, engine, scope, name)


@router.post("/destinations/{name}/discard", response_model=DiscardResult)
def discard_waiting(
    request: Request, scope: AdminScope, engine: Reader, name: DestinationName
) -> DiscardResult:
    """End the scope's deliveries waiting for the destination (pending or failed) as dead,
    so they stop holding their events from retention; each stays replayable. For a
    destination removed from the configuration, or paused or disabled (an active one is
    sending them: 409, pause it first); admins of its tenant and superadmins."""
    found = _changeable(request, engine, scope, name)
    if found.configured and found.state is State.ACTIVE:
        raise HTTPException(409, f"{name!r} is sending its deliveries: pause it first")
    why = (
        "discarded by an operator: the destination is no longer configured"
        if not found.configured
        else f"discarded by an operator while the destination was {found.state.value}"
    )
    return DiscardResult(discarded=manage.discard(engine, name, why, tenant=scope.tenant))


# -- deliveries -----------------------------------------------------------------------------


def _page(
    request: Request,
    engine: Engine,
    scope: Scope,
    flt: DeliveryFilter,
    limit: int,
    before_id: int | None,
) -> DeliveryPage:
    with engine.connect() as conn:
        rows = queries.list_deliveries(conn, flt, limit=limit, before_id=before_id)
    items = [_delivery(request, r, scope) for r in rows]
    return DeliveryPage(items=items, next_cursor=next_cursor(items, limit))


@router.get("/deliveries", response_model=DeliveryPage)
def list_deliveries(
    request: Request,
    scope: ViewerScope,
    engine: Reader,
    status: DeliveryStatus | None = None,
    destination: DestinationQuery = None,
    event_id: EventQuery = None,
    limit: Limit = 50,
    before_id: Cursor = None,
) -> DeliveryPage:
    """The scope's deliveries, newest first; viewers and up. A destination the caller does
    not see is a 404."""
    if destination is not None:
        _visible(request, engine, scope, destination)
    flt = DeliveryFilter(scope.tenant, destination, status, event_id)
    return _page(request, engine, scope, flt, limit, before_id)


@router.get("/deliveries/{delivery_id:int}", response_model=DeliveryDetail)
def show_delivery(
    request: Request, scope: ViewerScope, engine: Reader, delivery_id: DeliveryId
) -> DeliveryDetail:
    """One delivery of the scope with every attempt: status code, the first 2 KB of the
    answer, latency and error; viewers and up (answers and errors masked for viewers)."""
    with engine.connect() as conn:
        row = queries.find_delivery(conn, delivery_id, tenant=scope.tenant)
    if row is None:
        raise HTTPException(404, f"no delivery {delivery_id}")
    return _detail(request, row, scope)


@router.get("/events/{event_id:int}/deliveries", response_model=DeliveryPage)
def event_deliveries(
    request: Request,
    store: Store,
    scope: ViewerScope,
    engine: Reader,
    event_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    limit: Limit = 50,
    before_id: Cursor = None,
) -> DeliveryPage:
    """The deliveries of one event of the scope (one per destination it went to)."""
    if store.get(event_id, tenant=scope.tenant) is None:
        raise HTTPException(404, f"no event {event_id}")
    flt = DeliveryFilter(scope.tenant, event_id=event_id)
    return _page(request, engine, scope, flt, limit, before_id)


# `:int` keeps `/deliveries/replay` apart from a delivery's id (as in api/events.py).
@router.post("/deliveries/{delivery_id:int}/replay", response_model=ReplayResult)
def replay_delivery(scope: AdminScope, engine: Reader, delivery_id: DeliveryId) -> ReplayResult:
    """Send one delivery of the scope again now, with a fresh attempt budget and the same
    `webhook-id`; admins only. 409 while it is being sent."""
    with engine.connect() as conn:
        row = queries.find_delivery(conn, delivery_id, tenant=scope.tenant)
    if row is None:
        raise HTTPException(404, f"no delivery {delivery_id}")
    if row["status"] == DeliveryStatus.SENDING.value:
        raise HTTPException(409, "the delivery is being sent now; replay it when it finishes")
    return ReplayResult(replayed=manage.replay(engine, [delivery_id], tenant=scope.tenant))


@router.post("/deliveries/replay", response_model=ReplayResult)
def replay_deliveries(
    request: Request, scope: AdminScope, engine: Reader, flt: DeliveryReplayFilter
) -> ReplayResult:
    """Replay the scope's deliveries the filter matches (by default the dead ones; `status:
    null`: any but those being sent), the oldest `limit` of them; admins only. A
    destination the caller does not see is a 404."""
    if flt.destination is not None:
        _visible(request, engine, scope, flt.destination)
    matching = DeliveryFilter(scope.tenant, flt.destination, flt.status, flt.event_id)
    with engine.connect() as conn:
        ids = queries.replayable(conn, matching, limit=flt.limit)
    return ReplayResult(replayed=manage.replay(engine, ids, tenant=scope.tenant))
