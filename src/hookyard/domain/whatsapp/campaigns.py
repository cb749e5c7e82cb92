"""What people do to WhatsApp campaigns: create one on a template, rename it, move it to
another template, pause and resume it, delete it, and resume at once the campaigns a
template's PAUSED or DISABLED status paused, once Meta reinstated it.

A campaign paused by its template (`paused_reason` TEMPLATE_PAUSED or TEMPLATE_DISABLED, see
service.py) is resumed only by an admin; one a person paused (MANUAL) by any member. No
campaign runs on a template Meta paused or disabled: one created on (or moved to) such a
template starts paused for it, and resuming one there is refused.

Everything runs in the caller's transaction and never commits. The template is locked (FOR
UPDATE on PostgreSQL, as the Meta event handler locks it; SQLite has one writer) before its
status is read, so a campaign is never created active on a template an event is disabling
at the same moment. Every change publishes a live change (hookyard.live) with the campaign's
status, `deleted` for a deleted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from hookyard.domain.whatsapp.service import (
    TEMPLATE_REASONS,
    CampaignAction,
    CampaignStatus,
    PauseReason,
    TemplateStatus,
)
from hookyard.domain.whatsapp.tables import campaign_log, campaigns, templates
from hookyard.live.change import Change, ChangeKind
from hookyard.live.publish import publish
from hookyard.logs import log

DELETED = "deleted"  # the live change's status of a deleted campaign


class UnknownTemplate(LookupError):
    """No such template in the tenant (another tenant's is unknown too)."""


class CampaignRefused(Exception):
    """A change the campaign's or its template's state does not allow now."""


class AdminOnly(Exception):
    """Resuming a campaign its template's status paused is an admin's decision."""


def _template(tx: Connection, tenant: str | None, template_id: int) -> Mapping[str, Any]:
    """The template, locked; UnknownTemplate when it is not the tenant's (None: any)."""
    query = (
        select(templates.c.id, templates.c.tenant, templates.c.name, templates.c.status)
        .where(templates.c.id == template_id)
        .with_for_update()
    )
    if tenant is not None:
        query = query.where(templates.c.tenant == tenant)
    row = tx.execute(query).mappings().first()
    if row is None:
        raise UnknownTemplate(f"no template {template_id}")
    return dict(row)


def paused_for(template: Mapping[str, Any]) -> PauseReason | None:
    """Why a campaign on this template cannot run (None: it can)."""
    if template["status"] == TemplateStatus.DISABLED:
        return PauseReason.TEMPLATE_DISABLED
    if template["status"] == TemplateStatus.PAUSED:
        return PauseReason.TEMPLATE_PAUSED
    return None


def _log(
    tx: Connection,
    campaign_id: int,
    action: CampaignAction,
    by: str | None,
    detail: str | None,
    now: datetime,
) -> None:
    tx.execute(
        insert(campaign_log).values(
            campaign_id=campaign_id, action=action.value, actor=by, detail=detail, at=now
        )
    )


def _publish(
    tx: Connection, campaign_id: int, tenant: str | None, status: str, **data: Any
) -> None:
    publish(tx, Change(ChangeKind.WHATSAPP_CAMPAIGN, campaign_id, tenant, status, data))


def _paused(reason: PauseReason, by: str | None, now: datetime) -> dict[str, Any]:
    return {
        "status": CampaignStatus.PAUSED.value,
        "paused_reason": reason.value,
        "paused_at": now,
        "paused_by_event": None,
        "paused_by": by if reason is PauseReason.MANUAL else None,
        "updated_at": now,
    }


def _active(now: datetime) -> dict[str, Any]:
    return {
        "status": CampaignStatus.ACTIVE.value,
        "paused_reason": None,
        "paused_at": None,
        "paused_by_event": None,
        "paused_by": None,
        "updated_at": now,
    }


def add_campaign(
    tx: Connection,
    template_id: int,
    name: str,
    *,
    tenant: str | None = None,
    paused: bool = False,
    by: str | None = None,
) -> int:
    """A campaign on a template (hookyard's id) of `tenant` (None: any), in the template's
    tenant: active, or paused by `by` when `paused`; paused for its template when Meta
    paused or disabled that. Its id; UnknownTemplate when the template is not the tenant's."""
    template = _template(tx, tenant, template_id)
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "tenant": template["tenant"],
        "name": name,
        "template_id": template_id,
        "created_at": now,
    } | _active(now)
    blocked = paused_for(template)
    if blocked is not None:
        values |= _paused(blocked, None, now)
    elif paused:
        values |= _paused(PauseReason.MANUAL, by, now)
    campaign_id = int(
        tx.execute(insert(campaigns).values(values).returning(campaigns.c.id)).scalar_one()
    )
    if blocked is not None:
        _log(tx, campaign_id, CampaignAction.PAUSED, None,
             f"template {template['name']} is {template['status']}", now)  # fmt: skip
    _publish(tx, campaign_id, template["tenant"], values["status"], template_id=template_id,
             paused_reason=values["paused_reason"])  # fmt: skip
    log.info("whatsapp_campaign_created", campaign=campaign_id, template=template_id)
    return campaign_id


def _campaign(tx: Connection, tenant: str | None, campaign_id: int) -> dict[str, Any] | None:
    query = select(campaigns).where(campaigns.c.id == campaign_id).with_for_update()
    if tenant is not None:
        query = query.where(campaigns.c.tenant == tenant)
    row = tx.execute(query).mappings().first()
    return None if row is None else dict(row)


def change_campaign(
    tx: Connection,
    campaign_id: int,
    by: str,
    *,
    tenant: str | None = None,
    name: str | None = None,
    template_id: int | None = None,
    status: CampaignStatus | None = None,
    may_resume_for_template: bool = False,
) -> bool:
    """Change what is given of a campaign of `tenant` (None: any); False when there is no
    such campaign. A campaign left active on a template Meta paused or disabled is paused for
    it. Raises UnknownTemplate (the new template is not the campaign's tenant's),
    AdminOnly (resuming a campaign its template paused, without `may_resume_for_template`)
    and CampaignRefused (resuming on a template that cannot be sent)."""
    campaign = _campaign(tx, tenant, campaign_id)
    if campaign is None:
        return False
    now = datetime.now(UTC)
    values: dict[str, Any] = {}
    notes: list[tuple[CampaignAction, str | None, str | None]] = []
    if name is not None and name != campaign["name"]:
        values["name"] = name
        notes.append((CampaignAction.CHANGED, by, f"name: {campaign['name']} → {name}"))
    template_of = campaign["template_id"] if template_id is None else template_id
    template = _template(tx, tenant, template_of)
    if template["tenant"] != campaign["tenant"]:  # a superadmin's move to another tenant's
        raise UnknownTemplate(f"no template {template_of} in the campaign's tenant")
    if template_of != campaign["template_id"]:
        values["template_id"] = template_of
        notes.append((CampaignAction.CHANGED, by, f"template: {template_of} ({template['name']})"))
    blocked = paused_for(template)
    current = campaign["status"]
    if status is CampaignStatus.PAUSED and current == CampaignStatus.ACTIVE:
        values |= _paused(PauseReason.MANUAL, by, now)
        notes.append((CampaignAction.PAUSED, by, None))
        current = CampaignStatus.PAUSED
    elif status is CampaignStatus.ACTIVE and current == CampaignStatus.PAUSED:
        if campaign["paused_reason"] in TEMPLATE_REASONS and not may_resume_for_template:
            raise AdminOnly(
                f"campaign {campaign_id} was paused by its template ({campaign['paused_reason']}):"
                " an admin resumes it"
            )
        if blocked is not None:
            raise CampaignRefused(
                f"template {template['name']} is {template['status']}: no campaign can run on it"
            )
        values |= _active(now)
        notes.append((CampaignAction.RESUMED, by, None))
        current = CampaignStatus.ACTIVE
    if current == CampaignStatus.ACTIVE and blocked is not None:
        values |= _paused(blocked, None, now)
        notes.append((CampaignAction.PAUSED, None,
                      f"template {template['name']} is {template['status']}"))  # fmt: skip
    if not values:
        return True
    values["updated_at"] = now
    tx.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(values))
    for action, actor, detail in notes:
        _log(tx, campaign_id, action, actor, detail, now)
    after = campaign | values
    _publish(tx, campaign_id, campaign["tenant"], after["status"], template_id=template_of,
             paused_reason=after["paused_reason"])  # fmt: skip
    log.info("whatsapp_campaign_changed", campaign=campaign_id, fields=sorted(values))
    return True


def delete_campaign(
    tx: Connection, campaign_id: int, by: str, *, tenant: str | None = None
) -> bool:
    """Delete a campaign of `tenant` (None: any) and its log; False when there is none."""
    campaign = _campaign(tx, tenant, campaign_id)
    if campaign is None:
        return False
    tx.execute(delete(campaign_log).where(campaign_log.c.campaign_id == campaign_id))
    tx.execute(delete(campaigns).where(campaigns.c.id == campaign_id))
    _publish(tx, campaign_id, campaign["tenant"], DELETED, template_id=campaign["template_id"])
    log.info("whatsapp_campaign_deleted", campaign=campaign_id, by=by)
    return True


def resume_campaign(
    tx: Connection,
    campaign_id: int,
    by: str,
    *,
    tenant: str | None = None,
    may_resume_for_template: bool = False,
) -> bool:
    """A person resumes a paused campaign (never done automatically); False if it was not
    paused (or, with `tenant`, belongs to another tenant). The same rules as a change to
    `active` (`change_campaign`, which does it): AdminOnly for a campaign its template
    paused without `may_resume_for_template`, CampaignRefused while its template is PAUSED
    or DISABLED."""
    campaign = _campaign(tx, tenant, campaign_id)
    if campaign is None or campaign["status"] != CampaignStatus.PAUSED:
        return False
    return change_campaign(
        tx,
        campaign_id,
        by,
        tenant=tenant,
        status=CampaignStatus.ACTIVE,
        may_resume_for_template=may_resume_for_template,
    )


def resume_paused_for(
    tx: Connection, template_id: int, by: str, *, tenant: str | None = None
) -> list[int]:
    """Resume the campaigns the template's PAUSED or DISABLED status paused, now that Meta
    reinstated it (its status is APPROVED again); not those a person paused. Their ids (none:
    nothing was paused for it). UnknownTemplate when the template is not the tenant's,
    CampaignRefused while it is not APPROVED."""
    template = _template(tx, tenant, template_id)
    if template["status"] != TemplateStatus.APPROVED:
        raise CampaignRefused(
            f"template {template['name']} is {template['status'] or 'not known yet'}, not"
            " APPROVED: its campaigns resume once Meta reinstates it"
        )
    paused = select(campaigns.c.id).where(
        campaigns.c.template_id == template_id,
        campaigns.c.status == CampaignStatus.PAUSED,
        campaigns.c.paused_reason.in_(sorted(TEMPLATE_REASONS)),
    )
    ids = [int(i) for i in tx.execute(paused.order_by(campaigns.c.id).with_for_update()).scalars()]
    if not ids:
        return []
    now = datetime.now(UTC)
    tx.execute(update(campaigns).where(campaigns.c.id.in_(ids)).values(_active(now)))
    detail = f"template {template['name']} reinstated: resumed with the campaigns paused for it"
    tx.execute(
        insert(campaign_log),
        [{"campaign_id": i, "action": CampaignAction.RESUMED.value, "actor": by,
          "detail": detail, "at": now} for i in ids],
    )  # fmt: skip
    publish(tx, *(
        Change(ChangeKind.WHATSAPP_CAMPAIGN, i, template["tenant"], CampaignStatus.ACTIVE.value,
               {"template_id": template_id})
        for i in ids
    ))  # fmt: skip
    log.info("whatsapp_campaigns_resumed", template=template_id, campaigns=len(ids))
    return ids
