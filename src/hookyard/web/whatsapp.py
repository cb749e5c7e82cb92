"""Dashboard pages of WhatsApp: templates (the quality summary, the ones needing attention with
their open alerts, every template, one template's status and quality history) and the
campaigns using them, refreshed live. Admins resume a campaign a template's pause stopped.
Everything goes through the API's route functions (`api/whatsapp.py`), so each action needs
the role the API asks for.

A template's open alerts are the one alert system's: members acknowledge each one through the
alerts page's own route (`/ui/alerts/{id}/acknowledge`, web/alerts.py), coming back here."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hookyard.api import whatsapp as api
from hookyard.api.params import Cursor
from hookyard.domain.whatsapp.service import Quality, TemplateStatus
from hookyard.web.forms import PAGE, Word, choice
from hookyard.web.render import back, page
from hookyard.web.session import Csrf, UiScope, call

router = APIRouter()


@router.get("/whatsapp")
def overview(
    request: Request,
    scope: UiScope,
    status: Word = "",
    quality: Word = "",
    before_id: Cursor = None,
    critical_before: Cursor = None,
    campaigns_before: Cursor = None,
) -> Response:
    """The summary, the templates needing attention, every template (filtered) and the
    campaigns; each list has its own pages."""
    summary = call(api.quality_summary, request, scope)
    critical = call(api.critical_templates, request, scope, limit=PAGE, before_id=critical_before)
    templates = call(
        api.list_templates,
        request,
        scope,
        status=choice(TemplateStatus, status),
        quality=choice(Quality, quality),
        limit=PAGE,
        before_id=before_id,
    )
    campaigns = call(
        api.list_campaigns,
        request,
        scope,
        status=None,
        limit=PAGE,
        before_id=campaigns_before,
    )
    return page(
        request,
        scope,
        "whatsapp.html",
        summary=summary,
        critical=critical.items,
        critical_next=critical.next_cursor,
        critical_first=critical_before is None,
        templates=templates.items,
        templates_next=templates.next_cursor,
        templates_first=before_id is None,
        campaigns=campaigns.items,
        campaigns_next=campaigns.next_cursor,
        campaigns_first=campaigns_before is None,
        filters={"status": status, "quality": quality},
        statuses=[s.value for s in TemplateStatus],
        qualities=[q.value for q in Quality],
    )


@router.get("/whatsapp/templates/{template_id:int}")
def show_template(
    request: Request, scope: UiScope, template_id: api.TemplateId, before_id: Cursor = None
) -> Response:
    template = call(api.show_template, request, scope, template_id=template_id)
    history = call(
        api.template_history,
        request,
        scope,
        template_id=template_id,
        kind=None,
        limit=PAGE,
        before_id=before_id,
    )
    return page(
        request,
        scope,
        "template.html",
        message_template=template,  # `template` is page()'s own parameter
        history=history.items,
        history_next=history.next_cursor,
        first_page=before_id is None,
    )


@router.get("/whatsapp/campaigns/{campaign_id:int}")
def show_campaign(request: Request, scope: UiScope, campaign_id: api.CampaignId) -> Response:
    campaign = call(api.show_campaign, request, scope, campaign_id=campaign_id)
    return page(request, scope, "whatsapp_campaign.html", campaign=campaign)


@router.post("/whatsapp/campaigns/{campaign_id:int}/resume", dependencies=[Csrf])
def resume(request: Request, scope: UiScope, campaign_id: api.CampaignId) -> Response:
    call(api.resume_campaign, request, scope, campaign_id=campaign_id)
    return back(request, f"/ui/whatsapp/campaigns/{campaign_id}", "resumed")
