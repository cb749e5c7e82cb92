"""`/api/v1/alerts`: what the alert rules opened (docs/alerts.md), the WhatsApp templates'
alerts included (`api/whatsapp.py` keeps deprecated aliases of these routes for them).
Viewers read, members acknowledge. Alerts are a tenant's, or global (no tenant: the
queue's), which only a superadmin acting for no tenant sees; another tenant's alert is a
404, like a missing one."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from hookyard.alerts import queries
from hookyard.alerts.queries import AlertState
from hookyard.alerts.rules import AlertKind
from hookyard.alerts.tables import alerts
from hookyard.api.auth import MemberScope, ViewerScope, engine_of
from hookyard.api.params import MAX_ID, Cursor, Limit, next_cursor
from hookyard.db.engine import writer

router = APIRouter(prefix="/api/v1", tags=["alerts"])
Reader = Annotated[Engine, Depends(engine_of)]

AlertId = Annotated[int, Path(ge=1, le=MAX_ID, description="the alert's id")]


class StateFilter(StrEnum):
    OPEN = AlertState.OPEN.value
    ACKNOWLEDGED = AlertState.ACKNOWLEDGED.value
    RESOLVED = AlertState.RESOLVED.value
    ALL = "all"


class Alert(BaseModel):
    id: int
    kind: AlertKind
    state: AlertState = Field(
        description="open: firing, not acknowledged; acknowledged: firing, a person is on "
        "it; resolved: the condition cleared"
    )
    tenant: str | None = Field(description="None: a global alert (superadmins only)")
    subject: str = Field(description="what it is about: source:NAME, template:ID, job:NAME, queue")
    labels: dict[str, str] = Field(description="the subject as the gauge's labels")
    value: float = Field(description="the latest value measured while it fired")
    threshold: float
    detail: str
    opened_at: datetime
    last_seen_at: datetime = Field(description="the latest evaluation that found it firing")
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


@router.get("/alerts", response_model=AlertPage)
def list_alerts(
    scope: ViewerScope,
    engine: Reader,
    state: StateFilter = StateFilter.OPEN,
    kind: AlertKind | None = None,
    limit: Limit = 50,
    before_id: Cursor = None,
) -> AlertPage:
    """Newest first."""
    wanted = None if state is StateFilter.ALL else AlertState(state.value)
    with engine.connect() as conn:
        rows = queries.list_alerts(
            conn,
            scope.where(alerts.c.tenant),
            state=wanted,
            kind=kind,
            limit=limit,
            before_id=before_id,
        )
    items = [Alert.model_validate(r) for r in rows]
    return AlertPage(items=items, next_cursor=next_cursor(items, limit))


@router.get("/alerts/{alert_id}", response_model=Alert)
def show_alert(scope: ViewerScope, engine: Reader, alert_id: AlertId) -> Alert:
    with engine.connect() as conn:
        row = queries.find_alert(conn, scope.where(alerts.c.tenant), alert_id)
    if row is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return Alert.model_validate(row)


@router.post("/alerts/{alert_id}/acknowledge", response_model=Alert)
def acknowledge_alert(scope: MemberScope, engine: Reader, alert_id: AlertId) -> Alert:
    """Acknowledge as the calling person. Idempotent: acknowledging again keeps who did it
    first, and when. A resolved alert can be acknowledged too (it stays resolved)."""
    with writer(engine).begin() as tx:
        row = queries.acknowledge(
            tx, scope.where(alerts.c.tenant), alert_id, scope.principal.subject
        )
    if row is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return Alert.model_validate(row)
