"""What a Meta template event does: template status and quality, their history, campaigns
paused on a PAUSED or DISABLED template, e-mail notifications of the transitions people are
told about.

Everything runs in the caller's transaction (the worker's, which also marks the event done)
and never commits. The event is the unit of idempotency: its id in the history makes a
redelivered or replayed event a no-op, so no second notification or pause record appears.

Alerts about a template (RED quality, DISABLED, REJECTED) are not raised here: the alert
rules (hookyard.alerts.rules) read the template row this module keeps, open an alert while
the template is so and resolve it when it is no longer.

A claimed batch is applied together (`apply_batch`, through domain/batch.py): its history,
accounts and templates are read with one statement each, every event is applied in order to
the templates' rows in memory (a later event of a template sees the earlier ones' effects),
and the writes go out with one statement per table and shape. Pausing campaigns and noting
a reinstated template read the campaigns with a statement of their own (rare).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, bindparam, select

from hookyard.domain.batch import Batch, Row
from hookyard.domain.common import SyncSource, is_older
from hookyard.domain.whatsapp.tables import (
    accounts,
    campaign_log,
    campaigns,
    template_history,
    templates,
)
from hookyard.live.change import Change, ChangeKind
from hookyard.logs import log
from hookyard.notify.kinds import EntityType, Kind
from hookyard.notify.record import notification
from hookyard.notify.tables import notifications
from hookyard.providers.base import Outcome, StoredEvent, storable_text

STATUS_FIELD = "message_template_status_update"
QUALITY_FIELD = "message_template_quality_update"


class TemplateStatus(StrEnum):
    APPROVED = "APPROVED"
    PENDING = "PENDING"
    REJECTED = "REJECTED"
    DISABLED = "DISABLED"
    PAUSED = "PAUSED"
    FLAGGED = "FLAGGED"
    IN_APPEAL = "IN_APPEAL"
    PENDING_DELETION = "PENDING_DELETION"
    DELETED = "DELETED"
    ARCHIVED = "ARCHIVED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"


# Meta event names that are not statuses themselves: REINSTATED means the template is usable
# again, which Meta's API then reports as APPROVED (so a later poll is not a transition).
REINSTATED = "REINSTATED"
STATUS_OF_EVENT: Mapping[str, str] = {REINSTATED: TemplateStatus.APPROVED}

PAUSING = frozenset({TemplateStatus.PAUSED, TemplateStatus.DISABLED})


class Quality(StrEnum):
    GREEN = "GREEN"
    YELLOW = "YELLOW"
    RED = "RED"
    UNKNOWN = "UNKNOWN"


class HistoryKind(StrEnum):
    STATUS = "status"
    QUALITY = "quality"


class HistoryOutcome(StrEnum):
    APPLIED = "applied"
    SUPERSEDED = "superseded"


class CampaignStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class PauseReason(StrEnum):
    TEMPLATE_PAUSED = "TEMPLATE_PAUSED"
    TEMPLATE_DISABLED = "TEMPLATE_DISABLED"
    MANUAL = "MANUAL"  # a person paused it (`paused_by`)


# A campaign paused for one of these is its template's: an admin resumes it (campaigns.py).
TEMPLATE_REASONS = frozenset({PauseReason.TEMPLATE_PAUSED, PauseReason.TEMPLATE_DISABLED})


class CampaignAction(StrEnum):
    CHANGED = "changed"  # renamed or moved to another template (the detail says which)
    PAUSED = "paused"
    TEMPLATE_REINSTATED = "template_reinstated"  # noted; resuming stays a person's decision
    RESUMED = "resumed"


# Status transitions people are e-mailed about (hookyard.notify); RED quality as well.
NOTIFY_ON_STATUS: Mapping[str, Kind] = {
    TemplateStatus.DISABLED: Kind.TEMPLATE_DISABLED,
    TemplateStatus.PAUSED: Kind.TEMPLATE_PAUSED,
}


@dataclass(frozen=True, slots=True)
class TemplateChange:
    """The part of a status or quality change this module uses, checked and cut to fit."""

    kind: HistoryKind
    waba_id: str
    meta_template_id: str
    value: str  # the status event (APPROVED, REINSTATED…) or the new quality score
    name: str | None = None
    language: str | None = None
    previous: str | None = None  # quality only: Meta's previous score
    reason: str | None = None
    disable_info: Any = None
    other_info: Any = None

    @classmethod
    def from_event(cls, event: StoredEvent) -> TemplateChange | None:
        payload = event.payload if isinstance(event.payload, dict) else {}
        value = payload.get("value")
        if not isinstance(value, dict):
            return None
        template_id = _text(value.get("message_template_id"), 64, cut=False)
        waba_id = _text(payload.get("waba_id"), 64, cut=False)
        if event.event_type == STATUS_FIELD:
            kind, new, previous = HistoryKind.STATUS, _text(value.get("event"), 30), None
        else:
            kind = HistoryKind.QUALITY
            new = _text(value.get("new_quality_score"), 20)
            previous = _text(value.get("previous_quality_score"), 20)
        if template_id is None or waba_id is None or new is None:
            return None
        return cls(
            kind=kind,
            waba_id=waba_id,
            meta_template_id=template_id,
            value=new,
            name=_text(value.get("message_template_name"), 512),
            language=_text(value.get("message_template_language"), 20),
            previous=previous,
            reason=_text(value.get("reason"), 2000),
            disable_info=value.get("disable_info"),
            other_info=value.get("other_info"),
        )


def _text(value: Any, limit: int, *, cut: bool = True) -> str | None:
    """A string or number as storable text; an id (`cut=False`) too long to store is None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    if not text or (len(text) > limit and not cut):
        return None
    return storable_text(text, limit)


def apply(event: StoredEvent, tx: Connection, default_tenant: str | None = None) -> Outcome:
    """Apply one Meta event inside `tx` (see `apply_batch`)."""
    return apply_batch([event], tx, default_tenant)[event.id]


def apply_batch(
    events: Sequence[StoredEvent], tx: Connection, default_tenant: str | None = None
) -> dict[int, Outcome]:
    """Apply Meta events in order inside `tx`, each template's row read (locked) and written
    once for the whole batch; `default_tenant` owns a WABA seen for the first time when the
    event itself carries no tenant. The outcome of each event by id."""
    outcomes: dict[int, Outcome] = {}
    changes: list[tuple[StoredEvent, TemplateChange]] = []
    for event in events:
        if event.event_type not in (STATUS_FIELD, QUALITY_FIELD):
            outcomes[event.id] = Outcome.IGNORED
            continue
        change = TemplateChange.from_event(event)
        if change is None:
            log.warning("whatsapp_event_unusable", event_id=event.id, event_type=event.event_type)
            outcomes[event.id] = Outcome.IGNORED
            continue
        changes.append((event, change))
    if not changes:
        return outcomes
    now = datetime.now(UTC)
    batch = Batch(tx)
    # An event with a history row was handled before (redelivered or replayed): its effects
    # are committed. Events handled here are added as they are, so a repeat sees them too.
    handled: dict[int, str] = {
        row["event_id"]: row["outcome"]
        for row in batch.select(template_history, "event_id", (e.id for e, _ in changes))
    }
    fresh = [(event, change) for event, change in changes if event.id not in handled]
    by_waba = _accounts(batch, fresh, default_tenant, now)
    # A template seen for the first time belongs to the account of the first event allowed
    # to change it. Locked (FOR UPDATE on PostgreSQL): workers handling events of one
    # template serialise, so the ordering check and the update see the same row.
    new: dict[str, Row] = {}
    for event, change in fresh:
        account = by_waba[change.waba_id]
        if not _foreign(account, event.tenant or default_tenant):
            new.setdefault(change.meta_template_id, _new_template(account, change, now))
    by_meta_id = batch.ensure(templates, "meta_template_id", new, lock=True)
    campaigns_of = _campaigns(batch, fresh, by_meta_id)
    for event, change in changes:
        done = handled.get(event.id)
        if done is not None:
            outcomes[event.id] = (
                Outcome.SUPERSEDED if done == HistoryOutcome.SUPERSEDED else Outcome.DONE
            )
            continue
        account = by_waba[change.waba_id]
        if _foreign(account, event.tenant or default_tenant):
            # A source of one tenant must never change another tenant's templates or campaigns.
            log.warning(
                "whatsapp_tenant_mismatch",
                event_id=event.id,
                source=event.source,
                waba=change.waba_id,
            )
            outcomes[event.id] = Outcome.IGNORED
            continue
        batch.attribute(event.id, account["tenant"], event.tenant)
        template = by_meta_id[change.meta_template_id]
        if template["account_id"] != account["id"]:
            # The template belongs to another WABA (perhaps another tenant's): not this one's.
            log.warning(
                "whatsapp_template_account_mismatch",
                event_id=event.id,
                waba=change.waba_id,
                template=change.meta_template_id,
            )
            outcomes[event.id] = Outcome.IGNORED
            continue
        if change.kind is HistoryKind.STATUS:
            outcome = _apply_status(batch, event, change, template, campaigns_of, now)
        else:
            outcome = _apply_quality(batch, event, change, template, now)
        outcomes[event.id] = outcome
        handled[event.id] = (
            HistoryOutcome.SUPERSEDED if outcome is Outcome.SUPERSEDED else HistoryOutcome.APPLIED
        )
    batch.flush()
    return outcomes


def _campaigns(
    batch: Batch,
    changes: Sequence[tuple[StoredEvent, TemplateChange]],
    by_meta_id: Mapping[str, Row],
) -> dict[int, list[Row]]:
    """The campaigns of every template a status event may pause or reinstate, by template id,
    in id order: read (and locked, FOR UPDATE on PostgreSQL, in id order) once for the batch,
    then kept current in memory as events pause them."""
    touched = {
        by_meta_id[change.meta_template_id]["id"]
        for _, change in changes
        if change.kind is HistoryKind.STATUS
        and change.meta_template_id in by_meta_id
        and (
            change.value == REINSTATED or STATUS_OF_EVENT.get(change.value, change.value) in PAUSING
        )
    }
    found: dict[int, list[Row]] = {template_id: [] for template_id in touched}
    if touched:
        rows = batch.execute(_CAMPAIGNS_OF, {"template_ids": sorted(touched)}).mappings()
        for row in rows:
            found[row["template_id"]].append(dict(row))
    return found


def _foreign(account: Row, tenant: str | None) -> bool:
    """The account belongs to another tenant than the event's source (or its default)."""
    return tenant is not None and account["tenant"] is not None and account["tenant"] != tenant


def _accounts(
    batch: Batch,
    changes: Sequence[tuple[StoredEvent, TemplateChange]],
    default_tenant: str | None,
    now: datetime,
) -> dict[str, Row]:
    """The account of every WABA the events name, by WABA id; one seen for the first time
    belongs to the tenant of the first event naming it."""
    tenants: dict[str, str | None] = {}
    for event, change in changes:
        tenants.setdefault(change.waba_id, event.tenant or default_tenant)
    found = batch.rows(accounts, "waba_id", tenants)
    missing = {
        waba: {"waba_id": waba, "tenant": tenant, "created_at": now}
        for waba, tenant in tenants.items()
        if waba not in found
    }
    if missing:
        found |= batch.ensure(accounts, "waba_id", missing)
        for waba, tenant in sorted(tenants.items()):
            if waba in missing:
                log.info("whatsapp_account_added", waba=waba, tenant=tenant)
    return found


def _new_template(account: Row, change: TemplateChange, now: datetime) -> Row:
    return {
        "account_id": account["id"],
        "tenant": account["tenant"],
        "meta_template_id": change.meta_template_id,
        "name": change.name or change.meta_template_id,
        "language": change.language,
        "created_at": now,
        "updated_at": now,
    }


def _apply_status(
    batch: Batch,
    event: StoredEvent,
    change: TemplateChange,
    template: Row,
    campaigns_of: Mapping[int, list[Row]],
    now: datetime,
) -> Outcome:
    """One status event on its template's row (`template`, kept current in memory for the
    batch's later events of the same template)."""
    old, new = template["status"], STATUS_OF_EVENT.get(change.value, change.value)
    if is_older(event.provider_ts, template["status_event_at"]):
        _history(batch, template, event, change, old, new, HistoryOutcome.SUPERSEDED, now)
        return Outcome.SUPERSEDED
    name = template["name"]  # as the event found it: the campaign log names it so
    _change(
        batch,
        template,
        status=new,
        reason=change.reason,
        disable_info=change.disable_info,
        other_info=change.other_info,
        status_event_at=event.provider_ts or template["status_event_at"],
        **_synced(event, change, template, now),
    )
    _history(batch, template, event, change, old, new, HistoryOutcome.APPLIED, now)
    paused = 0
    if new != old and new in PAUSING:
        paused = _pause_campaigns(
            batch, campaigns_of[template["id"]], template, name, event, new, change.reason, now
        )
    _live_template(batch, template, event, previous_status=old, campaigns_paused=paused)
    if change.value == REINSTATED:
        _note_reinstated(batch, campaigns_of[template["id"]], name, event, now)
    if new != old and (news := NOTIFY_ON_STATUS.get(new)) is not None:
        _notify(batch, template, event, change, news,
                {"status": new, "previous_status": old, "reason": change.reason,
                 "campaigns_paused": paused})  # fmt: skip
    log.debug(
        "whatsapp_template_status",
        event_id=event.id,
        template=change.meta_template_id,
        old=old,
        new=new,
    )
    return Outcome.DONE


def _apply_quality(
    batch: Batch,
    event: StoredEvent,
    change: TemplateChange,
    template: Row,
    now: datetime,
) -> Outcome:
    """One quality event on its template's row (as `_apply_status`)."""
    old = template["quality"] if template["quality"] is not None else change.previous
    new = change.value
    if is_older(event.provider_ts, template["quality_event_at"]):
        _history(batch, template, event, change, old, new, HistoryOutcome.SUPERSEDED, now)
        return Outcome.SUPERSEDED
    _change(
        batch,
        template,
        quality=new,
        quality_event_at=event.provider_ts or template["quality_event_at"],
        **_synced(event, change, template, now),
    )
    _history(batch, template, event, change, old, new, HistoryOutcome.APPLIED, now)
    _live_template(batch, template, event, previous_quality=old)
    if new == Quality.RED and old != Quality.RED:
        _notify(batch, template, event, change, Kind.TEMPLATE_RED_QUALITY,
                {"quality": new, "previous_quality": old})  # fmt: skip
    log.debug(
        "whatsapp_template_quality",
        event_id=event.id,
        template=change.meta_template_id,
        old=old,
        new=new,
    )
    return Outcome.DONE


def _change(batch: Batch, template: Row, **values: Any) -> None:
    """Update the template's row in memory now (later events read it) and in the database at
    the batch's flush."""
    template.update(values)
    batch.update(templates, template["id"], values)


def _synced(
    event: StoredEvent, change: TemplateChange, template: Row, now: datetime
) -> dict[str, Any]:
    source = SyncSource.of_origin(event.origin)
    return {
        "name": change.name or template["name"],
        "language": change.language or template["language"],
        "last_synced_at": now,
        "sync_source": source.value,
        "updated_at": now,
    }


def _history(
    batch: Batch,
    template: Row,
    event: StoredEvent,
    change: TemplateChange,
    old: str | None,
    new: str,
    outcome: HistoryOutcome,
    now: datetime,
) -> None:
    batch.insert(
        template_history,
        {
            "template_id": template["id"],
            "event_id": event.id,
            "kind": change.kind.value,
            "event": change.value,
            "from_value": old,
            "to_value": new,
            "reason": change.reason,
            "outcome": outcome.value,
            "provider_ts": event.provider_ts,
            "recorded_at": now,
        },
    )


# Campaigns are locked (FOR UPDATE on PostgreSQL) before they are paused, in id order like
# every lock of a batch.
_CAMPAIGNS_OF = (
    select(campaigns)
    .where(campaigns.c.template_id.in_(bindparam("template_ids", expanding=True)))
    .order_by(campaigns.c.id)
    .with_for_update()
)


def _pause_campaigns(
    batch: Batch,
    campaigns_of_template: list[Row],
    template: Row,
    name: str,
    event: StoredEvent,
    status: str,
    reason: str | None,
    now: datetime,
) -> int:
    """Pause the template's active campaigns; how many were paused. `name` is the template's
    name before this event."""
    active = [c for c in campaigns_of_template if c["status"] == CampaignStatus.ACTIVE]
    if not active:
        return 0
    why = (
        PauseReason.TEMPLATE_DISABLED
        if status == TemplateStatus.DISABLED
        else PauseReason.TEMPLATE_PAUSED
    )
    paused = {
        "status": CampaignStatus.PAUSED.value,
        "paused_reason": why.value,
        "paused_at": now,
        "paused_by_event": event.id,
        "paused_by": None,
        "updated_at": now,
    }
    detail = f"template {name} is {status}" + (f" ({reason})" if reason else "")
    for campaign in active:
        campaign.update(paused)  # a later event of the batch sees it paused
        batch.update(campaigns, campaign["id"], paused)
        batch.insert(
            campaign_log,
            {
                "campaign_id": campaign["id"],
                "action": CampaignAction.PAUSED.value,
                "event_id": event.id,
                "detail": detail,
                "at": now,
            },
        )
    batch.publish(
        *(
            Change(
                ChangeKind.WHATSAPP_CAMPAIGN,
                campaign["id"],
                template["tenant"],
                CampaignStatus.PAUSED.value,
                {"template_id": template["id"], "paused_reason": why.value, "event_id": event.id},
            )
            for campaign in active
        ),
    )
    log.info("whatsapp_campaigns_paused", event_id=event.id, campaigns=len(active))
    return len(active)


def _note_reinstated(
    batch: Batch, campaigns_of_template: list[Row], name: str, event: StoredEvent, now: datetime
) -> None:
    """Tell the template's paused campaigns it is usable again (they stay paused)."""
    for campaign in campaigns_of_template:
        if campaign["status"] != CampaignStatus.PAUSED:
            continue
        batch.insert(
            campaign_log,
            {
                "campaign_id": campaign["id"],
                "action": CampaignAction.TEMPLATE_REINSTATED.value,
                "event_id": event.id,
                "detail": f"template {name} reinstated; still paused",
                "at": now,
            },
        )


def _live_template(batch: Batch, template: Row, event: StoredEvent, **data: Any) -> None:
    """Publish the template as this event left it (hookyard.live; delivered iff it commits)."""
    fields = {k: template[k] for k in ("meta_template_id", "name", "language", "quality")}
    batch.publish(
        Change(
            ChangeKind.WHATSAPP_TEMPLATE,
            template["id"],
            template["tenant"],
            template["status"],
            fields | data | {"event_id": event.id},
        )
    )


def _notify(
    batch: Batch,
    template: Row,
    event: StoredEvent,
    change: TemplateChange,
    kind: Kind,
    data: Mapping[str, Any],
) -> None:
    """Record an e-mail notification in this event's transaction (once per event)."""
    news = notification(
        kind,
        tenant=template["tenant"],
        entity_type=EntityType.WHATSAPP_TEMPLATE,
        entity_id=template["id"],
        change=f"event:{event.id}",
        event_id=event.id,
        data={
            "meta_template_id": template["meta_template_id"],
            "template_name": change.name or template["name"],
            "language": change.language or template["language"],
            **data,
        },
    )
    if news is not None:
        batch.insert(notifications, news, unless=["dedup_key"])
