"""Dashboard pages of WhatsApp: templates (the quality summary with the campaigns paused by
reason, the ones needing attention with their open alerts, what to do and the campaigns they
stop, every template, one template's status and quality history and its campaigns) and the
campaigns using them, refreshed live. Members create a campaign (the form on the overview),
pause it and resume one they paused; admins resume a campaign a template's pause stopped,
every one of a reinstated template at once (on the template's page), and delete one.
Everything goes through the API's route functions (`api/whatsapp.py`), so each action needs
the role the API asks for; a new campaign the API refuses comes back with the reason beside
the form.

A template's open alerts are the one alert system's: members acknowledge each one through the
alerts page's own route (`/ui/alerts/{id}/acknowledge`, web/alerts.py), coming back here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response
from pydantic import ValidationError

from hookyard.api import whatsapp as api
from hookyard.api.auth import Scope
from hookyard.api.params import Cursor
from hookyard.domain.whatsapp.campaigns import paused_for
from hookyard.domain.whatsapp.service import TEMPLATE_REASONS, Quality, TemplateStatus
from hookyard.web.forms import PAGE, Word, choice
from hookyard.web.render import back, page
from hookyard.web.session import Csrf, UiScope, call

router = APIRouter()

Field = Annotated[str, Form(max_length=300)]
CHOICES = 500  # templates offered in the new campaign form


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
    campaigns, with the new campaign form; each list has its own pages."""
    return _overview(
        request,
        scope,
        status=status,
        quality=quality,
        before_id=before_id,
        critical_before=critical_before,
        campaigns_before=campaigns_before,
    )


def _overview(
    request: Request,
    scope: Scope,
    *,
    status: str = "",
    quality: str = "",
    before_id: int | None = None,
    critical_before: int | None = None,
    campaigns_before: int | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
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
        template_id=None,
        limit=PAGE,
        before_id=campaigns_before,
    )
    choices = []
    if scope.principal.at_least("member"):
        choices = call(
            api.list_templates,
            request,
            scope,
            status=None,
            quality=None,
            limit=CHOICES,
            before_id=None,
        ).items
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
        choices=choices,
        values=values or {"name": "", "template_id": ""},
        errors=errors or {},
    )


@router.post("/whatsapp/campaigns", dependencies=[Csrf])
def create_campaign(
    request: Request, scope: UiScope, name: Field = "", template_id: Field = ""
) -> Response:
    """Create a campaign; a refused one comes back on the overview with the reason."""
    values = {"name": name, "template_id": template_id}
    try:
        body = api.NewCampaign.model_validate({"name": name, "template_id": template_id or None})
    except ValidationError as exc:
        return _overview(request, scope, values=values, errors=_field_errors(exc))
    try:
        call(api.create_campaign, request, scope, body=body)
    except HTTPException as exc:
        if exc.status_code in (400, 404, 409):
            return _overview(request, scope, values=values, errors={"template_id": exc.detail})
        raise
    return back(request, "/ui/whatsapp", "campaign_created")


def _field_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic's errors as one message per form field."""
    found: dict[str, str] = {}
    for error in exc.errors():
        where = str(error["loc"][0]) if error["loc"] else "form"
        found.setdefault(where, str(error["msg"]).removeprefix("Value error, "))
    return found


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
    campaigns = call(
        api.list_campaigns,
        request,
        scope,
        status=None,
        template_id=template_id,
        limit=PAGE,
        before_id=None,
    ).items
    paused_for_it = [c for c in campaigns if c.paused_reason in TEMPLATE_REASONS]
    return page(
        request,
        scope,
        "template.html",
        message_template=template,  # `template` is page()'s own parameter
        history=history.items,
        history_next=history.next_cursor,
        first_page=before_id is None,
        campaigns=campaigns,
        paused_for_it=paused_for_it,
        may_resume=template.status == TemplateStatus.APPROVED and bool(paused_for_it),
    )


@router.post("/whatsapp/templates/{template_id:int}/resume-campaigns", dependencies=[Csrf])
def resume_campaigns(request: Request, scope: UiScope, template_id: api.TemplateId) -> Response:
    """Resume, in one go, the campaigns the template's pause paused (admins)."""
    call(api.resume_template_campaigns, request, scope, template_id=template_id)
    return back(request, f"/ui/whatsapp/templates/{template_id}", "campaigns_resumed")


@router.get("/whatsapp/campaigns/{campaign_id:int}")
def show_campaign(request: Request, scope: UiScope, campaign_id: api.CampaignId) -> Response:
    campaign = call(api.show_campaign, request, scope, campaign_id=campaign_id)
    # The domain's rule: no Resume offered (it would be a 409) while the template holds it.
    held = paused_for({"status": campaign.template_status}) is not None
    return page(request, scope, "whatsapp_campaign.html", campaign=campaign, held=held)


@router.post("/whatsapp/campaigns/{campaign_id:int}/resume", dependencies=[Csrf])
def resume(request: Request, scope: UiScope, campaign_id: api.CampaignId) -> Response:
    call(api.resume_campaign, request, scope, campaign_id=campaign_id)
    return back(request, f"/ui/whatsapp/campaigns/{campaign_id}", "resumed")


@router.post("/whatsapp/campaigns/{campaign_id:int}/status", dependencies=[Csrf])
def set_status(
    request: Request, scope: UiScope, campaign_id: api.CampaignId, status: Field = ""
) -> Response:
    """Pause a campaign, or resume one a person paused (members)."""
    wanted = choice(api.WhatsAppCampaignStatus, status)
    if wanted is None:
        raise HTTPException(400, "status: pick active or paused")
    change = api.CampaignChange(status=wanted)
    call(api.change_campaign, request, scope, campaign_id=campaign_id, body=change)
    notice = "campaign_paused" if wanted is api.WhatsAppCampaignStatus.PAUSED else "resumed"
    return back(request, f"/ui/whatsapp/campaigns/{campaign_id}", notice)


@router.post("/whatsapp/campaigns/{campaign_id:int}/delete", dependencies=[Csrf])
def delete(request: Request, scope: UiScope, campaign_id: api.CampaignId) -> Response:
    call(api.delete_campaign, request, scope, campaign_id=campaign_id)
    return back(request, "/ui/whatsapp", "campaign_deleted")
