"""What each TCR event does to the rows of its batch (`BatchState`): brands, campaigns and
their carriers, vetting results, and the live changes and e-mail notifications that follow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table

from hookyard.domain.batch import Batch, Row
from hookyard.domain.tendlc.carriers import carrier_name
from hookyard.domain.tendlc.catalogue import Action
from hookyard.domain.tendlc.payload import TcrEvent, brand_fields, int_field, tcr_id, text_field
from hookyard.domain.tendlc.rows import (
    Plan,
    Rows,
    new_brand,
    new_campaign,
    new_carrier,
    new_vetting,
)
from hookyard.domain.tendlc.states import (
    BrandStatus,
    CampaignStatus,
    CarrierStatus,
    VettingKind,
    VettingStatus,
)
from hookyard.domain.tendlc.tables import brands, campaign_carriers, campaigns, vettings
from hookyard.live.change import Change, ChangeKind
from hookyard.logs import log
from hookyard.notify.kinds import EntityType, Kind
from hookyard.notify.record import notification
from hookyard.notify.tables import notifications
from hookyard.providers.base import Outcome

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


@dataclass(slots=True)
class BatchState:
    """The 10DLC rows of one batch, and what its events do to them."""

    batch: Batch
    tenant: str | None  # the owner of brands this batch creates
    now: datetime
    brands: Rows
    campaigns: Rows
    vettings: Rows
    # The carriers of each campaign of a carrier event, as the events so far left them.
    carriers_of: dict[str, dict[str, Row]] = field(default_factory=dict)
    # Carrier rows the events created, inserted as the batch leaves them (`finish`): nothing
    # else refers to their ids, and no one else writes them while the batch holds their
    # campaign's lock, so they are written once instead of inserted, read back and updated.
    new_carriers: list[Row] = field(default_factory=list)

    @classmethod
    def read(
        cls, batch: Batch, todo: Sequence[TcrEvent], tenant: str | None, now: datetime
    ) -> BatchState:
        state = cls(
            batch,
            tenant,
            now,
            Rows(batch, brands, "brand_id"),
            Rows(batch, campaigns, "campaign_id"),
            Rows(batch, vettings, ("brand_id", "kind", "vetting_key")),
        )
        # Campaigns first: which brands the batch creates depends on whether each campaign
        # is known, and with which brand. The others are read only to find an owner.
        acted_on = {item.campaign_id for item in todo if item.names_campaign}
        named = {item.campaign_id for item in todo if item.brand_id is None} - acted_on
        state.campaigns.read(acted_on, {}, locked=acted_on)
        state.campaigns.read({key for key in named if key is not None}, {})
        plan = Plan.of(todo, state.campaigns.seen, tenant, now)
        brand_ids = {item.brand_id for item in todo if item.brand_id is not None}
        brand_ids |= {row["brand_id"] for row in state.campaigns.seen.values()}
        brand_ids.discard(None)
        state.brands.read(brand_ids, plan.brands, locked=plan.locked_brands)
        # After the brands: a new campaign names its brand (a foreign key).
        created = state.campaigns.read((), plan.campaigns, locked=plan.campaigns)
        carried = {item.campaign_id for item in todo if item.kind.action is Action.CARRIER}
        carried.discard(None)
        # Every carrier of these campaigns (the campaign's status sums them up), locked:
        # each writer of a carrier row holds its campaign's lock already. A campaign this
        # batch inserted has none (no one can add one before this transaction commits).
        for row in batch.select(campaign_carriers, "campaign_id", carried - created, lock=True):
            state.carriers_of.setdefault(row["campaign_id"], {})[row["mno_id"]] = row
        state.vettings.read(plan.vettings, plan.vettings, locked=plan.vettings)
        return state

    def finish(self) -> None:
        """Write everything the events did."""
        for row in sorted(self.new_carriers, key=lambda r: (r["campaign_id"], r["mno_id"])):
            # A plain insert: a row of a campaign this batch holds cannot exist unseen (if it
            # did, failing beats losing this batch's word on it).
            self.batch.insert(campaign_carriers, row)
        self.batch.flush()

    # -- helpers ----------------------------------------------------------------------------

    def set(self, table: Table, row: Row, values: Mapping[str, Any]) -> None:
        """Change the row in memory (later events see it) and in the batch's writes."""
        row.update(values)
        self.batch.update(table, row["id"], values)

    def owner(self, item: TcrEvent) -> str | None:
        """The tenant of the brand the event names, directly or through its campaign."""
        if item.brand_id is not None:
            brand = self.brands.get(item.brand_id)
        elif (
            item.campaign_id is not None
            and (campaign := self.campaigns.get(item.campaign_id)) is not None
        ):
            brand = self.brand_of(campaign)
        else:
            return None
        return None if brand is None else brand["tenant"]

    def brand_of(self, campaign: Row) -> Row | None:
        brand_id = campaign["brand_id"]
        return None if brand_id is None else self.brands.existing(brand_id)

    def whose(self, brand: Row | None) -> str | None:
        """Whose people hear of a change: the brand's owner; a brand owned by nobody yet is
        the receiving source's tenant's (as the event is)."""
        if brand is not None and brand["tenant"] is not None:
            owner: str = brand["tenant"]
            return owner
        return self.tenant

    def notify(
        self,
        item: TcrEvent,
        kind: Kind,
        entity_type: EntityType,
        entity_id: int,
        tenant: str | None,
        change: str,
        data: Mapping[str, Any],
    ) -> None:
        """Record an e-mail notification with the batch (once per event and change)."""
        row = notification(
            kind,
            tenant=tenant,
            entity_type=entity_type,
            entity_id=entity_id,
            change=change,
            data=data,
            event_id=item.event.id,
        )
        if row is not None:
            self.batch.insert(notifications, row, unless=["dedup_key"])

    # -- brands -----------------------------------------------------------------------------

    def brand(self, item: TcrEvent, brand_id: str) -> Row:
        """The brand's row (created, owned by the source's tenant, when unknown)."""
        row = self.brands.create(brand_id, True, new_brand, item, self.tenant, self.now)
        if self.tenant is not None and row["tenant"] is None:
            # A brand first seen through a source without a tenant is adopted by the first
            # tenant's source that names it; an owned brand never changes hands (another
            # tenant's events are ignored before they get here).
            self.set(brands, row, {"tenant": self.tenant})
        return row

    def ensure_brand(self, item: TcrEvent, brand_id: str) -> Row:
        return self.brands.create(brand_id, False, new_brand, item, self.tenant, self.now)

    def apply_brand(self, item: TcrEvent) -> Outcome:
        brand_id = item.brand_id
        if brand_id is None:
            return Outcome.IGNORED
        row = self.brand(item, brand_id)
        if item.is_older(row):
            return Outcome.SUPERSEDED
        kind = item.kind
        values = brand_fields(item.payload)
        if kind.status is not None and not (kind.initial and row["status"] is not None):
            values["status"] = kind.status
        previous = row["status"]
        new = values.get("status")
        # Before the row changes: the e-mail reads the brand's name as the event found it.
        if new in VERIFIED_BRAND and previous not in VERIFIED_BRAND:
            self.notify(
                item,
                Kind.BRAND_VERIFIED,
                EntityType.TENDLC_BRAND,
                row["id"],
                self.whose(row),
                f"event:{item.event.id}",
                {
                    "brand_id": brand_id,
                    "brand_name": values.get("display_name") or row["display_name"] or brand_id,
                    "status": new,
                    "previous_status": previous,
                    "trust_score": values.get("trust_score", row["trust_score"]),
                },
            )
        self.set(brands, row, values | item.sync(self.now, applied=True))
        data = {k: row[k] for k in ("display_name", "identity_status", "trust_score")}
        self.batch.publish(
            Change(
                ChangeKind.TENDLC_BRAND,
                brand_id,
                row["tenant"],
                row["status"],
                data | {"previous_status": previous, "event_id": item.event.id},
            )
        )
        return Outcome.DONE

    # -- campaigns and carriers -------------------------------------------------------------

    def campaign(self, item: TcrEvent, campaign_id: str) -> Row:
        """The campaign's row; created (and its brand, when named) when unknown."""
        brand_id = item.brand_id
        row = self.campaigns.get(campaign_id)
        if row is not None and (brand_id is None or row["brand_id"] is not None):
            return row
        if brand_id is not None:
            self.ensure_brand(item, brand_id)
        if row is None:
            row = self.campaigns.create(
                campaign_id, True, new_campaign, item, campaign_id, self.now
            )
        else:  # known without its brand (share events name only the campaign): now we know
            self.set(campaigns, row, {"brand_id": brand_id})
        return row

    def publish_campaign(
        self, item: TcrEvent, row: Row, previous: str | None, carriers: Mapping[str, str]
    ) -> None:
        # The tenant as the REST API scopes a campaign: its brand's (none while unknown).
        brand = self.brand_of(row)
        data: dict[str, Any] = {
            "brand_id": row["brand_id"],
            "previous_status": previous,
            "event_id": item.event.id,
        }
        if carriers:
            data["carriers"] = dict(carriers)
        self.batch.publish(
            Change(
                ChangeKind.TENDLC_CAMPAIGN,
                row["campaign_id"],
                None if brand is None else brand["tenant"],
                row["status"],
                data,
            )
        )

    def apply_campaign(self, item: TcrEvent) -> Outcome:
        campaign_id = item.campaign_id
        if campaign_id is None:
            return Outcome.IGNORED
        row = self.campaign(item, campaign_id)
        if item.is_older(row):
            return Outcome.SUPERSEDED
        payload, kind = item.payload, item.kind
        values: dict[str, Any] = {}
        if (use_case := text_field(payload, ("usecase", "useCase"), 50)) is not None:
            values["use_case"] = use_case
        if (reason := text_field(payload, ("rejectionReason",), 4000)) is not None:
            values["rejection_reason"] = reason
        status = text_field(payload, ("status",), 20)
        if status is not None and status.upper() in CampaignStatus.__members__:
            values["status"] = CampaignStatus(status.upper())
        if kind.status is not None and not (kind.initial and row["status"] is not None):
            values["status"] = kind.status
        if kind.share is not None:
            values["share_status"] = kind.share
        previous = row["status"]
        self.set(campaigns, row, values | item.sync(self.now, applied=True))
        self.publish_campaign(item, row, previous, {})
        self.notify_rejected(item, row, previous)
        return Outcome.DONE

    def apply_carrier(self, item: TcrEvent) -> Outcome:
        campaign_id = item.campaign_id
        if campaign_id is None:
            return Outcome.IGNORED
        campaign = self.campaign(item, campaign_id)
        if not item.carriers:
            log.warning(
                "tcr_event_without_carrier", event_id=item.event.id, campaign_id=campaign_id
            )
        applied = superseded = 0
        news: list[tuple[str, str, str | None]] = []  # carriers newly approving or rejecting
        carriers: dict[str, str] = {}  # the carriers' statuses this event applied
        known = self.carriers_of.setdefault(campaign_id, {})
        for mno_id, status in sorted(item.carriers.items()):
            row = known.get(mno_id)
            previous = None if row is None else row["status"]
            if row is None:
                row = known[mno_id] = new_carrier(item, campaign_id, mno_id, status, self.now)
                self.new_carriers.append(row)
            elif item.is_older(row):
                superseded += 1
                continue
            values = {"status": status} | item.sync(self.now, applied=True)
            if "id" in row:
                self.set(campaign_carriers, row, values)
            else:  # created by this batch: written as it ends
                row.update(values)
            carriers[mno_id] = status
            applied += 1
            if status != previous and status in CARRIER_NEWS:
                news.append((mno_id, status, previous))
        if superseded and not applied:
            return Outcome.SUPERSEDED
        previous_status = campaign["status"]
        values = item.sync(self.now)
        # The campaign's summary of its carriers; expiry is the registry's word and stays.
        if (
            previous_status != CampaignStatus.EXPIRED
            and (derived := _derived_status({row["status"] for row in known.values()})) is not None
        ):
            values["status"] = derived
        if applied and (reason := text_field(item.payload, ("rejectionReason",), 4000)) is not None:
            values["rejection_reason"] = reason
        self.set(campaigns, campaign, values)
        if applied:
            self.publish_campaign(item, campaign, previous_status, carriers)
        self.notify_rejected(item, campaign, previous_status)
        if news:
            brand = self.brand_of(campaign)
            for mno_id, status, previous in news:
                self.notify(
                    item,
                    CARRIER_NEWS[CarrierStatus(status)],
                    EntityType.TENDLC_CAMPAIGN,
                    campaign["id"],
                    self.whose(brand),
                    f"{mno_id}:event:{item.event.id}",
                    {
                        "campaign_id": campaign_id,
                        "brand_id": brand["brand_id"] if brand else None,
                        "brand_name": _brand_name(brand),
                        "mno_id": mno_id,
                        "carrier": carrier_name(mno_id),
                        "carrier_status": status,
                        "previous_status": previous,
                        "campaign_status": campaign["status"],
                        "rejection_reason": values.get("rejection_reason"),
                    },
                )
        return Outcome.DONE

    def notify_rejected(self, item: TcrEvent, campaign: Row, previous: str | None) -> None:
        """The campaign as a whole became REJECTED (the registry's word, or every carrier's
        decision summed up): news beside each carrier's own rejection."""
        if campaign["status"] != CampaignStatus.REJECTED or previous == CampaignStatus.REJECTED:
            return
        brand = self.brand_of(campaign)
        self.notify(
            item,
            Kind.CAMPAIGN_STATUS_REJECTED,
            EntityType.TENDLC_CAMPAIGN,
            campaign["id"],
            self.whose(brand),
            f"status:event:{item.event.id}",
            {
                "campaign_id": campaign["campaign_id"],
                "brand_id": brand["brand_id"] if brand else None,
                "brand_name": _brand_name(brand),
                "previous_status": previous,
                "rejection_reason": campaign.get("rejection_reason"),
            },
        )

    # -- vetting ----------------------------------------------------------------------------

    def apply_vetting(self, item: TcrEvent) -> Outcome:
        key = item.vetting
        if key is None:
            return Outcome.IGNORED
        brand_id, vetting_kind, _ = key
        brand = self.ensure_brand(item, brand_id)
        row = self.vettings.create(key, True, new_vetting, item, key, self.now)
        if item.is_older(row):
            return Outcome.SUPERSEDED
        payload = item.payload
        values: dict[str, Any] = {}
        if (evp := tcr_id(payload.get("evpId"))) is not None:
            values["evp_id"] = evp
        if (vetting_class := text_field(payload, ("vettingClass",), 50)) is not None:
            values["vetting_class"] = vetting_class
        if (score := int_field(payload, ("vettingScore", "score"))) is not None:
            values["score"] = score
        status = item.kind.status or text_field(payload, ("vettingStatus",), 30)
        if status is not None:
            values["status"] = status.upper()
        previous = row["status"]
        self.set(vettings, row, values | item.sync(self.now, applied=True))
        # The tenant as the REST API scopes a vetting result: its brand's.
        data = {"brand_id": brand_id, "vetting_kind": vetting_kind, "event_id": item.event.id}
        self.batch.publish(
            Change(ChangeKind.TENDLC_VETTING, row["id"], brand["tenant"], row["status"], data)
        )
        new = values.get("status")
        if new != previous and new in VETTING_DONE.get(VettingKind(vetting_kind), ()):
            self.notify(
                item,
                Kind.VETTING_COMPLETE,
                EntityType.TENDLC_VETTING,
                row["id"],
                self.whose(brand),
                f"event:{item.event.id}",
                {
                    "brand_id": brand_id,
                    "brand_name": _brand_name(brand),
                    "vetting_kind": vetting_kind,
                    "status": new,
                    "score": row["score"],
                    "vetting_class": row["vetting_class"],
                    "evp_id": row["evp_id"],
                },
            )
        return Outcome.DONE

    # -- known, no state --------------------------------------------------------------------

    def apply_record(self, item: TcrEvent) -> Outcome:
        """Nothing changes but the entity is known to exist and was heard from now."""
        if item.campaign_id is not None:
            self.set(campaigns, self.campaign(item, item.campaign_id), item.sync(self.now))
        elif item.brand_id is not None:
            self.set(brands, self.brand(item, item.brand_id), item.sync(self.now))
        else:
            return Outcome.IGNORED
        return Outcome.DONE


def _derived_status(carriers: set[str]) -> CampaignStatus | None:
    """The campaign's summary of its carriers' statuses."""
    for carrier, summary in [
        (CarrierStatus.APPROVED, CampaignStatus.ACTIVE),
        (CarrierStatus.REVIEW, CampaignStatus.REVIEW),
        (CarrierStatus.PENDING, CampaignStatus.REVIEW),
        (CarrierStatus.SUSPENDED, CampaignStatus.SUSPENDED),
        (CarrierStatus.REJECTED, CampaignStatus.REJECTED),
    ]:
        if carrier in carriers:
            return summary
    return None


def _brand_name(brand: Row | None) -> str | None:
    if brand is None:
        return None
    name: str = brand["display_name"] or brand["company_name"] or brand["brand_id"]
    return name
