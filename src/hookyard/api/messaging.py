"""`/api/v1/messaging/…`: 10DLC brands and campaigns as TCR's webhooks left them, each
carrier's status of a campaign, and TCR's enumerations. Read-only, for viewers and up; a
brand is registered with `POST /api/v1/messaging/brands` (`api/sync.py`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine

from hookyard.api.auth import ViewerScope, engine_of
from hookyard.api.params import Cursor, Limit, next_cursor
from hookyard.domain.common import SyncSource
from hookyard.domain.tendlc import queries
from hookyard.domain.tendlc.carriers import CARRIERS, carrier_name
from hookyard.domain.tendlc.enums import (
    STANDARD_USE_CASES,
    EntityType,
    UseCase,
    Vertical,
    label,
)
from hookyard.domain.tendlc.states import (
    BrandStatus,
    CampaignStatus,
    CarrierStatus,
    IdentityStatus,
    ShareStatus,
    VettingKind,
)
from hookyard.domain.tendlc.tables import TCR_ID_LENGTH

router = APIRouter(prefix="/api/v1", tags=["messaging"])
Engine_ = Annotated[Engine, Depends(engine_of)]

# A TCR id as stored: never a NUL (`storable_text` drops it), at most TCR_ID_LENGTH long.
TCR_ID = rf"^[^\x00]{{1,{TCR_ID_LENGTH}}}$"


class Brand(BaseModel):
    id: int
    brand_id: str
    tenant: str | None
    display_name: str | None
    company_name: str | None
    entity_type: str | None = Field(description="as TCR sent it; known values in /enums")
    vertical: str | None = Field(description="as TCR sent it; known values in /enums")
    status: BrandStatus | None
    identity_status: str | None = Field(description="as TCR sent it; known values in /enums")
    trust_score: int | None
    feedback: str | None
    last_event_type: str | None
    last_event_at: datetime | None
    last_synced_at: datetime
    sync_source: SyncSource
    created_at: datetime


class CarrierState(BaseModel):
    mno_id: str
    carrier: str = Field(description="the carrier's name (`MNO <id>` for one not known yet)")
    status: str = Field(description="a carrier status, or a word TCR added later as sent")
    last_event_type: str | None
    last_event_at: datetime | None
    last_synced_at: datetime


class TenDlcCampaign(BaseModel):
    id: int
    campaign_id: str
    brand_id: str | None = Field(description="None until an event names the campaign's brand")
    tenant: str | None
    use_case: str | None = Field(description="as TCR sent it; known values in /enums")
    status: CampaignStatus | None
    share_status: ShareStatus | None
    rejection_reason: str | None
    last_event_type: str | None
    last_event_at: datetime | None
    last_synced_at: datetime
    sync_source: SyncSource
    created_at: datetime
    carriers: list[CarrierState] = Field(description="each carrier's status, by MNO id")


class Vetting(BaseModel):
    id: int
    kind: VettingKind
    vetting_key: str = Field(description="the vetting report's id; empty for verifications")
    evp_id: str | None
    vetting_class: str | None
    status: str | None
    score: int | None
    last_event_type: str | None
    last_event_at: datetime | None
    last_synced_at: datetime


class BrandDetail(Brand):
    campaigns: list[TenDlcCampaign]
    vettings: list[Vetting]


class TenDlcCampaignDetail(TenDlcCampaign):
    """A campaign as its list shows it (carriers included)."""


class BrandPage(BaseModel):
    items: list[Brand]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


class TenDlcCampaignPage(BaseModel):
    items: list[TenDlcCampaign]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


class Choice(BaseModel):
    value: str
    label: str


class UseCaseChoice(Choice):
    special: bool = Field(description="a special use case: vetting or carrier review needed")


class Carrier(BaseModel):
    mno_id: str
    name: str


class MessagingEnums(BaseModel):
    use_cases: list[UseCaseChoice]
    entity_types: list[Choice]
    verticals: list[Choice]
    brand_statuses: list[Choice]
    identity_statuses: list[Choice]
    campaign_statuses: list[Choice]
    carrier_statuses: list[Choice]
    share_statuses: list[Choice]
    vetting_kinds: list[Choice]
    carriers: list[Carrier]


@router.get("/messaging/brands", response_model=BrandPage)
def list_brands(
    scope: ViewerScope,
    engine: Engine_,
    status: BrandStatus | None = None,
    identity_status: IdentityStatus | None = None,
    limit: Limit = 50,
    before_id: Cursor = None,
) -> BrandPage:
    with engine.connect() as conn:
        rows = queries.list_brands(
            conn,
            scope.tenant,
            status=status,
            identity_status=identity_status,
            limit=limit,
            before_id=before_id,
        )
    items = [Brand.model_validate(r) for r in rows]
    return BrandPage(items=items, next_cursor=next_cursor(items, limit))


@router.get("/messaging/brands/{brand_id}", response_model=BrandDetail)
def show_brand(
    scope: ViewerScope,
    engine: Engine_,
    brand_id: Annotated[str, Path(pattern=TCR_ID, description="TCR's brand id")],
) -> BrandDetail:
    with engine.connect() as conn:
        brand = queries.find_brand(conn, scope.tenant, brand_id)
        if brand is None:
            raise HTTPException(404, f"no brand {brand_id}")
        # A brand has a few campaigns (TCR caps them per brand); 500 is far above that.
        found = queries.list_campaigns(conn, scope.tenant, brand_id=brand_id, limit=500)
        campaigns = _with_carriers(conn, found)
        vettings = queries.vettings_of_brand(conn, brand_id)
    return BrandDetail.model_validate(brand | {"campaigns": campaigns, "vettings": vettings})


@router.get("/messaging/campaigns", response_model=TenDlcCampaignPage)
def list_campaigns(
    scope: ViewerScope,
    engine: Engine_,
    status: CampaignStatus | None = None,
    brand_id: Annotated[str | None, Query(pattern=TCR_ID)] = None,
    limit: Limit = 50,
    before_id: Cursor = None,
) -> TenDlcCampaignPage:
    with engine.connect() as conn:
        rows = queries.list_campaigns(
            conn,
            scope.tenant,
            status=status,
            brand_id=brand_id,
            limit=limit,
            before_id=before_id,
        )
        items = [TenDlcCampaign.model_validate(r) for r in _with_carriers(conn, rows)]
    return TenDlcCampaignPage(items=items, next_cursor=next_cursor(items, limit))


@router.get("/messaging/campaigns/{campaign_id}", response_model=TenDlcCampaignDetail)
def show_campaign(
    scope: ViewerScope,
    engine: Engine_,
    campaign_id: Annotated[str, Path(pattern=TCR_ID, description="TCR's campaign id")],
) -> TenDlcCampaignDetail:
    with engine.connect() as conn:
        campaign = queries.find_campaign(conn, scope.tenant, campaign_id)
        if campaign is None:
            raise HTTPException(404, f"no campaign {campaign_id}")
        [found] = _with_carriers(conn, [campaign])
    return TenDlcCampaignDetail.model_validate(found)


def _with_carriers(conn: Connection, campaigns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Campaign rows (already scoped to the caller's tenant) with their carriers' statuses,
    fetched in one query for the lot."""
    found = queries.carriers_of_campaigns(conn, [c["campaign_id"] for c in campaigns])
    return [
        c | {"carriers": [r | {"carrier": carrier_name(r["mno_id"])}
                          for r in found.get(c["campaign_id"], [])]}
        for c in campaigns
    ]  # fmt: skip


@router.get("/messaging/enums", response_model=MessagingEnums)
def messaging_enums(_: ViewerScope) -> MessagingEnums:
    def listed(values: type[StrEnum]) -> list[Choice]:
        return [Choice(value=v.value, label=label(v.value)) for v in values]

    return MessagingEnums(
        use_cases=[
            UseCaseChoice(value=u.value, label=label(u.value), special=u not in STANDARD_USE_CASES)
            for u in UseCase
        ],
        entity_types=listed(EntityType),
        verticals=listed(Vertical),
        brand_statuses=listed(BrandStatus),
        identity_statuses=listed(IdentityStatus),
        campaign_statuses=listed(CampaignStatus),
        carrier_statuses=listed(CarrierStatus),
        share_statuses=listed(ShareStatus),
        vetting_kinds=listed(VettingKind),
        carriers=[Carrier(mno_id=k, name=v) for k, v in CARRIERS.items()],
    )
