"""`/api/v1/events`: list, show, replay one, replay a filtered set."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from hookyard.api.auth import require_admin
from hookyard.api.schemas import (
    EventDetail,
    EventPage,
    EventSummary,
    RejectedInfo,
    ReplayFilter,
    ReplayResult,
    SourceInfo,
)
from hookyard.inbox.model import Status
from hookyard.inbox.store import EventFilter, EventStore
from hookyard.sources import describe

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_admin)])


def store_of(request: Request) -> EventStore:
    store: EventStore = request.app.state.store
    return store


Store = Annotated[EventStore, Depends(store_of)]


@router.get("/events", response_model=EventPage)
def list_events(
    store: Store,
    source: str | None = None,
    provider: str | None = None,
    event_type: str | None = None,
    status: Status | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(ge=1, description="cursor from the last page")] = None,
) -> EventPage:
    flt = EventFilter(source, provider, event_type, status.value if status else None, since, until)
    rows = store.list_events(flt, limit=limit, before_id=before_id)
    items = [EventSummary.model_validate(r) for r in rows]
    return EventPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.get("/events/{event_id}", response_model=EventDetail)
def show_event(store: Store, event_id: int) -> EventDetail:
    row = store.get(event_id)
    if row is None:
        raise HTTPException(404, f"no event {event_id}")
    return EventDetail.from_row(row)


@router.post("/events/{event_id}/replay", response_model=ReplayResult)
def replay_event(request: Request, store: Store, event_id: int) -> ReplayResult:
    row = store.get(event_id)
    if row is None:
        raise HTTPException(404, f"no event {event_id}")
    if row["status"] == Status.PROCESSING.value:
        raise HTTPException(409, "the event is being processed now; replay it when it finishes")
    result = ReplayResult(replayed=store.replay([event_id]))
    request.app.state.wakeup.signal()
    return result


@router.post("/events/replay", response_model=ReplayResult)
def replay_events(request: Request, store: Store, flt: ReplayFilter) -> ReplayResult:
    matching = EventFilter(
        flt.source, flt.provider, flt.event_type, flt.status, flt.since, flt.until
    )
    result = ReplayResult(replayed=store.replay_matching(matching, flt.limit))
    request.app.state.wakeup.signal()
    return result


@router.get("/sources", response_model=list[SourceInfo])
def list_sources(request: Request) -> list[SourceInfo]:
    return [SourceInfo.model_validate(s) for s in describe(request.app.state.sources)]


@router.get("/rejected", response_model=list[RejectedInfo])
def list_rejected(
    store: Store, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[RejectedInfo]:
    return [RejectedInfo.model_validate(r) for r in store.rejected(limit)]
