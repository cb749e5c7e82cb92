"""Dashboard pages of the inbox: events (filter, search, payload, replay, bulk replay), dead
letters, sources and their health, and delivery statistics with a chart. Each reads and
changes through the API's route functions (`api/events.py`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from hookyard.api import destinations as destinations_api
from hookyard.api import events as api
from hookyard.api.auth import Scope
from hookyard.api.params import Cursor, RowId
from hookyard.api.schemas import DeliveryDay, ReplayFilter
from hookyard.inbox.model import Status
from hookyard.sources import describe
from hookyard.web.forms import PAGE, FormWord, Word, choice
from hookyard.web.render import back, page
from hookyard.web.session import Csrf, UiScope, call

router = APIRouter()

REPLAYABLE = (Status.DEAD, Status.FAILED)  # the states a bulk replay is offered for


@router.get("/events")
def list_events(
    request: Request,
    scope: UiScope,
    source: Word = "",
    provider: Word = "",
    event_type: Word = "",
    status: Word = "",
    q: Word = "",
    before_id: Cursor = None,
) -> Response:
    found = call(
        api.list_events,
        request,
        scope,
        source=source or None,
        provider=provider or None,
        event_type=event_type or None,
        status=choice(Status, status),
        q=q or None,
        since=None,
        until=None,
        limit=PAGE,
        before_id=before_id,
    )
    return page(
        request,
        scope,
        "events.html",
        events=found.items,
        next_cursor=found.next_cursor,
        filters={
            "source": source,
            "provider": provider,
            "event_type": event_type,
            "status": status,
            "q": q,
        },
        statuses=[s.value for s in Status],
        sources=sorted(str(s["name"]) for s in _visible_sources(request, scope)),
        providers=sorted({str(s["provider"]) for s in _visible_sources(request, scope)}),
        bulk=status in REPLAYABLE,
        first_page=before_id is None,
    )


def _visible_sources(request: Request, scope: Scope) -> list[dict[str, str | None]]:
    """The sources a filter may offer: the scope's and the shared ones (as the API's source
    list shows them), never another tenant's names."""
    return [
        s
        for s in describe(request.app.state.sources)
        if s["tenant"] is None or scope.allows(s["tenant"])
    ]


@router.get("/dead")
def dead_letters() -> Response:
    """Dead letters are the events page filtered on `dead` (with its bulk replay)."""
    return RedirectResponse("/ui/events?status=dead", status_code=303)


@router.get("/events/{event_id:int}")
def show_event(request: Request, scope: UiScope, event_id: RowId) -> Response:
    event = call(api.show_event, request, scope, event_id=event_id)
    sent = call(
        destinations_api.event_deliveries,
        request,
        scope,
        event_id=event_id,
        limit=PAGE,
        before_id=None,
    )
    return page(request, scope, "event.html", event=event, deliveries=sent.items)


@router.post("/events/{event_id:int}/replay", dependencies=[Csrf])
def replay_event(request: Request, scope: UiScope, event_id: RowId) -> Response:
    call(api.replay_event, request, scope, event_id=event_id)
    return back(request, f"/ui/events/{event_id}", "replayed")


@router.post("/events/replay", dependencies=[Csrf])
def replay_events(
    request: Request,
    scope: UiScope,
    source: FormWord = "",
    provider: FormWord = "",
    event_type: FormWord = "",
    status: FormWord = "dead",
    q: FormWord = "",
) -> Response:
    """Replay what the events page's filter shows (dead or failed events only)."""
    picked = choice(Status, status)
    if picked not in REPLAYABLE:
        raise HTTPException(400, "bulk replay takes dead or failed events")
    flt = ReplayFilter.model_validate(
        {
            "source": source or None,
            "provider": provider or None,
            "event_type": event_type or None,
            "status": picked,
            "q": q or None,
        }
    )
    result = call(api.replay_events, request, scope, flt=flt)
    return back(request, "/ui/events?status=dead", "bulk_replayed", n=result.replayed)


@router.get("/sources")
def list_sources(request: Request, scope: UiScope) -> Response:
    found = call(api.list_sources, request, scope)
    return page(request, scope, "sources.html", sources=found)


# -- delivery statistics --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    """One day of the chart: settled well, failed or dead, and still waiting."""

    day: str
    ok: int
    bad: int
    waiting: int

    @property
    def total(self) -> int:
        return self.ok + self.bad + self.waiting


def daily_bars(days: list[DeliveryDay], since: datetime, until: datetime) -> list[Bar]:
    """Every UTC day of the window, with or without deliveries, summed over sources."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for d in days:
        row = sums[d.day.isoformat()]
        row[0] += d.done + d.ignored + d.superseded
        row[1] += d.failed + d.dead
        row[2] += d.pending + d.processing
    bars = []
    for day in api.window_days(since, until):
        ok, bad, waiting = sums.get(day.isoformat(), (0, 0, 0))
        bars.append(Bar(day.isoformat(), ok, bad, waiting))
    return bars[-60:]  # a chart of the last 60 days at most; the table has every row


@router.get("/stats")
def delivery_stats(
    request: Request,
    scope: UiScope,
    days: Annotated[int, Query(ge=1, le=366)] = 14,
    source: Word = "",
) -> Response:
    until = datetime.now(UTC)
    since = datetime.combine(until.date() - timedelta(days=days - 1), time(0), tzinfo=UTC)
    stats = call(
        api.delivery_stats, request, scope, since=since, until=until, source=source or None
    )
    bars = daily_bars(stats.days, stats.since, stats.until)
    return page(
        request,
        scope,
        "stats.html",
        stats=stats,
        bars=bars,
        peak=max((b.total for b in bars), default=0) or 1,
        days=days,
        source=source,
        sources=sorted(str(s["name"]) for s in _visible_sources(request, scope)),
        totals=_totals(stats.days),
    )


def _totals(days: list[DeliveryDay]) -> dict[str, Any]:
    total = sum(d.total for d in days)
    ok = sum(d.done + d.ignored + d.superseded for d in days)
    dead = sum(d.dead for d in days)
    return {
        "total": total,
        "ok": ok,
        "dead": dead,
        "success": (ok / (ok + dead)) if ok + dead else None,
    }
