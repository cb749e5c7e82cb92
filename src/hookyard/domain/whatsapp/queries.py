"""Read-only queries of the WhatsApp tables for the management API.

`tenant` is the tenant whose rows a query may return; None means every tenant (a superadmin
who picked none). Templates and campaigns carry their tenant; a template's history
reaches it through the template. Lists are newest first; `before_id` continues after a page.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Column, ColumnElement, Connection, Select, func, or_, select, true

from hookyard.domain.whatsapp.service import (
    TEMPLATE_REASONS,
    CampaignStatus,
    Quality,
    TemplateStatus,
)
from hookyard.domain.whatsapp.tables import (
    accounts,
    campaign_log,
    campaigns,
    template_history,
    templates,
)

# A template needs a person's attention in these states (besides RED quality): it cannot be
# sent (paused, disabled, rejected) or is about to be (flagged).
CRITICAL_STATUSES = frozenset(
    {
        TemplateStatus.PAUSED,
        TemplateStatus.DISABLED,
        TemplateStatus.REJECTED,
        TemplateStatus.FLAGGED,
    }
)


# What a person must do about a template needing attention, by its status (RED quality:
# `RED_QUALITY_ACTION`, when the status asks for nothing).
ACTION_REQUIRED: dict[str, str] = {
    TemplateStatus.DISABLED: "Template disabled by Meta: edit and resubmit it (or make a new"
    " one); its campaigns stay paused until it is approved and an admin resumes them.",
    TemplateStatus.PAUSED: "Template paused by Meta for low quality: improve its content or"
    " audience; Meta reinstates it after the pause, then an admin resumes its campaigns.",
    TemplateStatus.REJECTED: "Template rejected by Meta: read Meta's reason, fix the content"
    " and submit it again.",
    TemplateStatus.FLAGGED: "Template flagged for low quality: improve it now, or Meta will"
    " pause and then disable it.",
}
RED_QUALITY_ACTION = (
    "Quality is RED: change the template's content or who receives it before Meta pauses it."
)


def action_required(status: str | None, quality: str | None) -> str | None:
    """What a person must do about a template in this state (None: nothing)."""
    action = ACTION_REQUIRED.get(status or "")
    if action is None and quality == Quality.RED:
        action = RED_QUALITY_ACTION
    return action


def _owned(column: Column[Any], tenant: str | None) -> ColumnElement[bool]:
    return true() if tenant is None else column == tenant


def _page(query: Select[Any], id_column: Any, limit: int, before_id: int | None) -> Select[Any]:
    if before_id is not None:
        query = query.where(id_column < before_id)
    return query.order_by(id_column.desc()).limit(limit)


def _all(conn: Connection, query: Select[Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(query).mappings()]


# -- templates ------------------------------------------------------------------------------

_TEMPLATE = select(templates, accounts.c.waba_id).select_from(
    templates.join(accounts, accounts.c.id == templates.c.account_id)
)


def is_critical() -> ColumnElement[bool]:
    return or_(templates.c.quality == Quality.RED, templates.c.status.in_(CRITICAL_STATUSES))


def list_templates(
    conn: Connection,
    tenant: str | None,
    *,
    status: str | None = None,
    quality: str | None = None,
    critical: bool = False,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    query = _TEMPLATE.where(_owned(templates.c.tenant, tenant))
    if status is not None:
        query = query.where(templates.c.status == status)
    if quality is not None:
        query = query.where(templates.c.quality == quality)
    if critical:
        query = query.where(is_critical())
    return _all(conn, _page(query, templates.c.id, limit, before_id))


def find_template(conn: Connection, tenant: str | None, template_id: int) -> dict[str, Any] | None:
    query = _TEMPLATE.where(templates.c.id == template_id, _owned(templates.c.tenant, tenant))
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def template_names(conn: Connection, template_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Meta's id and the name of each of these templates (the caller checked the tenant)."""
    ids = sorted(set(template_ids))
    if not ids:
        return {}
    query = select(templates.c.id, templates.c.meta_template_id, templates.c.name).where(
        templates.c.id.in_(ids)
    )
    return {row.id: (row.meta_template_id, row.name) for row in conn.execute(query)}


def quality_summary(
    conn: Connection, tenant: str | None
) -> tuple[dict[str | None, int], dict[str | None, int]]:
    """How many of the tenant's templates have each quality, and each status (None: not
    known yet)."""
    owned = _owned(templates.c.tenant, tenant)
    counts = []
    for column in (templates.c.quality, templates.c.status):
        query = select(column, func.count()).where(owned).group_by(column)
        counts.append({value: int(n) for value, n in conn.execute(query)})
    return counts[0], counts[1]


def campaigns_paused_by_reason(conn: Connection, tenant: str | None) -> dict[str | None, int]:
    """How many of the tenant's campaigns are paused, by why (PauseReason)."""
    query = (
        select(campaigns.c.paused_reason, func.count())
        .where(_owned(campaigns.c.tenant, tenant), campaigns.c.status == CampaignStatus.PAUSED)
        .group_by(campaigns.c.paused_reason)
    )
    return {str(reason): int(n) for reason, n in conn.execute(query) if reason is not None}


def campaigns_affected(conn: Connection, template_ids: Iterable[int]) -> dict[int, list[int]]:
    """The campaigns of each template that its state stops or would stop: active ones and
    those it paused (not those a person paused); ids in order (the caller checked the
    tenant)."""
    ids = sorted(set(template_ids))
    found: dict[int, list[int]] = {i: [] for i in ids}
    if not ids:
        return found
    query = (
        select(campaigns.c.template_id, campaigns.c.id)
        .where(
            campaigns.c.template_id.in_(ids),
            or_(
                campaigns.c.status == CampaignStatus.ACTIVE,
                campaigns.c.paused_reason.in_(sorted(TEMPLATE_REASONS)),
            ),
        )
        .order_by(campaigns.c.id)
    )
    for template_id, campaign_id in conn.execute(query):
        found[template_id].append(int(campaign_id))
    return found


def template_history_of(
    conn: Connection,
    template_id: int,
    *,
    kind: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """The template's status and quality changes (the caller checked the template's tenant)."""
    query = select(template_history).where(template_history.c.template_id == template_id)
    if kind is not None:
        query = query.where(template_history.c.kind == kind)
    return _all(conn, _page(query, template_history.c.id, limit, before_id))


# -- campaigns ------------------------------------------------------------------------------

_CAMPAIGN = select(
    campaigns,
    templates.c.name.label("template_name"),
    templates.c.meta_template_id,
    templates.c.status.label("template_status"),
).select_from(campaigns.join(templates, templates.c.id == campaigns.c.template_id))


def list_campaigns(
    conn: Connection,
    tenant: str | None,
    *,
    status: str | None = None,
    template_id: int | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    query = _CAMPAIGN.where(_owned(campaigns.c.tenant, tenant))
    if status is not None:
        query = query.where(campaigns.c.status == status)
    if template_id is not None:
        query = query.where(campaigns.c.template_id == template_id)
    return _all(conn, _page(query, campaigns.c.id, limit, before_id))


def find_campaign(conn: Connection, tenant: str | None, campaign_id: int) -> dict[str, Any] | None:
    query = _CAMPAIGN.where(campaigns.c.id == campaign_id, _owned(campaigns.c.tenant, tenant))
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def campaign_log_of(conn: Connection, campaign_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """What happened to the campaign, newest first (the caller checked the tenant)."""
    query = select(campaign_log).where(campaign_log.c.campaign_id == campaign_id)
    return _all(conn, query.order_by(campaign_log.c.id.desc()).limit(limit))
