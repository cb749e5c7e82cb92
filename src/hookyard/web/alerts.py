"""Dashboard page of alerts: what the alert rules opened (docs/alerts.md), by state (open
by default) and kind, and a member acknowledging one. Each reads and changes through the
API's route functions (`api/alerts.py`). Alerts publish no live change: the page is read
when it is loaded."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hookyard.alerts.rules import AlertKind
from hookyard.api import alerts as api
from hookyard.api.alerts import AlertId, StateFilter
from hookyard.api.params import Cursor
from hookyard.web.forms import PAGE, Word, choice
from hookyard.web.render import back, page
from hookyard.web.session import Csrf, UiScope, call

router = APIRouter()


@router.get("/alerts")
def list_alerts(
    request: Request,
    scope: UiScope,
    state: Word = "",
    kind: Word = "",
    before_id: Cursor = None,
) -> Response:
    picked = choice(StateFilter, state) or StateFilter.OPEN
    found = call(
        api.list_alerts,
        request,
        scope,
        state=picked,
        kind=choice(AlertKind, kind),
        limit=PAGE,
        before_id=before_id,
    )
    return page(
        request,
        scope,
        "alerts.html",
        alerts=found.items,
        next_cursor=found.next_cursor,
        state=picked.value,
        kind=kind,
        states=[s.value for s in StateFilter],
        kinds=[k.value for k in AlertKind],
    )


@router.post("/alerts/{alert_id:int}/acknowledge", dependencies=[Csrf])
def acknowledge_alert(request: Request, scope: UiScope, alert_id: AlertId) -> Response:
    call(api.acknowledge_alert, request, scope, alert_id=alert_id)
    return back(request, "/ui/alerts", "acknowledged")
