"""`/api/v1/events` (list, search, show, replay one, replay a filtered set), `/sources`,
`/stats/deliveries` and `/rejected`.

Every query is scoped to the caller's tenant (see api/auth.py): another tenant's event looks
exactly like a missing one (404), and a bulk replay or a statistic only ever counts the
scope's events.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from sqlalchemy import Engine

from hookyard.accounts.identity import Role
from hookyard.api.auth import AdminScope, SuperadminScope, ViewerScope, engine_of
from hookyard.api.params import MAX_ID, next_cursor
from hookyard.api.schemas import (
    NO_NUL,
    DeliveryDay,
    DeliveryStats,
    EventDetail,
    EventPage,
    EventSummary,
    LeadDay,
    Problem,
    RejectedInfo,
    ReplayFilter,
    ReplayResult,
    SourceHealth,
    SourceInfo,
    UTCBound,
)
from hookyard.domain.leads import queries as lead_queries
from hookyard.domain.leads.service import ENRICHMENT_OUTCOMES, HOOK_ACTIONS
from hookyard.inbox.model import Status
from hookyard.inbox.reads import EventFilter
from hookyard.inbox.store import EventStore
from hookyard.providers.c2s import C2SAdapter
from hookyard.sources import describe

router = APIRouter(prefix="/api/v1")

HEALTH_WINDOW = timedelta(hours=24)
STATS_DEFAULT = timedelta(days=7)
STATS_MAX = timedelta(days=366)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no credentials, or unknown ones"},
    403: {
        "model": Problem,
        "description": "the route needs a higher role, or X-Customer-ID names another tenant",
    },
    404: {"model": Problem, "description": "X-Customer-ID names no tenant"},
    503: {"model": Problem, "description": "storage unavailable or too slow; retry later"},
}
_BY_ID = {
    **_ERRORS,
    404: {
        "model": Problem,
        "description": "no such event in the caller's tenant (or X-Customer-ID names none)",
    },
}


def store_of(request: Request) -> EventStore:
    store: EventStore = request.app.state.store
    return store


Store = Annotated[EventStore, Depends(store_of)]
EventId = Annotated[int, Path(ge=1, le=MAX_ID)]
Source = Annotated[str | None, Query(max_length=100, pattern=NO_NUL)]
Since = Annotated[UTCBound | None, Query(description="received at or after")]
Until = Annotated[UTCBound | None, Query(description="received before")]


@router.get("/events", response_model=EventPage, responses=_ERRORS)
def list_events(
    store: Store,
    scope: ViewerScope,
    source: Source = None,
    provider: Annotated[str | None, Query(max_length=50, pattern=NO_NUL)] = None,
    event_type: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    status: Status | None = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=NO_NUL,
            description="contained in dedup_key, entity_key or event_type (ignoring case)",
        ),
    ] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="cursor from the last page")
    ] = None,
) -> EventPage:
    """The scope's events, newest first; viewers and up (`last_error` masked for viewers,
    as on one event's page)."""
    flt = EventFilter(
        source,
        provider,
        event_type,
        status.value if status else None,
        since,
        until,
        tenant=scope.tenant,
        q=q or None,
    )
    rows = store.list_events(flt, limit=limit, before_id=before_id)
    if scope.principal.sees_personal_data:
        items = [EventSummary.model_validate(r) for r in rows]
    else:  # an error text can echo the payload's values
        items = [EventSummary.masked_from_row(r) for r in rows]
    return EventPage(items=items, next_cursor=next_cursor(items, limit))


# `:int`: only digits match, so that `/events/replay` is not taken for an event's id (a GET
# there is then 405 with `Allow: POST`, not a 422 about the id).
@router.get("/events/{event_id:int}", response_model=EventDetail, responses=_BY_ID)
def show_event(store: Store, scope: ViewerScope, event_id: EventId) -> EventDetail:
    """One event of the scope; viewers and up.

    Viewers do not see personal data (an event can carry a lead's e-mail, phone or document
    number): they get the summary fields and the payload with the value of every personal
    key replaced by "***" at any depth — keys containing email, phone, mobile, document,
    cpf, cnpj, passport or address, and the keys name, first/last/full name, surname, rg,
    ssn, tax id, birth date and wa_id, compared ignoring case and separators — and
    `last_error` with quoted values, e-mail addresses and long numbers masked, while
    `headers`, `body`, `body_encoding` and `last_traceback` are null and `masked` is true.
    A payload nesting deeper than 64 levels shows a replacement below that depth.
    Members and admins see the event as stored, but for the raw body and the headers of the
    request that carried it (null): one request can carry several tenants' events (a HubSpot
    array or a Meta batch of a shared account), so only superadmins see those.
    """
    row = store.get(event_id, tenant=scope.tenant)
    if row is None:
        raise HTTPException(404, f"no event {event_id}")
    if not scope.principal.sees_personal_data:
        return EventDetail.masked_from_row(row)
    return EventDetail.from_row(row, raw=scope.principal.role is Role.SUPERADMIN)


@router.post(
    "/events/{event_id:int}/replay",
    response_model=ReplayResult,
    responses={
        **_BY_ID,
        409: {"model": Problem, "description": "the event is being processed now"},
    },
)
def replay_event(
    request: Request, store: Store, scope: AdminScope, event_id: EventId
) -> ReplayResult:
    """Make one event of the scope due again with a fresh attempt budget; admins only."""
    row = store.get(event_id, tenant=scope.tenant)
    if row is None:
        raise HTTPException(404, f"no event {event_id}")
    if row["status"] == Status.PROCESSING.value:
        raise HTTPException(409, "the event is being processed now; replay it when it finishes")
    result = ReplayResult(replayed=store.replay([event_id], tenant=scope.tenant))
    request.app.state.wakeup.signal()
    return result


@router.post("/events/replay", response_model=ReplayResult, responses=_ERRORS)
def replay_events(
    request: Request, store: Store, scope: AdminScope, flt: ReplayFilter
) -> ReplayResult:
    """Replay the scope's events matching the filter (by default the dead ones); admins
    only. `status: null` matches every status but processing."""
    matching = EventFilter(
        flt.source,
        flt.provider,
        flt.event_type,
        flt.status.value if flt.status else None,
        flt.since,
        flt.until,
        tenant=scope.tenant,
        q=flt.q or None,
    )
    result = ReplayResult(replayed=store.replay_matching(matching, flt.limit))
    request.app.state.wakeup.signal()
    return result


@router.get("/sources", response_model=list[SourceInfo], responses=_ERRORS)
def list_sources(request: Request, store: Store, scope: ViewerScope) -> list[SourceInfo]:
    """The scope's sources and the shared ones (no tenant), never their secrets; viewers and
    up. Health counts only the scope's events: received in the last 24 hours, the latest of
    them, and dead ones."""
    health = store.source_health(datetime.now(UTC) - HEALTH_WINDOW, tenant=scope.tenant)
    window = int(HEALTH_WINDOW.total_seconds() // 3600)
    found = []
    for source in describe(request.app.state.sources):
        if source["tenant"] is not None and not scope.allows(source["tenant"]):
            continue
        counts = health.get(str(source["name"]), {})
        found.append(
            SourceInfo.model_validate(
                {
                    **source,
                    "health": SourceHealth(
                        window_hours=window,
                        received=counts.get("received", 0),
                        last_received_at=counts.get("last_received_at"),
                        dead=counts.get("dead", 0),
                    ),
                }
            )
        )
    return found


@router.get("/stats/deliveries", response_model=DeliveryStats, responses=_ERRORS)
def delivery_stats(
    store: Store,
    engine: Annotated[Engine, Depends(engine_of)],
    scope: ViewerScope,
    since: Annotated[
        UTCBound | None, Query(description="from; default: 7 days before until")
    ] = None,
    until: Annotated[UTCBound | None, Query(description="to, excluded; default: now")] = None,
    source: Source = None,
) -> DeliveryStats:
    """Deliveries of the scope's events per source and UTC day of receipt; viewers and up.

    Latency is received → processed of the finished events (done, ignored, superseded), in
    seconds: average, p95 (nearest rank) and max. A window longer than 366 days is cut to
    the 366 days before `until`; the answer says which window it counted.

    `leads` has every UTC day of the window: the C2S events received per `hook_action`
    (of `source` when given) and the leads whose enrichment ended per outcome.
    """
    end = until or datetime.now(UTC)
    start = since or _earlier(end, STATS_DEFAULT)
    start = max(start, _earlier(end, STATS_MAX))
    rows = store.delivery_stats(start, end, tenant=scope.tenant, source=source)
    return DeliveryStats(
        since=start,
        until=end,
        days=[DeliveryDay.from_stats(r) for r in rows],
        leads=_lead_days(store, engine, scope.tenant, start, end, source),
    )


def window_days(since: datetime, until: datetime) -> list[date]:
    """Every UTC day [since, until) touches, oldest first (none when until ≤ since)."""
    first, last = since.astimezone(UTC), until.astimezone(UTC)
    if last <= first:
        return []
    n = (last.date() - first.date()).days + (last.time() > time(0))
    return [first.date() + timedelta(days=i) for i in range(n)]


def _lead_days(
    store: EventStore,
    engine: Engine,
    tenant: str | None,
    since: datetime,
    until: datetime,
    source: str | None,
) -> list[LeadDay]:
    actions = store.event_types_per_day(
        since, until, provider=C2SAdapter.provider, tenant=tenant, source=source
    )
    with engine.connect() as conn:
        outcomes = lead_queries.enrichment_outcomes(conn, tenant, since, until)
    days = []
    for day in window_days(since, until):
        received = actions.get(day, {})
        ended = outcomes.get(day, {})
        per_action = {action: received.get(action, 0) for action in HOOK_ACTIONS}
        per_action["other"] = sum(n for a, n in received.items() if a not in HOOK_ACTIONS)
        days.append(
            LeadDay(
                day=day,
                hook_actions=per_action,
                enrichment={s.value: ended.get(s.value, 0) for s in ENRICHMENT_OUTCOMES},
            )
        )
    return days


def _earlier(moment: datetime, delta: timedelta) -> datetime:
    try:
        return moment - delta
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


@router.get("/rejected", response_model=list[RejectedInfo], responses=_ERRORS)
def list_rejected(
    store: Store, _: SuperadminScope, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[RejectedInfo]:
    """The newest rejected requests (bad signatures, unknown senders): superadmins only, as
    they are nobody's tenant's and hold excerpts of what strangers sent."""
    return [RejectedInfo.model_validate(r) for r in store.rejected(limit)]
