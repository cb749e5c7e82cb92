"""Dashboard pages of C2S leads: the list (by status and enrichment status), one lead with
its validation errors and enrichment, and asking for it to be enriched again. Each reads
and changes through the API's route functions (`api/leads.py`), so viewers see contact data
masked exactly as the API masks it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hookyard.api import leads as api
from hookyard.api.params import Cursor, RowId
from hookyard.domain.leads.service import EnrichmentStatus, LeadStatus
from hookyard.web.forms import PAGE, Word, choice
from hookyard.web.render import back, page
from hookyard.web.session import Csrf, UiScope, call

router = APIRouter()


@router.get("/leads")
def list_leads(
    request: Request,
    scope: UiScope,
    status: Word = "",
    enrichment_status: Word = "",
    before_id: Cursor = None,
) -> Response:
    found = call(
        api.list_leads,
        request,
        scope,
        status=choice(LeadStatus, status),
        enrichment_status=choice(EnrichmentStatus, enrichment_status),
        limit=PAGE,
        before_id=before_id,
    )
    return page(
        request,
        scope,
        "leads.html",
        leads=found.items,
        next_cursor=found.next_cursor,
        filters={"status": status, "enrichment_status": enrichment_status},
        statuses=[s.value for s in LeadStatus],
        enrichment_statuses=[s.value for s in EnrichmentStatus],
    )


@router.get("/leads/{lead_id:int}")
def show_lead(request: Request, scope: UiScope, lead_id: RowId) -> Response:
    lead = call(api.show_lead, request, scope, lead_id=lead_id)
    return page(request, scope, "lead.html", lead=lead)


@router.post("/leads/{lead_id:int}/re-enrich", dependencies=[Csrf])
def re_enrich(request: Request, scope: UiScope, lead_id: RowId) -> Response:
    """Enrich again; the API's refusals (a run holds it, nothing to look up) are its 409
    with the reason, shown as the error page."""
    call(api.re_enrich, request, scope, lead_id=lead_id)
    return back(request, f"/ui/leads/{lead_id}", "re_enrich")
