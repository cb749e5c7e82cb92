"""`/api/v1/leads`: C2S leads, their validated contact and their enrichment (outcome, the
document and person data found, the last run's step timings, attempts and errors).

Viewers see names, e-mail addresses, phone numbers and document numbers masked, in the
person data and in error texts too (`api/privacy.py`); members and up see them as stored.
Each answer says which it is (`personal_data_masked`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from hookyard.api.auth import MemberScope, Scope, ViewerScope, engine_of
from hookyard.api.params import MAX_ID, Cursor, Limit, next_cursor
from hookyard.api.privacy import (
    clip_depth,
    mask_document,
    mask_email,
    mask_name,
    mask_personal,
    mask_phone,
    mask_text,
)
from hookyard.domain.common import SyncSource
from hookyard.domain.leads import queries
from hookyard.domain.leads.service import (
    EnrichmentStatus,
    LeadStatus,
    ReEnrich,
    request_enrichment,
)

router = APIRouter(prefix="/api/v1", tags=["leads"])
Engine_ = Annotated[Engine, Depends(engine_of)]


class LeadSummary(BaseModel):
    id: int
    tenant: str | None
    c2s_lead_id: str
    name: str | None = Field(description="masked for viewers (each word's first letter)")
    email: str | None = Field(description="normalised; masked for viewers")
    phone: str | None = Field(description="E.164; masked for viewers")
    status: LeadStatus
    enrichment_status: EnrichmentStatus
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    personal_data_masked: bool


class StepTiming(BaseModel):
    step: str
    ms: float
    ok: bool


class Enrichment(BaseModel):
    status: EnrichmentStatus
    reason: str | None = Field(
        description="why a finished run matched nobody, matched one contact only "
        "(enriched_single_source: not confirmed to be the same person), or found no data"
    )
    document: str | None = Field(description="the document number found; masked for viewers")
    data: dict[str, Any] | None = Field(
        description="the person service's answer; personal values masked for viewers"
    )
    steps: list[StepTiming] = Field(description="the last run's steps and their timings")
    attempts: int
    error: str | None = Field(description="the last failure, if any")
    requested_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None = Field(description="a pending retry is due from then")


class LeadDetail(LeadSummary):
    email_valid: bool | None = Field(
        description="the last e-mail received validated (false: refused, see validation_errors;"
        " null: none received)"
    )
    phone_valid: bool | None = Field(description="as email_valid, for the phone")
    validation_errors: dict[str, str] | None = Field(
        description="the contact fields whose last value did not validate, and why"
        " (`missing`, `invalid: <reason>`, `fake: <reason>`)"
    )
    c2s_updated_at: datetime | None
    last_synced_at: datetime | None
    sync_source: SyncSource | None
    enrichment: Enrichment


class LeadPage(BaseModel):
    items: list[LeadSummary]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


def _contact(row: dict[str, Any], clear: bool) -> dict[str, Any]:
    if clear:
        return row | {"personal_data_masked": False}
    masked = {
        "name": mask_name(row["name"]),
        "email": mask_email(row["email"]),
        "phone": mask_phone(row["phone"]),
    }
    return row | masked | {"personal_data_masked": True}


def _detail(row: dict[str, Any], scope: Scope) -> LeadDetail:
    clear = scope.principal.sees_personal_data
    enrichment = {
        "status": row["enrichment_status"],
        "reason": row["enrichment_reason"],
        "document": row["document"],
        "data": clip_depth(row["enrichment_data"]),  # an outside service's answer
        "steps": row["enrichment_steps"] or [],
        "attempts": row["enrichment_attempts"],
        "error": row["enrichment_error"],
        "requested_at": row["enrichment_requested_at"],
        "started_at": row["enrichment_started_at"],
        "finished_at": row["enrichment_finished_at"],
        "next_attempt_at": row["enrichment_next_attempt_at"],
    }
    errors = row["validation_errors"]
    valid = {
        f"{key}_valid": False if key in (errors or {}) else (True if row[key] else None)
        for key in ("email", "phone")
    }
    if not clear:
        # Error texts may quote what they failed on (an unexpected exception's message).
        enrichment |= {
            "document": mask_document(row["document"]),
            "data": mask_personal(row["enrichment_data"]),
            "reason": mask_text(row["enrichment_reason"]),
            "error": mask_text(row["enrichment_error"]),
        }
        errors = errors and {field: mask_text(why) or "" for field, why in errors.items()}
    return LeadDetail.model_validate(
        _contact(row, clear) | valid | {"validation_errors": errors, "enrichment": enrichment}
    )


@router.get("/leads", response_model=LeadPage)
def list_leads(
    scope: ViewerScope,
    engine: Engine_,
    status: LeadStatus | None = None,
    enrichment_status: EnrichmentStatus | None = None,
    limit: Limit = 50,
    before_id: Cursor = None,
) -> LeadPage:
    with engine.connect() as conn:
        rows = queries.list_leads(
            conn,
            scope.tenant,
            status=status,
            enrichment_status=enrichment_status,
            limit=limit,
            before_id=before_id,
        )
    clear = scope.principal.sees_personal_data
    items = [LeadSummary.model_validate(_contact(r, clear)) for r in rows]
    return LeadPage(items=items, next_cursor=next_cursor(items, limit))


@router.get("/leads/{lead_id}", response_model=LeadDetail)
def show_lead(
    scope: ViewerScope,
    engine: Engine_,
    lead_id: Annotated[int, Path(ge=1, le=MAX_ID, description="hookyard's lead id")],
) -> LeadDetail:
    with engine.connect() as conn:
        row = queries.find_lead(conn, scope.tenant, lead_id)
    if row is None:
        raise HTTPException(404, f"no lead {lead_id}")
    return _detail(row, scope)


class EnrichmentRequested(BaseModel):
    id: int
    enrichment_status: EnrichmentStatus


@router.post(
    "/leads/{lead_id}/re-enrich",
    response_model=EnrichmentRequested,
    status_code=202,
)
def re_enrich(
    scope: MemberScope,
    engine: Engine_,
    lead_id: Annotated[int, Path(ge=1, le=MAX_ID, description="hookyard's lead id")],
) -> EnrichmentRequested:
    """Enrich the lead again with its current contact (a fresh set of attempts): 409 while
    a run holds it, or when it has no valid e-mail or phone to look up."""
    with engine.begin() as tx:
        result = request_enrichment(tx, lead_id, scope.tenant)
    if result is ReEnrich.NOT_FOUND:
        raise HTTPException(404, f"no lead {lead_id}")
    if result is ReEnrich.RUNNING:
        raise HTTPException(409, "an enrichment run holds this lead now; ask again when it ends")
    if result is ReEnrich.NOTHING_TO_LOOK_UP:
        raise HTTPException(409, "the lead has no valid e-mail or phone to look up")
    return EnrichmentRequested(id=lead_id, enrichment_status=EnrichmentStatus.PENDING)
