"""Dashboard pages of 10DLC messaging: brands and campaigns as TCR's webhooks left them, each
carrier's decision on a campaign, and a brand's vettings, refreshed live. Read-only, through
the API's route functions (`api/messaging.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from hookyard.api import messaging as api
from hookyard.api.messaging import TCR_ID
from hookyard.api.params import Cursor
from hookyard.domain.tendlc.states import BrandStatus, CampaignStatus
from hookyard.web.forms import PAGE, Word, choice
from hookyard.web.render import page
from hookyard.web.session import UiScope, call

router = APIRouter()

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
    """Brands and campaigns, each list with its own filter and its own pages."""
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
    return page(
        request,
        scope,
        "messaging.html",
        brands=brands.items,
        brands_next=brands.next_cursor,
        brands_first=brands_before is None,
        campaigns=campaigns.items,
        campaigns_next=campaigns.next_cursor,
        campaigns_first=campaigns_before is None,
        filters={"brand_status": brand_status, "campaign_status": campaign_status},
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
