"""Applying one TCR event to the 10DLC tables, inside the worker's transaction.

Rules that make redelivery, reordering and partial knowledge safe:
- Each row remembers the provider time of the last event applied to it; an event older than
  that changes nothing and is `superseded` (equal times apply, in arrival order).
- An event naming a brand or campaign not known yet creates it (a brand is owned by the
  source's tenant): the replaced system retried such events forever.
- Rows are created with insert-if-missing and then locked (`FOR UPDATE` on PostgreSQL), so
  concurrent workers neither collide on a new brand nor interleave updates of one row.
- A payload field that is missing or malformed is left alone, never an error; an event
  without the id it needs is `ignored` (retrying could not help).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, Table, and_, select, update

from hookyard.domain.common import SyncSource, attribute_event, insert_missing, is_older, locked
from hookyard.domain.tendlc.carriers import carrier_name
from hookyard.domain.tendlc.catalogue import CATALOGUE, Action, EventKind
from hookyard.domain.tendlc.states import (
    BRAND_STATUS_OF_IDENTITY,
    BrandStatus,
    CampaignStatus,
    CarrierStatus,
    IdentityStatus,
    VettingKind,
    VettingStatus,
)
from hookyard.domain.tendlc.tables import (
    TCR_ID_LENGTH,
    brands,
    campaign_carriers,
    campaigns,
    vettings,
)
from hookyard.live.change import Change, ChangeKind
from hookyard.live.publish import publish
from hookyard.logs import log
from hookyard.notify.kinds import EntityType, Kind
from hookyard.notify.record import record
from hookyard.providers.base import Outcome, StoredEvent, storable_text

_INT_LIMIT = 2**31 - 1

# Transitions people are e-mailed about (hookyard.notify): into these brand statuses, these
# carrier decisions, and these results of the two vetting processes (EVP and Authentication+;
# their sub-steps, 2FA, domain and OTP checks, are not news of their own).
VERIFIED_BRAND = frozenset({BrandStatus.VERIFIED, BrandStatus.VETTED_VERIFIED})
CARRIER_NEWS = {CarrierStatus.APPROVED: Kind.CAMPAIGN_APPROVED,
                CarrierStatus.REJECTED: Kind.CAMPAIGN_REJECTED}  # fmt: skip
VETTING_DONE = {
    VettingKind.EVP: frozenset(
        {VettingStatus.SCORED, VettingStatus.UNSCORED, VettingStatus.FAILED, VettingStatus.IMPORTED}
    ),
    VettingKind.AUTHPLUS: frozenset({VettingStatus.VERIFIED, VettingStatus.FAILED}),
}


@dataclass(frozen=True, slots=True)
class _Context:
    event: StoredEvent
    tx: Connection
    tenant: str | None  # the owner of brands this event creates
    now: datetime
    sync_source: SyncSource

    def sync(self, kind: EventKind | None = None) -> dict[str, Any]:
        """The sync columns of a row this event changes (kind None: noted, not applied)."""
        values: dict[str, Any] = {"last_synced_at": self.now, "sync_source": self.sync_source}
        if kind is not None:
            values["last_event_type"] = kind.event_type
            if self.event.provider_ts is not None:
                values["last_event_at"] = self.event.provider_ts
        return values

    def is_older(self, row: RowMapping) -> bool:
        return is_older(self.event.provider_ts, row["last_event_at"])


def apply(event: StoredEvent, tx: Connection, default_tenant: str | None) -> Outcome:
    kind = CATALOGUE.get(event.event_type)
    if kind is None or kind.action is Action.IGNORE:
        log.info("tcr_event_ignored", event_id=event.id, event_type=event.event_type)
        return Outcome.IGNORED
    payload = event.payload if isinstance(event.payload, Mapping) else {}
    ctx = _Context(event, tx, default_tenant, datetime.now(UTC), SyncSource.of_origin(event.origin))
    outcome = _ACTIONS[kind.action](ctx, kind, payload)
    attribute_event(tx, event, _owner(ctx, payload))
    if outcome is not Outcome.DONE:
        log.info(
            "tcr_event_" + outcome.value,
            event_id=event.id,
            event_type=event.event_type,
            entity=event.entity_key,
        )
    return outcome


def _owner(ctx: _Context, payload: Mapping[str, Any]) -> str | None:
    """The tenant of the brand the event names, directly or through its campaign."""
    brand_id = _tcr_id(payload.get("brandId"))
    if brand_id is None and (campaign_id := _tcr_id(payload.get("campaignId"))) is not None:
        brand_id = ctx.tx.execute(
            select(campaigns.c.brand_id).where(campaigns.c.campaign_id == campaign_id)
        ).scalar()
    if brand_id is None:
        return None
    owner: str | None = ctx.tx.execute(
        select(brands.c.tenant).where(brands.c.brand_id == brand_id)
    ).scalar()
    return owner


# -- brands ---------------------------------------------------------------------------------


def _apply_brand(ctx: _Context, kind: EventKind, payload: Mapping[str, Any]) -> Outcome:
    brand_id = _tcr_id(payload.get("brandId"))
    if brand_id is None:
        return Outcome.IGNORED
    row = _brand(ctx, brand_id)
    if ctx.is_older(row):
        return Outcome.SUPERSEDED
    values = _brand_fields(payload)
    if kind.status is not None and not (kind.initial and row["status"] is not None):
        values["status"] = kind.status
    _update(ctx, brands, brands.c.brand_id == brand_id, values | ctx.sync(kind))
    _live_brand(ctx, brand_id, row["status"])
    new = values.get("status")
    if new in VERIFIED_BRAND and row["status"] not in VERIFIED_BRAND:
        _notify(
            ctx,
            Kind.BRAND_VERIFIED,
            EntityType.TENDLC_BRAND,
            row["id"],
            _tenant(ctx, row),
            f"event:{ctx.event.id}",
            {
                "brand_id": brand_id,
                "brand_name": values.get("display_name") or row["display_name"] or brand_id,
                "status": new,
                "previous_status": row["status"],
                "trust_score": values.get("trust_score", row["trust_score"]),
            },
        )
    return Outcome.DONE


def _brand_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for column, keys, limit in [
        ("display_name", ("displayName", "brandName"), 255),
        ("company_name", ("companyName",), 255),
        ("entity_type", ("entityType",), 50),
        ("vertical", ("vertical",), 50),
        ("feedback", ("rejectionReason", "feedback"), 4000),
    ]:
        if (value := _text(payload, keys, limit)) is not None:
            values[column] = value
    if (score := _int(payload, ("trustScore", "score"))) is not None:
        values["trust_score"] = score
    status = _text(payload, ("status",), 20)
    if status is not None and status.upper() in BrandStatus.__members__:
        values["status"] = BrandStatus(status.upper())
    identity = _text(payload, ("brandIdentityStatus", "identityStatus"), 30)
    if identity is not None:
        identity = identity.upper()
        values["identity_status"] = identity
        if identity in IdentityStatus.__members__:
            values["status"] = BRAND_STATUS_OF_IDENTITY[IdentityStatus(identity)]
    return values


def _brand(ctx: _Context, brand_id: str) -> RowMapping:
    """The brand's row, locked; created (owned by the source's tenant) when unknown."""
    where = brands.c.brand_id == brand_id
    row = locked(ctx.tx, brands, where)
    if row is None:
        _ensure_brand(ctx, brand_id)
        row = locked(ctx.tx, brands, where)
        assert row is not None
    if ctx.tenant is not None and row["tenant"] != ctx.tenant:
        if row["tenant"] is None:
            # A brand first seen through a source without a tenant is adopted by the first
            # tenant's source that names it; an owned brand never changes hands here.
            _update(ctx, brands, where, {"tenant": ctx.tenant})
        else:
            log.warning(
                "tcr_brand_tenant_mismatch",
                event_id=ctx.event.id,
                brand_id=brand_id,
                source=ctx.event.source,
            )
    return row


def _ensure_brand(ctx: _Context, brand_id: str) -> None:
    insert_missing(
        ctx.tx,
        brands,
        {"brand_id": brand_id, "tenant": ctx.tenant, "created_at": ctx.now} | ctx.sync(),
        ["brand_id"],
    )


# -- campaigns and carriers -----------------------------------------------------------------


def _apply_campaign(ctx: _Context, kind: EventKind, payload: Mapping[str, Any]) -> Outcome:
    campaign_id = _tcr_id(payload.get("campaignId"))
    if campaign_id is None:
        return Outcome.IGNORED
    row = _campaign(ctx, campaign_id, payload)
    if ctx.is_older(row):
        return Outcome.SUPERSEDED
    values: dict[str, Any] = {}
    if (use_case := _text(payload, ("usecase", "useCase"), 50)) is not None:
        values["use_case"] = use_case
    if (reason := _text(payload, ("rejectionReason",), 4000)) is not None:
        values["rejection_reason"] = reason
    status = _text(payload, ("status",), 20)
    if status is not None and status.upper() in CampaignStatus.__members__:
        values["status"] = CampaignStatus(status.upper())
    if kind.status is not None and not (kind.initial and row["status"] is not None):
        values["status"] = kind.status
    if kind.share is not None:
        values["share_status"] = kind.share
    _update(ctx, campaigns, campaigns.c.campaign_id == campaign_id, values | ctx.sync(kind))
    _live_campaign(ctx, campaign_id, row["status"], {})
    return Outcome.DONE


def _apply_carrier(ctx: _Context, kind: EventKind, payload: Mapping[str, Any]) -> Outcome:
    campaign_id = _tcr_id(payload.get("campaignId"))
    if campaign_id is None:
        return Outcome.IGNORED
    campaign = _campaign(ctx, campaign_id, payload)
    statuses = _carrier_statuses(kind, payload)
    if not statuses:
        log.warning("tcr_event_without_carrier", event_id=ctx.event.id, campaign_id=campaign_id)
    applied = superseded = 0
    news: list[tuple[str, str, str | None]] = []  # carriers newly approving or rejecting
    carriers: dict[str, str] = {}  # the carriers' statuses this event applied
    # One lock order (by MNO id) for every event, so two workers never deadlock here.
    for mno_id, status in sorted(statuses.items()):
        where = and_(
            campaign_carriers.c.campaign_id == campaign_id, campaign_carriers.c.mno_id == mno_id
        )
        row = locked(ctx.tx, campaign_carriers, where)
        previous = None if row is None else row["status"]
        if row is None:
            insert_missing(
                ctx.tx,
                campaign_carriers,
                {"campaign_id": campaign_id, "mno_id": mno_id, "status": status}
                | {"created_at": ctx.now}
                | ctx.sync(),
                ["campaign_id", "mno_id"],
            )
            row = locked(ctx.tx, campaign_carriers, where)
            assert row is not None
        if ctx.is_older(row):
            superseded += 1
            continue
        _update(ctx, campaign_carriers, where, {"status": status} | ctx.sync(kind))
        carriers[mno_id] = status
        applied += 1
        if status != previous and status in CARRIER_NEWS:
            news.append((mno_id, status, previous))
    if superseded and not applied:
        return Outcome.SUPERSEDED
    values = ctx.sync()
    if (derived := _derived_status(ctx, campaign)) is not None:
        values["status"] = derived
    if applied and (reason := _text(payload, ("rejectionReason",), 4000)) is not None:
        values["rejection_reason"] = reason
    _update(ctx, campaigns, campaigns.c.campaign_id == campaign_id, values)
    if applied:
        _live_campaign(ctx, campaign_id, campaign["status"], carriers)
    if news:
        brand = _brand_of(ctx, campaign_id)
        for mno_id, status, previous in news:
            _notify(
                ctx,
                CARRIER_NEWS[CarrierStatus(status)],
                EntityType.TENDLC_CAMPAIGN,
                campaign["id"],
                _tenant(ctx, brand),
                f"{mno_id}:event:{ctx.event.id}",
                {
                    "campaign_id": campaign_id,
                    "brand_id": brand["brand_id"] if brand else None,
                    "brand_name": _brand_name(brand),
                    "mno_id": mno_id,
                    "carrier": carrier_name(mno_id),
                    "carrier_status": status,
                    "previous_status": previous,
                    "campaign_status": values.get("status", campaign["status"]),
                    "rejection_reason": values.get("rejection_reason"),
                },
            )
    return Outcome.DONE


def _carrier_statuses(kind: EventKind, payload: Mapping[str, Any]) -> dict[str, str]:
    """MNO id -> status: every entry of `mnoStatuses`, else the event's own `mnoId`."""
    found: dict[str, str] = {}
    statuses = payload.get("mnoStatuses")
    if isinstance(statuses, Mapping):
        for mno, status in statuses.items():
            mno_id = _tcr_id(mno)
            if mno_id is not None and isinstance(status, str) and status.strip():
                found[mno_id] = storable_text(status.strip().upper(), 30)
    if not found and kind.status is not None:
        mno_id = _tcr_id(payload.get("mnoId"))
        if mno_id is not None:
            found[mno_id] = kind.status
    return found


def _derived_status(ctx: _Context, campaign: RowMapping) -> CampaignStatus | None:
    """The campaign's summary of its carriers; expiry is the registry's word and stays."""
    if campaign["status"] == CampaignStatus.EXPIRED:
        return None
    rows = ctx.tx.execute(
        select(campaign_carriers.c.status).where(
            campaign_carriers.c.campaign_id == campaign["campaign_id"]
        )
    )
    seen = {status for (status,) in rows}
    for carrier, summary in [
        (CarrierStatus.APPROVED, CampaignStatus.ACTIVE),
        (CarrierStatus.REVIEW, CampaignStatus.REVIEW),
        (CarrierStatus.PENDING, CampaignStatus.REVIEW),
        (CarrierStatus.SUSPENDED, CampaignStatus.SUSPENDED),
        (CarrierStatus.REJECTED, CampaignStatus.REJECTED),
    ]:
        if carrier in seen:
            return summary
    return None


def _campaign(ctx: _Context, campaign_id: str, payload: Mapping[str, Any]) -> RowMapping:
    """The campaign's row, locked; created (and its brand, when named) when unknown."""
    brand_id = _tcr_id(payload.get("brandId"))
    where = campaigns.c.campaign_id == campaign_id
    row = locked(ctx.tx, campaigns, where)
    if row is not None and (brand_id is None or row["brand_id"] is not None):
        return row
    if brand_id is not None:
        _ensure_brand(ctx, brand_id)
    if row is None:
        insert_missing(
            ctx.tx,
            campaigns,
            {"campaign_id": campaign_id, "brand_id": brand_id, "created_at": ctx.now} | ctx.sync(),
            ["campaign_id"],
        )
    else:  # known without its brand (share events name only the campaign): now we know
        _update(ctx, campaigns, where, {"brand_id": brand_id})
    row = locked(ctx.tx, campaigns, where)
    assert row is not None
    return row


# -- vetting --------------------------------------------------------------------------------


def _apply_vetting(ctx: _Context, kind: EventKind, payload: Mapping[str, Any]) -> Outcome:
    brand_id = _tcr_id(payload.get("brandId"))
    if brand_id is None or kind.vetting is None:
        return Outcome.IGNORED
    _ensure_brand(ctx, brand_id)
    vetting_key = ""
    if kind.vetting is VettingKind.EVP:
        vetting_key = _tcr_id(payload.get("vettingId")) or ""
    where = and_(
        vettings.c.brand_id == brand_id,
        vettings.c.kind == kind.vetting,
        vettings.c.vetting_key == vetting_key,
    )
    row = locked(ctx.tx, vettings, where)
    if row is None:
        insert_missing(
            ctx.tx,
            vettings,
            {"brand_id": brand_id, "kind": kind.vetting, "vetting_key": vetting_key}
            | {"created_at": ctx.now}
            | ctx.sync(),
            ["brand_id", "kind", "vetting_key"],
        )
        row = locked(ctx.tx, vettings, where)
        assert row is not None
    if ctx.is_older(row):
        return Outcome.SUPERSEDED
    values: dict[str, Any] = {}
    if (evp := _tcr_id(payload.get("evpId"))) is not None:
        values["evp_id"] = evp
    if (vetting_class := _text(payload, ("vettingClass",), 50)) is not None:
        values["vetting_class"] = vetting_class
    if (score := _int(payload, ("vettingScore", "score"))) is not None:
        values["score"] = score
    status = kind.status or _text(payload, ("vettingStatus",), 30)
    if status is not None:
        values["status"] = status.upper()
    _update(ctx, vettings, where, values | ctx.sync(kind))
    _live_vetting(ctx, row["id"], brand_id, kind.vetting, values.get("status", row["status"]))
    new = values.get("status")
    if new != row["status"] and new in VETTING_DONE.get(kind.vetting, ()):
        brand = ctx.tx.execute(select(brands).where(brands.c.brand_id == brand_id)).mappings().one()
        _notify(
            ctx,
            Kind.VETTING_COMPLETE,
            EntityType.TENDLC_VETTING,
            row["id"],
            _tenant(ctx, brand),
            f"event:{ctx.event.id}",
            {
                "brand_id": brand_id,
                "brand_name": _brand_name(brand),
                "vetting_kind": kind.vetting.value,
                "status": new,
                "score": values.get("score", row["score"]),
                "vetting_class": values.get("vetting_class", row["vetting_class"]),
                "evp_id": values.get("evp_id", row["evp_id"]),
            },
        )
    return Outcome.DONE


# -- known, no state ------------------------------------------------------------------------


def _apply_record(ctx: _Context, kind: EventKind, payload: Mapping[str, Any]) -> Outcome:
    """Nothing changes but the entity is known to exist and was heard from now."""
    if (campaign_id := _tcr_id(payload.get("campaignId"))) is not None:
        _campaign(ctx, campaign_id, payload)
        _update(ctx, campaigns, campaigns.c.campaign_id == campaign_id, ctx.sync())
    elif (brand_id := _tcr_id(payload.get("brandId"))) is not None:
        _brand(ctx, brand_id)
        _update(ctx, brands, brands.c.brand_id == brand_id, ctx.sync())
    else:
        return Outcome.IGNORED
    return Outcome.DONE


_ACTIONS = {
    Action.BRAND: _apply_brand,
    Action.CAMPAIGN: _apply_campaign,
    Action.CARRIER: _apply_carrier,
    Action.VETTING: _apply_vetting,
    Action.RECORD: _apply_record,
}


# -- live updates ---------------------------------------------------------------------------
# Published in this event's transaction (hookyard.live): clients see them iff it commits.
# The tenant is read back as the REST API scopes the row: a brand's own, a campaign's and a
# vetting's through their brand (none while the brand is unknown).


def _live_brand(ctx: _Context, brand_id: str, previous: str | None) -> None:
    row = ctx.tx.execute(select(brands).where(brands.c.brand_id == brand_id)).mappings().one()
    data = {k: row[k] for k in ("display_name", "identity_status", "trust_score")}
    publish(
        ctx.tx,
        Change(
            ChangeKind.TENDLC_BRAND,
            brand_id,
            row["tenant"],
            row["status"],
            data | {"previous_status": previous, "event_id": ctx.event.id},
        ),
    )


def _live_campaign(
    ctx: _Context, campaign_id: str, previous: str | None, carriers: Mapping[str, str]
) -> None:
    row = (
        ctx.tx.execute(
            select(campaigns.c.status, campaigns.c.brand_id, brands.c.tenant)
            .select_from(campaigns.outerjoin(brands, campaigns.c.brand_id == brands.c.brand_id))
            .where(campaigns.c.campaign_id == campaign_id)
        )
        .mappings()
        .one()
    )
    data: dict[str, Any] = {
        "brand_id": row["brand_id"],
        "previous_status": previous,
        "event_id": ctx.event.id,
    }
    if carriers:
        data["carriers"] = dict(carriers)
    publish(
        ctx.tx,
        Change(ChangeKind.TENDLC_CAMPAIGN, campaign_id, row["tenant"], row["status"], data),
    )


def _live_vetting(
    ctx: _Context, vetting_id: int, brand_id: str, kind: VettingKind, status: str | None
) -> None:
    tenant = ctx.tx.execute(select(brands.c.tenant).where(brands.c.brand_id == brand_id)).scalar()
    data = {"brand_id": brand_id, "vetting_kind": kind.value, "event_id": ctx.event.id}
    publish(ctx.tx, Change(ChangeKind.TENDLC_VETTING, vetting_id, tenant, status, data))


# -- notifications --------------------------------------------------------------------------


def _notify(
    ctx: _Context,
    kind: Kind,
    entity_type: EntityType,
    entity_id: int,
    tenant: str | None,
    change: str,
    data: Mapping[str, Any],
) -> None:
    """Record an e-mail notification in this event's transaction (once per event)."""
    record(
        ctx.tx,
        kind,
        tenant=tenant,
        entity_type=entity_type,
        entity_id=entity_id,
        change=change,
        data=data,
        event_id=ctx.event.id,
    )


def _brand_of(ctx: _Context, campaign_id: str) -> RowMapping | None:
    return (
        ctx.tx.execute(
            select(brands)
            .join(campaigns, campaigns.c.brand_id == brands.c.brand_id)
            .where(campaigns.c.campaign_id == campaign_id)
        )
        .mappings()
        .first()
    )


def _tenant(ctx: _Context, brand: RowMapping | None) -> str | None:
    """Whose people hear of a change: the brand's owner; a brand owned by nobody yet is the
    receiving source's tenant's (as the event is)."""
    if brand is not None and brand["tenant"] is not None:
        owner: str = brand["tenant"]
        return owner
    return ctx.tenant


def _brand_name(brand: RowMapping | None) -> str | None:
    if brand is None:
        return None
    name: str = brand["display_name"] or brand["company_name"] or brand["brand_id"]
    return name


# -- SQL helpers ----------------------------------------------------------------------------


def _update(
    ctx: _Context, table: Table, where: ColumnElement[bool], values: Mapping[str, Any]
) -> None:
    ctx.tx.execute(update(table).where(where).values(values))


# -- payload fields -------------------------------------------------------------------------


def _tcr_id(value: object) -> str | None:
    """A TCR id (brand, campaign, MNO, vetting) as text; None when it cannot be one."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not text or len(text) > TCR_ID_LENGTH or storable_text(text, TCR_ID_LENGTH) != text:
        return None
    return text


def _text(payload: Mapping[str, Any], keys: Sequence[str], limit: int) -> str | None:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return storable_text(value.strip(), limit)
    return None


def _int(payload: Mapping[str, Any], keys: Sequence[str]) -> int | None:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and 0 < len(value) <= 11 and value.lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, int) and -_INT_LIMIT <= value <= _INT_LIMIT:
            return value
    return None
