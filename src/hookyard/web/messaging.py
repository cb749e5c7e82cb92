"""Dashboard pages of 10DLC messaging: brands and campaigns as TCR's webhooks left them, each
carrier's decision on a campaign, and a brand's vettings, refreshed live; brand registration
(a form, each registration as TCR answered it, an admin's retry). Through the API's route
functions (`api/messaging.py`, `api/brand_registration.py`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import Response
from pydantic import ValidationError

from hookyard.api import brand_registration as registration_api
from hookyard.api import messaging as api
from hookyard.api.auth import Scope
from hookyard.api.messaging import TCR_ID
from hookyard.api.params import Cursor, RowId
from hookyard.domain.tendlc.states import BrandStatus, CampaignStatus
from hookyard.web.forms import PAGE, FormWord, Word, choice
from hookyard.web.render import back, page
from hookyard.web.session import Csrf, UiScope, call

router = APIRouter()
REGISTRATIONS_SHOWN = 20  # the newest; the API pages through all of them

# The form's fields -> TCR's (the optional ones a registration usually needs go as given).
FORM_FIELDS = {
    "entity_type": "entityType",
    "display_name": "displayName",
    "company_name": "companyName",
    "vertical": "vertical",
    "brand_relationship": "brandRelationship",
    "ein": "ein",
    "phone": "phone",
    "email": "email",
    "website": "website",
    "country": "country",
}

BrandId = Annotated[str, Path(pattern=TCR_ID, description="TCR's brand id")]
CampaignId = Annotated[str, Path(pattern=TCR_ID, description="TCR's campaign id")]


@router.get("/messaging")
def overview(
    request: Request,
    scope: UiScope,
    brand_status: Word = "",
    campaign_status: Word = "",
    brands_before: Cursor = None,
    campaigns_before: Cursor = None,
) -> Response:
    """Brands and campaigns, each list with its own filter and its own pages; the brand
    registrations and the form that makes one."""
    filters = {"brand_status": brand_status, "campaign_status": campaign_status}
    return _overview(request, scope, filters, brands_before, campaigns_before)


def _overview(
    request: Request,
    scope: Scope,
    filters: dict[str, str],
    brands_before: int | None = None,
    campaigns_before: int | None = None,
    *,
    form: dict[str, str] | None = None,
    form_error: str | None = None,
    status: int = 200,
) -> Response:
    brand_status, campaign_status = filters["brand_status"], filters["campaign_status"]
    brands = call(
        api.list_brands,
        request,
        scope,
        status=choice(BrandStatus, brand_status),
        identity_status=None,
        limit=PAGE,
        before_id=brands_before,
    )
    campaigns = call(
        api.list_campaigns,
        request,
        scope,
        status=choice(CampaignStatus, campaign_status),
        brand_id=None,
        limit=PAGE,
        before_id=campaigns_before,
    )
    registrations = call(
        registration_api.list_registrations,
        request,
        scope,
        status=None,
        limit=REGISTRATIONS_SHOWN,
        before_id=None,
    )
    services = registration_api.services_of(request)
    may_register = services.tcr is not None and scope.principal.at_least("member")
    return page(
        request,
        scope,
        "messaging.html",
        status,
        registrations=registrations.items,
        may_register=may_register,
        choices=registration_api.choices(services) if may_register else {},
        form=form or {},
        form_error=form_error,
        brands=brands.items,
        brands_next=brands.next_cursor,
        brands_first=brands_before is None,
        campaigns=campaigns.items,
        campaigns_next=campaigns.next_cursor,
        campaigns_first=campaigns_before is None,
        filters=filters,
        brand_statuses=[s.value for s in BrandStatus],
        campaign_statuses=[s.value for s in CampaignStatus],
    )


@router.get("/messaging/brands/{brand_id}")
def show_brand(request: Request, scope: UiScope, brand_id: BrandId) -> Response:
    brand = call(api.show_brand, request, scope, brand_id=brand_id)
    return page(request, scope, "brand.html", brand=brand)


@router.get("/messaging/campaigns/{campaign_id}")
def show_campaign(request: Request, scope: UiScope, campaign_id: CampaignId) -> Response:
    campaign = call(api.show_campaign, request, scope, campaign_id=campaign_id)
    return page(request, scope, "campaign.html", campaign=campaign)


@router.post("/messaging/brands", dependencies=[Csrf])
def register_brand(
    request: Request,
    scope: UiScope,
    entity_type: FormWord = "",
    display_name: FormWord = "",
    company_name: FormWord = "",
    vertical: FormWord = "",
    brand_relationship: FormWord = "",
    ein: FormWord = "",
    phone: FormWord = "",
    email: FormWord = "",
    website: FormWord = "",
    country: FormWord = "",
) -> Response:
    """Register a brand (members): to the registration's page, which shows TCR's answer; a
    field refused before TCR is called comes back to the form, filled in as it was."""
    given = {
        "entity_type": entity_type, "display_name": display_name, "company_name": company_name,
        "vertical": vertical, "brand_relationship": brand_relationship, "ein": ein,
        "phone": phone, "email": email, "website": website, "country": country,
    }  # fmt: skip
    form = {k: v.strip() for k, v in given.items()}
    fields = {FORM_FIELDS[k]: v for k, v in form.items() if v}
    filters = {"brand_status": "", "campaign_status": ""}
    try:
        body = registration_api.BrandRegistration.model_validate(fields)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "the form"
        error = f"{where}: {problem['msg']}"
        return _overview(request, scope, filters, form=form, form_error=error, status=400)
    answer = call(registration_api.register_brand, request, scope, body=body)
    data: dict[str, Any] = json.loads(answer.body)
    kept = data.get("registration") if answer.status_code == 400 else data
    if isinstance(kept, dict) and "id" in kept:
        return back(request, f"/ui/messaging/registrations/{kept['id']}")
    return _overview(request, scope, filters, form=form, form_error=data["detail"], status=400)


@router.get("/messaging/registrations/{registration_id}")
def show_registration(request: Request, scope: UiScope, registration_id: RowId) -> Response:
    """A registration as TCR answered it, and its brand as TCR's webhooks have left it since."""
    found = call(
        registration_api.show_registration, request, scope, registration_id=registration_id
    )
    brand = None
    if found.brand_id is not None:
        try:
            brand = call(api.show_brand, request, scope, brand_id=found.brand_id)
        except HTTPException:
            brand = None  # another tenant's since: the registration alone
    return page(request, scope, "registration.html", registration=found, brand=brand)


@router.post("/messaging/registrations/{registration_id}/retry", dependencies=[Csrf])
def retry_registration(request: Request, scope: UiScope, registration_id: RowId) -> Response:
    call(registration_api.retry_registration, request, scope, registration_id=registration_id)
    return back(request, f"/ui/messaging/registrations/{registration_id}", "registration_retried")
