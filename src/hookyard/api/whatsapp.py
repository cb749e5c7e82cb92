"""`/api/v1/whatsapp/…`: message templates (status, quality, history), the ones needing
attention with their open alerts, what a person must do about them and the campaigns they
stop, and the campaigns using them. Viewers read; members create, change, pause and resume
campaigns (domain/whatsapp/campaigns.py); admins delete them and resume a campaign a
template's pause stopped (never done automatically), one by one or every one of a template
Meta reinstated. Every query is the caller's tenant's: another tenant's campaign or
template answers 404, as a missing one does.

A template's alerts are the one alert system's (hookyard.alerts, `/api/v1/alerts`): kinds
`red_quality`, `template_disabled` and `template_rejected`, about subject `template:<id>`.
`GET /whatsapp/alerts` and `POST /whatsapp/templates/{id}/acknowledge-alert` are deprecated
aliases acting on those alerts, with the same roles (viewer; member) and tenant scoping as
`api/alerts.py` (docs/alerts.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, Engine

from hookyard.alerts import queries as alert_queries
from hookyard.alerts.queries import AlertState
from hookyard.alerts.rules import TEMPLATE_KINDS, template_subject
from hookyard.alerts.tables import alerts as alert_rows
from hookyard.api.alerts import Alert, StateFilter
from hookyard.api.auth import AdminScope, MemberScope, ViewerScope, engine_of
from hookyard.api.params import MAX_ID, Cursor, Limit, next_cursor
from hookyard.api.schemas import optional_not_null
from hookyard.db.engine import writer
from hookyard.domain.common import SyncSource
from hookyard.domain.whatsapp import campaigns as whatsapp
from hookyard.domain.whatsapp import queries
from hookyard.domain.whatsapp.campaigns import AdminOnly, CampaignRefused, UnknownTemplate
from hookyard.domain.whatsapp.service import (
    CampaignAction,
    CampaignStatus,
    HistoryKind,
    HistoryOutcome,
    PauseReason,
    Quality,
    TemplateStatus,
)

router = APIRouter(prefix="/api/v1", tags=["whatsapp"])
Engine_ = Annotated[Engine, Depends(engine_of)]

TemplateId = Annotated[int, Path(ge=1, le=MAX_ID, description="hookyard's template id")]
CampaignId = Annotated[int, Path(ge=1, le=MAX_ID, description="hookyard's campaign id")]


class WhatsAppCampaignStatus(StrEnum):
    """The domain's CampaignStatus, named apart from 10DLC's in the OpenAPI document."""

    ACTIVE = CampaignStatus.ACTIVE.value
    PAUSED = CampaignStatus.PAUSED.value


assert {*WhatsAppCampaignStatus} == {*CampaignStatus}, "a campaign status is missing here"


class Template(BaseModel):
    id: int
    meta_template_id: str
    waba_id: str
    tenant: str | None
    name: str
    language: str | None
    category: str | None
    status: str | None = Field(description="Meta's status as sent; known values: TemplateStatus")
    quality: str | None = Field(description="Meta's quality score as sent: GREEN, YELLOW, RED…")
    reason: str | None = Field(description="Meta's reason for the last status change")
    disable_info: Any = None
    other_info: Any = None
    status_event_at: datetime | None
    quality_event_at: datetime | None
    last_synced_at: datetime | None
    sync_source: SyncSource | None
    created_at: datetime
    updated_at: datetime


class TemplateAlert(Alert):
    """An alert of the one alert system about a template, naming the template."""

    template_id: int
    meta_template_id: str
    template_name: str
    created_at: datetime = Field(description="deprecated: the same as `opened_at`")


class CampaignsAffected(BaseModel):
    count: int
    ids: list[int] = Field(description="hookyard's campaign ids, oldest first")


class CriticalTemplate(Template):
    reasons: list[str] = Field(description="why it needs attention: `quality RED`, `status …`")
    action_required: str = Field(description="what a person must do, from status and quality")
    campaigns_affected: CampaignsAffected = Field(
        description="its campaigns that are active, or paused because of it (not those a person"
        " paused)"
    )
    open_alerts: list[TemplateAlert] = Field(
        description="its alerts nobody acknowledged yet (acknowledge: POST /api/v1/alerts/{id}"
        "/acknowledge)"
    )


class Count(BaseModel):
    value: str | None = Field(description="None: not known yet")
    count: int


class QualitySummary(BaseModel):
    total: int
    by_quality: list[Count]
    by_status: list[Count]
    campaigns_paused: list[Count] = Field(
        description="paused campaigns by why: TEMPLATE_PAUSED, TEMPLATE_DISABLED, MANUAL"
    )


class HistoryEntry(BaseModel):
    id: int
    template_id: int
    event_id: int | None
    kind: HistoryKind
    event: str = Field(description="Meta's value: APPROVED, REINSTATED, RED…")
    from_value: str | None
    to_value: str | None
    reason: str | None
    outcome: HistoryOutcome = Field(description="superseded: older than the state it met")
    provider_ts: datetime | None
    recorded_at: datetime


class Acknowledged(BaseModel):
    template_id: int
    acknowledged: list[TemplateAlert] = Field(description="the alerts this request acknowledged")


class WhatsAppCampaign(BaseModel):
    id: int
    tenant: str | None
    name: str
    template_id: int
    meta_template_id: str
    template_name: str
    template_status: str | None = Field(
        description="the template's status at Meta (None until known); while PAUSED or DISABLED"
        " the campaign cannot be resumed"
    )
    status: WhatsAppCampaignStatus
    paused_reason: PauseReason | None
    paused_at: datetime | None
    paused_by_event: int | None
    paused_by: str | None
    created_at: datetime
    updated_at: datetime


class CampaignLogEntry(BaseModel):
    id: int
    action: CampaignAction
    event_id: int | None
    actor: str | None
    detail: str | None
    at: datetime


class WhatsAppCampaignDetail(WhatsAppCampaign):
    log: list[CampaignLogEntry] = Field(description="what happened to it, newest first")


class TemplatePage(BaseModel):
    items: list[Template]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


class CriticalPage(BaseModel):
    items: list[CriticalTemplate]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


class HistoryPage(BaseModel):
    items: list[HistoryEntry]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


class TemplateAlertPage(BaseModel):
    items: list[TemplateAlert]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


# A campaign's name: not blank, no NUL (PostgreSQL stores none).
CampaignName = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$")
]
TemplateRef = Annotated[int, Field(ge=1, le=MAX_ID, description="hookyard's template id")]


class NewCampaign(BaseModel):
    """A campaign on one of the tenant's templates, in the template's tenant. It starts
    `active` (or `paused`, by the caller); paused for its template when Meta has paused or
    disabled that."""

    model_config = ConfigDict(extra="forbid")

    name: CampaignName
    template_id: TemplateRef
    status: WhatsAppCampaignStatus = WhatsAppCampaignStatus.ACTIVE


class CampaignChange(BaseModel):
    """The fields to change; a field left out stays as it is. `status`: `paused` pauses it
    (as the caller); `active` resumes it, which for a campaign its template paused needs
    an admin, and is refused (409) while the template is PAUSED or DISABLED."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=optional_not_null)

    name: CampaignName | None = None
    template_id: TemplateRef | None = None
    status: WhatsAppCampaignStatus | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if not data:
                raise ValueError("give at least one of name, template_id, status")
            nulls = sorted(str(k) for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"leave out the fields not to change, not null: {nulls}")
        return data


class CampaignDeleted(BaseModel):
    id: int
    deleted: bool


class CampaignsResumed(BaseModel):
    template_id: int
    resumed: list[int] = Field(description="the campaigns resumed (none: none was paused for it)")


class WhatsAppCampaignPage(BaseModel):
    items: list[WhatsAppCampaign]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


def _template_alerts(conn: Connection, rows: list[dict[str, Any]]) -> list[TemplateAlert]:
    """Alerts of the template kinds, each with its template named."""
    ids = {row["id"]: _template_of(row["subject"]) for row in rows}
    named = queries.template_names(conn, {i for i in ids.values() if i is not None})
    found = []
    for row in rows:
        template_id = ids[row["id"]]
        if template_id is None:  # not a template's subject: not an alert of these kinds
            continue
        meta_id = str(row["labels"].get("template", ""))
        meta_id, name = named.get(template_id, (meta_id, meta_id))
        found.append(
            TemplateAlert.model_validate(
                row
                | {
                    "template_id": template_id,
                    "meta_template_id": meta_id,
                    "template_name": name,
                    "created_at": row["opened_at"],
                }
            )
        )
    return found


def _template_of(subject: str) -> int | None:
    kind, _, key = subject.partition(":")
    return int(key) if kind == "template" and key.isdigit() else None


def _reasons(template: dict[str, Any]) -> list[str]:
    reasons = []
    if template["quality"] == Quality.RED:
        reasons.append(f"quality {Quality.RED.value}")
    if template["status"] in queries.CRITICAL_STATUSES:
        reasons.append(f"status {template['status']}")
    return reasons


# -- templates ------------------------------------------------------------------------------


@router.get("/whatsapp/templates", response_model=TemplatePage)
def list_templates(
    scope: ViewerScope,
    engine: Engine_,
    status: TemplateStatus | None = None,
    quality: Quality | None = None,
    limit: Limit = 50,
    before_id: Cursor = None,
) -> TemplatePage:
    with engine.connect() as conn:
        rows = queries.list_templates(
            conn, scope.tenant, status=status, quality=quality, limit=limit, before_id=before_id
        )
    items = [Template.model_validate(r) for r in rows]
    return TemplatePage(items=items, next_cursor=next_cursor(items, limit))


@router.get("/whatsapp/templates/critical", response_model=CriticalPage)
def critical_templates(
    scope: ViewerScope, engine: Engine_, limit: Limit = 100, before_id: Cursor = None
) -> CriticalPage:
    """Templates needing attention (RED quality; PAUSED, DISABLED, REJECTED or FLAGGED), each
    with its open alerts (firing, nobody acknowledged them), what a person must do, and the
    campaigns it stops or paused."""
    with engine.connect() as conn:
        rows = queries.list_templates(
            conn, scope.tenant, critical=True, limit=limit, before_id=before_id
        )
        found = alert_queries.open_alerts_of(
            conn,
            scope.where(alert_rows.c.tenant),
            [template_subject(r["id"]) for r in rows],
            TEMPLATE_KINDS,
        )
        alerts: dict[int, list[TemplateAlert]] = {}
        for alert in _template_alerts(conn, found):
            alerts.setdefault(alert.template_id, []).append(alert)
        affected = queries.campaigns_affected(conn, [r["id"] for r in rows])
    items = [
        CriticalTemplate.model_validate(
            r
            | {
                "reasons": _reasons(r),
                "open_alerts": alerts.get(r["id"], []),
                "action_required": queries.action_required(r["status"], r["quality"]),
                "campaigns_affected": {"count": len(affected[r["id"]]), "ids": affected[r["id"]]},
            }
        )
        for r in rows
    ]
    return CriticalPage(items=items, next_cursor=next_cursor(items, limit))


@router.get("/whatsapp/templates/quality-summary", response_model=QualitySummary)
def quality_summary(scope: ViewerScope, engine: Engine_) -> QualitySummary:
    with engine.connect() as conn:
        by_quality, by_status = queries.quality_summary(conn, scope.tenant)
        paused = queries.campaigns_paused_by_reason(conn, scope.tenant)

    def counts(found: dict[str | None, int]) -> list[Count]:
        # Largest first; ties (and the unknown, None) in a stable order.
        ordered = sorted(found.items(), key=lambda kv: (-kv[1], kv[0] or ""))
        return [Count(value=value, count=n) for value, n in ordered]

    return QualitySummary(
        total=sum(by_quality.values()),
        by_quality=counts(by_quality),
        by_status=counts(by_status),
        campaigns_paused=counts(paused),
    )


# `:int`: only digits match, so `/templates/critical` is never taken for an id.
@router.get("/whatsapp/templates/{template_id:int}", response_model=Template)
def show_template(scope: ViewerScope, engine: Engine_, template_id: TemplateId) -> Template:
    with engine.connect() as conn:
        found = queries.find_template(conn, scope.tenant, template_id)
    if found is None:
        raise HTTPException(404, f"no template {template_id}")
    return Template.model_validate(found)


@router.get(
    "/whatsapp/templates/{template_id}/status-history",
    response_model=HistoryPage,
)
def template_history(
    scope: ViewerScope,
    engine: Engine_,
    template_id: TemplateId,
    kind: Annotated[
        HistoryKind | None, Query(description="status or quality; both by default")
    ] = None,
    limit: Limit = 100,
    before_id: Cursor = None,
) -> HistoryPage:
    with engine.connect() as conn:
        if queries.find_template(conn, scope.tenant, template_id) is None:
            raise HTTPException(404, f"no template {template_id}")
        rows = queries.template_history_of(
            conn, template_id, kind=kind, limit=limit, before_id=before_id
        )
    items = [HistoryEntry.model_validate(r) for r in rows]
    return HistoryPage(items=items, next_cursor=next_cursor(items, limit))


@router.post(
    "/whatsapp/templates/{template_id}/acknowledge-alert",
    response_model=Acknowledged,
    deprecated=True,
)
def acknowledge_alerts(
    scope: MemberScope, engine: Engine_, template_id: TemplateId
) -> Acknowledged:
    """Deprecated alias: acknowledges, as `POST /api/v1/alerts/{id}/acknowledge` does each,
    every open alert of the template as the calling user. Idempotent: once they are
    acknowledged, calling again acknowledges nothing and keeps who did it first."""
    with writer(engine).begin() as tx:
        if queries.find_template(tx, scope.tenant, template_id) is None:
            raise HTTPException(404, f"no template {template_id}")
        done = alert_queries.acknowledge_open(
            tx,
            scope.where(alert_rows.c.tenant),
            template_subject(template_id),
            TEMPLATE_KINDS,
            scope.principal.subject,
        )
        acknowledged = _template_alerts(tx, done)
    return Acknowledged(template_id=template_id, acknowledged=acknowledged)


# -- alerts (deprecated: /api/v1/alerts) ----------------------------------------------------


@router.get("/whatsapp/alerts", response_model=TemplateAlertPage, deprecated=True)
def list_alerts(
    scope: ViewerScope,
    engine: Engine_,
    state: StateFilter = StateFilter.OPEN,
    limit: Limit = 50,
    before_id: Cursor = None,
) -> TemplateAlertPage:
    """Deprecated alias of `GET /api/v1/alerts` for the templates' kinds (`red_quality`,
    `template_disabled`, `template_rejected`), each naming its template. Newest first."""
    wanted = None if state is StateFilter.ALL else AlertState(state.value)
    with engine.connect() as conn:
        rows = alert_queries.list_alerts(
            conn,
            scope.where(alert_rows.c.tenant),
            state=wanted,
            kinds=TEMPLATE_KINDS,
            limit=limit,
            before_id=before_id,
        )
        items = _template_alerts(conn, rows)
    return TemplateAlertPage(items=items, next_cursor=next_cursor(items, limit))


# -- campaigns ------------------------------------------------------------------------------


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """The campaign rules' refusals as answers: a template not in the caller's sight 404,
    what only an admin may do 403, what a rule forbids 409."""
    try:
        yield
    except UnknownTemplate as exc:
        raise HTTPException(404, str(exc)) from None
    except AdminOnly as exc:
        raise HTTPException(403, str(exc)) from None
    except CampaignRefused as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/whatsapp/campaigns", response_model=WhatsAppCampaignPage)
def list_campaigns(
    scope: ViewerScope,
    engine: Engine_,
    status: WhatsAppCampaignStatus | None = None,
    template_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only the campaigns of this template")
    ] = None,
    limit: Limit = 50,
    before_id: Cursor = None,
) -> WhatsAppCampaignPage:
    with engine.connect() as conn:
        rows = queries.list_campaigns(
            conn,
            scope.tenant,
            status=status,
            template_id=template_id,
            limit=limit,
            before_id=before_id,
        )
    items = [WhatsAppCampaign.model_validate(r) for r in rows]
    return WhatsAppCampaignPage(items=items, next_cursor=next_cursor(items, limit))


def _campaign(engine: Engine, tenant: str | None, campaign_id: int) -> WhatsAppCampaignDetail:
    with engine.connect() as conn:
        campaign = queries.find_campaign(conn, tenant, campaign_id)
        if campaign is None:
            raise HTTPException(404, f"no campaign {campaign_id}")
        log = queries.campaign_log_of(conn, campaign_id)
    return WhatsAppCampaignDetail.model_validate(campaign | {"log": log})


@router.post("/whatsapp/campaigns", status_code=201, response_model=WhatsAppCampaignDetail)
def create_campaign(
    scope: MemberScope, engine: Engine_, body: NewCampaign
) -> WhatsAppCampaignDetail:
    """Create a campaign on one of the tenant's templates (404 when it is not one). On a
    template Meta paused or disabled it starts paused for it, and resumes with the others
    once Meta reinstates the template (`POST /whatsapp/templates/{id}/resume-campaigns`)."""
    with writer(engine).begin() as tx, _refusals():
        campaign_id = whatsapp.add_campaign(
            tx,
            body.template_id,
            body.name,
            tenant=scope.tenant,
            paused=body.status is WhatsAppCampaignStatus.PAUSED,
            by=scope.principal.subject,
        )
    return _campaign(engine, scope.tenant, campaign_id)


@router.get("/whatsapp/campaigns/{campaign_id}", response_model=WhatsAppCampaignDetail)
def show_campaign(
    scope: ViewerScope, engine: Engine_, campaign_id: CampaignId
) -> WhatsAppCampaignDetail:
    return _campaign(engine, scope.tenant, campaign_id)


@router.patch("/whatsapp/campaigns/{campaign_id}", response_model=WhatsAppCampaignDetail)
def change_campaign(
    scope: MemberScope, engine: Engine_, campaign_id: CampaignId, body: CampaignChange
) -> WhatsAppCampaignDetail:
    """Rename a campaign, move it to another of the tenant's templates (404 when it is not
    one), pause it (`status: paused`) or resume it (`active`): a campaign its template paused
    is resumed by an admin only (403), and none while its template is PAUSED or DISABLED
    (409). Left active on a template Meta paused or disabled, it is paused for it."""
    status = None if body.status is None else CampaignStatus(body.status.value)
    with writer(engine).begin() as tx:
        with _refusals():
            found = whatsapp.change_campaign(
                tx,
                campaign_id,
                scope.principal.subject,
                tenant=scope.tenant,
                name=body.name,
                template_id=body.template_id,
                status=status,
                may_resume_for_template=scope.principal.at_least("admin"),
            )
        if not found:
            raise HTTPException(404, f"no campaign {campaign_id}")
    return _campaign(engine, scope.tenant, campaign_id)


@router.delete("/whatsapp/campaigns/{campaign_id}", response_model=CampaignDeleted)
def delete_campaign(scope: AdminScope, engine: Engine_, campaign_id: CampaignId) -> CampaignDeleted:
    """Delete a campaign and what happened to it (its log)."""
    with writer(engine).begin() as tx:
        if not whatsapp.delete_campaign(
            tx, campaign_id, scope.principal.subject, tenant=scope.tenant
        ):
            raise HTTPException(404, f"no campaign {campaign_id}")
    return CampaignDeleted(id=campaign_id, deleted=True)


@router.post("/whatsapp/templates/{template_id}/resume-campaigns", response_model=CampaignsResumed)
def resume_template_campaigns(
    scope: AdminScope, engine: Engine_, template_id: TemplateId
) -> CampaignsResumed:
    """Once Meta reinstated a template (its status APPROVED again), resume every campaign
    its PAUSED or DISABLED status paused, in one go; those a person paused stay paused.
    409 while the template is not APPROVED; resuming again resumes nothing."""
    with writer(engine).begin() as tx, _refusals():
        resumed = whatsapp.resume_paused_for(
            tx, template_id, scope.principal.subject, tenant=scope.tenant
        )
    return CampaignsResumed(template_id=template_id, resumed=resumed)


@router.post(
    "/whatsapp/campaigns/{campaign_id}/resume",
    response_model=WhatsAppCampaignDetail,
)
def resume_campaign(
    scope: AdminScope, engine: Engine_, campaign_id: CampaignId
) -> WhatsAppCampaignDetail:
    """Resume a paused campaign (admins): the same rules as `PATCH` with `status: active`,
    so 409 while its template is PAUSED or DISABLED (resume once Meta reinstated it), and 409
    when it is not paused."""
    with writer(engine).begin() as tx:
        campaign = queries.find_campaign(tx, scope.tenant, campaign_id)
        if campaign is None:
            raise HTTPException(404, f"no campaign {campaign_id}")
        with _refusals():
            resumed = whatsapp.resume_campaign(
                tx,
                campaign_id,
                scope.principal.subject,
                tenant=scope.tenant,
                may_resume_for_template=scope.principal.at_least("admin"),
            )
        if not resumed:
            raise HTTPException(409, f"campaign {campaign_id} is {campaign['status']}, not paused")
    return _campaign(engine, scope.tenant, campaign_id)
