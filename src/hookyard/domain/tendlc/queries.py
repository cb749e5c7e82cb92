"""Read-only queries of the 10DLC tables for the management API.

`tenant` is the tenant whose rows a query may return; None means every tenant (a superadmin
who picked none). A brand carries its tenant; a campaign and its carriers and vettings reach it
through their brand, so a campaign whose brand is not known yet belongs to no tenant and is
seen only across all tenants. Lists are newest first; `before_id` continues after a page.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, select, true

from hookyard.domain.tendlc.tables import brands, campaign_carriers, campaigns, vettings


def _owned(tenant: str | None) -> ColumnElement[bool]:
    return true() if tenant is None else brands.c.tenant == tenant


def _page(query: Select[Any], id_column: Any, limit: int, before_id: int | None) -> Select[Any]:
    if before_id is not None:
        query = query.where(id_column < before_id)
    return query.order_by(id_column.desc()).limit(limit)


def list_brands(
    conn: Connection,
    tenant: str | None,
    *,
    status: str | None = None,
    identity_status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    query = select(brands).where(_owned(tenant))
    if status is not None:
        query = query.where(brands.c.status == status)
    if identity_status is not None:
        query = query.where(brands.c.identity_status == identity_status)
    rows = conn.execute(_page(query, brands.c.id, limit, before_id)).mappings()
    return [dict(r) for r in rows]


def find_brand(conn: Connection, tenant: str | None, brand_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(select(brands).where(brands.c.brand_id == brand_id, _owned(tenant)))
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def vettings_of_brand(conn: Connection, brand_id: str) -> list[dict[str, Any]]:
    """The brand's verification and vetting results (the caller checked the brand's tenant)."""
    query = select(vettings).where(vettings.c.brand_id == brand_id).order_by(vettings.c.id)
    return [dict(r) for r in conn.execute(query).mappings()]


_CAMPAIGN = select(campaigns, brands.c.tenant).select_from(
    campaigns.outerjoin(brands, brands.c.brand_id == campaigns.c.brand_id)
)


def list_campaigns(
    conn: Connection,
    tenant: str | None,
    *,
    status: str | None = None,
    brand_id: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    query = _CAMPAIGN.where(_owned(tenant))
    if status is not None:
        query = query.where(campaigns.c.status == status)
    if brand_id is not None:
        query = query.where(campaigns.c.brand_id == brand_id)
    rows = conn.execute(_page(query, campaigns.c.id, limit, before_id)).mappings()
    return [dict(r) for r in rows]


def find_campaign(conn: Connection, tenant: str | None, campaign_id: str) -> dict[str, Any] | None:
    query = _CAMPAIGN.where(campaigns.c.campaign_id == campaign_id, _owned(tenant))
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def carriers_of_campaigns(
    conn: Connection, campaign_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Each carrier's status of each campaign, in one query: campaign id -> its carriers by
    MNO id; a campaign no carrier has reviewed yet is absent (the caller checked the tenant
    of every campaign it names)."""
    if not campaign_ids:
        return {}
    query = (
        select(campaign_carriers)
        .where(campaign_carriers.c.campaign_id.in_(campaign_ids))
        .order_by(campaign_carriers.c.campaign_id, campaign_carriers.c.mno_id)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(query).mappings():
        found.setdefault(row["campaign_id"], []).append(dict(row))
    return found
