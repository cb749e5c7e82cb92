"""Applying TCR events to the 10DLC tables, inside the worker's transaction.

Rules that make redelivery, reordering and partial knowledge safe:
- Each row remembers the provider time of the last event applied to it; an event older than
  that changes nothing and is `superseded` (equal times apply, in arrival order).
- An event naming a brand or campaign not known yet creates it (a brand is owned by the
  source's tenant): the replaced system retried such events forever.
- Rows are created with insert-if-missing and then locked (`FOR UPDATE` on PostgreSQL), so
  concurrent workers neither collide on a new brand nor interleave updates of one row.
- A payload field that is missing or malformed is left alone, never an error; an event
  without the id it needs is `ignored` (retrying could not help).

A claimed batch is applied together (`apply_batch`, hookyard.domain.batch): the rows its
events name are read with one statement per table, the brands, campaigns and vetting results
its events will create are inserted together beforehand (carrier rows, which nothing refers
to by id, once at the end, as the batch leaves them), and the events are then applied in
order to those rows in memory, each seeing what the earlier ones did (a row inserted ahead
stays out of sight until the event that creates it runs). Rows are locked where handling one
event at a time locked them: brands only for brand events (their owner may change),
campaigns, carriers and vetting results always; in the order campaigns, brands, carriers,
vetting results, each in key order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table

from hookyard.domain.batch import Batch, Key, Row
from hookyard.domain.common import SyncSource, is_older
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
from hookyard.logs import log
from hookyard.notify.kinds import EntityType, Kind
from hookyard.notify.record import notification
from hookyard.notify.tables import notifications
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

VettingKey = tuple[str, str, str]  # (brand id, kind, vetting key)


@dataclass(frozen=True, slots=True)
class _Event:
    """An event this module acts on, with the ids its payload names (None: not usable)."""

    event: StoredEvent
    kind: EventKind
    payload: Mapping[str, Any]
    brand_id: str | None
    campaign_id: str | None
    sync_source: SyncSource
    carriers: dict[str, str]  # a carrier event's statuses by MNO id (`_carrier_statuses`)
    vetting: VettingKey | None  # a vetting event's row

    @classmethod
    def of(cls, event: StoredEvent, kind: EventKind) -> _Event:
        payload = event.payload if isinstance(event.payload, Mapping) else {}
        brand_id = _tcr_id(payload.get("brandId"))
        vetting: VettingKey | None = None
        if kind.action is Action.VETTING and brand_id is not None and kind.vetting is not None:
            key = _tcr_id(payload.get("vettingId")) if kind.vetting is VettingKind.EVP else None
            vetting = (brand_id, kind.vetting.value, key or "")
        return cls(
            event,
            kind,
            payload,
            brand_id,
            _tcr_id(payload.get("campaignId")),
            SyncSource.of_origin(event.origin),
            _carrier_statuses(kind, payload) if kind.action is Action.CARRIER else {},
            vetting,
        )

    @property
    def names_campaign(self) -> bool:
        """Whether the event applies to its campaign (else to its brand, or to nothing)."""
        action = self.kind.action
        return self.campaign_id is not None and (
            action is Action.CAMPAIGN or action is Action.CARRIER or action is Action.RECORD
        )

    @property
    def names_brand(self) -> bool:
        """Whether the event applies to its brand's own row (and may make its source's
        tenant the owner)."""
        action = self.kind.action
        return self.brand_id is not None and (
            action is Action.BRAND or (action is Action.RECORD and self.campaign_id is None)
        )

    def is_older(self, row: Row) -> bool:
        return is_older(self.event.provider_ts, row["last_event_at"])

    def sync(self, now: datetime, applied: bool = False) -> dict[str, Any]:
        """The sync columns of a row this event changes (not `applied`: noted only)."""
        values: dict[str, Any] = {"last_synced_at": now, "sync_source": self.sync_source}
        if applied:
            values["last_event_type"] = self.kind.event_type
            if self.event.provider_ts is not None:
                values["last_event_at"] = self.event.provider_ts
        return values


def apply(event: StoredEvent, tx: Connection, default_tenant: str | None) -> Outcome:
    """Apply one TCR event inside `tx` (see `apply_batch`)."""
    return apply_batch([event], tx, default_tenant)[event.id]


def apply_batch(
    events: Sequence[StoredEvent], tx: Connection, default_tenant: str | None
) -> dict[int, Outcome]:
    """Apply TCR events in order inside `tx`; `default_tenant` (the source's) owns the brands
    they create. The outcome of each event by id."""
    outcomes: dict[int, Outcome] = {}
    todo: list[_Event] = []
    for event in events:
        kind = CATALOGUE.get(event.event_type)
        if kind is None or kind.action is Action.IGNORE:
            log.debug("tcr_event_ignored", event_id=event.id, event_type=event.event_type)
            outcomes[event.id] = Outcome.IGNORED
            continue
        todo.append(_Event.of(event, kind))
    if not todo:
        return outcomes
    batch = Batch(tx)
    foreign = _of_other_tenants(batch, todo, default_tenant)
    for item in foreign:
        # A source of one tenant never changes another tenant's brands or campaigns (as for
        # CRM customers and WhatsApp templates): the event is kept, ignored.
        log.warning(
            "tcr_tenant_mismatch",
            event_id=item.event.id,
            source=item.event.source,
            entity=item.event.entity_key,
        )
        outcomes[item.event.id] = Outcome.IGNORED
    todo = [item for item in todo if item not in foreign]
    if not todo:
        return outcomes
    state = _State.read(batch, todo, default_tenant, datetime.now(UTC))
    for item in todo:
        outcome = _ACTIONS[item.kind.action](state, item)
        attribute_event(state.batch, item.event, state.owner(item))
        outcomes[item.event.id] = outcome
        if outcome is not Outcome.DONE:
            log.debug(
                "tcr_event_" + outcome.value,
                event_id=item.event.id,
                event_type=item.event.event_type,
                entity=item.event.entity_key,
            )
    state.finish()
    return outcomes


def _of_other_tenants(
    batch: Batch, todo: Sequence[_Event], default_tenant: str | None
) -> list[_Event]:
    """The events whose brand (named, or their campaign's) another tenant than the receiving
    source's owns. Read before the batch plans anything: within one source's batch ownership
    only goes from nobody to that source's tenant, which changes no answer here."""
    known = batch.rows(campaigns, "campaign_id", {i.campaign_id for i in todo if i.campaign_id})
    brand_of = {
        item.event.id: item.brand_id
        or (known[item.campaign_id]["brand_id"] if item.campaign_id in known else None)
        for item in todo
    }
    named = {b for b in brand_of.values() if b is not None}
    owners = {k: row["tenant"] for k, row in batch.rows(brands, "brand_id", named).items()}
    foreign = []
    for item in todo:
        receiver = item.event.tenant or default_tenant
        owner = owners.get(brand_of[item.event.id])
        if receiver is not None and owner is not None and owner != receiver:
            foreign.append(item)
    return foreign


def attribute_event(batch: Batch, event: StoredEvent, owner: str | None) -> None:
    """The event belongs to the tenant owning the brand it names (written with the batch, so
    the event's tenant and its effects commit together)."""
    batch.attribute(event.id, owner, event.tenant)


class _Rows:
    """One table's rows a batch names, by key, as the events applied so far left them. The
    rows the batch inserted ahead (`ahead`) stay out of sight until the event that creates
    them runs, so an earlier event sees the table as it was."""

    __slots__ = ("ahead", "batch", "column", "seen", "table")

    def __init__(self, batch: Batch, table: Table, column: Key) -> None:
        self.batch = batch
        self.table = table
        self.column = column
        self.seen: dict[Any, Row] = {}
        self.ahead: dict[Any, Row] = {}

    def read(
        self, keys: Iterable[Any], new: Mapping[Any, Row], *, locked: Iterable[Any] = ()
    ) -> set[Any]:
        """Read the rows of `keys` (those of `locked` keys locked), then insert the missing
        ones `new` has values for, in one statement (`ahead`); the keys inserted."""
        lock = set(locked)
        wanted = set(keys)
        self.seen |= self.batch.rows(self.table, self.column, wanted & lock, lock=True)
        self.seen |= self.batch.rows(self.table, self.column, wanted - lock)
        missing = {key: values for key, values in new.items() if key not in self.seen}
        if missing:
            created = self.batch.create(self.table, self.column, missing)
            self.ahead |= created
            # Keys a concurrent worker inserted first: their rows, committed by now.
            raced = missing.keys() - created.keys()
            self.ahead |= self.batch.rows(self.table, self.column, raced & lock, lock=True)
            self.ahead |= self.batch.rows(self.table, self.column, raced - lock)
            return set(created)
        return set()

    def get(self, key: Any) -> Row | None:
        """The row, if it exists at this point of the batch."""
        return self.seen.get(key)

    def create(self, key: Any, lock: bool, new: Callable[..., Row], *args: Any) -> Row:
        """The row of `key`, created now (with the values `new(*args)`) if it did not exist
        yet (locked with `lock` when read now)."""
        row = self.seen.get(key)
        if row is None:
            row = self.ahead.pop(key, None)
            if row is None:
                # Not foreseen: a concurrent worker's row read back differed from what this
                # batch planned (e.g. its campaign had no brand). Rare: insert it now.
                created = self.batch.create(self.table, self.column, {key: new(*args)})
                row = (
                    created.get(key)
                    or self.batch.rows(self.table, self.column, [key], lock=lock)[key]
                )
            self.seen[key] = row
        return row

    def existing(self, key: Any) -> Row:
        """A row another row refers to (so it exists): in sight from now on."""
        row = self.seen.get(key) or self.ahead.pop(key, None)
        if row is None:  # a concurrent worker's campaign naming a brand not read here: rare
            row = self.batch.rows(self.table, self.column, [key])[key]
        self.seen[key] = row
        return row


@dataclass(slots=True)
class _State:
    """The 10DLC rows of one batch, and what its events do to them."""

    batch: Batch
    tenant: str | None  # the owner of brands this batch creates
    now: datetime
    brands: _Rows
    campaigns: _Rows
    vettings: _Rows
    # The carriers of each campaign of a carrier event, as the events so far left them.
    carriers_of: dict[str, dict[str, Row]] = field(default_factory=dict)
    # Carrier rows the events created, inserted as the batch leaves them (`finish`): nothing
    # else refers to their ids, and no one else writes them while the batch holds their
    # campaign's lock, so they are written once instead of inserted, read back and updated.
    new_carriers: list[Row] = field(default_factory=list)

    @classmethod
    def read(
        cls, batch: Batch, todo: Sequence[_Event], tenant: str | None, now: datetime
    ) -> _State:
        state = cls(
            batch,
            tenant,
            now,
            _Rows(batch, brands, "brand_id"),
            _Rows(batch, campaigns, "campaign_id"),
            _Rows(batch, vettings, ("brand_id", "kind", "vetting_key")),
        )
        # Campaigns first: which brands the batch creates depends on whether each campaign
        # is known, and with which brand. The others are read only to find an owner.
        acted_on = {item.campaign_id for item in todo if item.names_campaign}
        named = {item.campaign_id for item in todo if item.brand_id is None} - acted_on
        state.campaigns.read(acted_on, {}, locked=acted_on)
        state.campaigns.read({key for key in named if key is not None}, {})
        plan = _Plan.of(todo, state.campaigns.seen, tenant, now)
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

    def owner(self, item: _Event) -> str | None:
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
        item: _Event,
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

    def brand(self, item: _Event, brand_id: str) -> Row:
        """The brand's row (created, owned by the source's tenant, when unknown)."""
        row = self.brands.create(brand_id, True, _new_brand, item, self.tenant, self.now)
        if self.tenant is not None and row["tenant"] is None:
            # A brand first seen through a source without a tenant is adopted by the first
            # tenant's source that names it; an owned brand never changes hands (another
            # tenant's events are ignored before they get here).
            self.set(brands, row, {"tenant": self.tenant})
        return row

    def ensure_brand(self, item: _Event, brand_id: str) -> Row:
        return self.brands.create(brand_id, False, _new_brand, item, self.tenant, self.now)

    def apply_brand(self, item: _Event) -> Outcome:
        brand_id = item.brand_id
        if brand_id is None:
            return Outcome.IGNORED
        row = self.brand(item, brand_id)
        if item.is_older(row):
            return Outcome.SUPERSEDED
        kind = item.kind
        values = _brand_fields(item.payload)
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

    def campaign(self, item: _Event, campaign_id: str) -> Row:
        """The campaign's row; created (and its brand, when named) when unknown."""
        brand_id = item.brand_id
        row = self.campaigns.get(campaign_id)
        if row is not None and (brand_id is None or row["brand_id"] is not None):
            return row
        if brand_id is not None:
            self.ensure_brand(item, brand_id)
        if row is None:
            row = self.campaigns.create(
                campaign_id, True, _new_campaign, item, campaign_id, self.now
            )
        else:  # known without its brand (share events name only the campaign): now we know
            self.set(campaigns, row, {"brand_id": brand_id})
        return row

    def publish_campaign(
        self, item: _Event, row: Row, previous: str | None, carriers: Mapping[str, str]
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

    def apply_campaign(self, item: _Event) -> Outcome:
        campaign_id = item.campaign_id
        if campaign_id is None:
            return Outcome.IGNORED
        row = self.campaign(item, campaign_id)
        if item.is_older(row):
            return Outcome.SUPERSEDED
        payload, kind = item.payload, item.kind
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
        previous = row["status"]
        self.set(campaigns, row, values | item.sync(self.now, applied=True))
        self.publish_campaign(item, row, previous, {})
        return Outcome.DONE

    def apply_carrier(self, item: _Event) -> Outcome:
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
                row = known[mno_id] = _new_carrier(item, campaign_id, mno_id, status, self.now)
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
        if applied and (reason := _text(item.payload, ("rejectionReason",), 4000)) is not None:
            values["rejection_reason"] = reason
        self.set(campaigns, campaign, values)
        if applied:
            self.publish_campaign(item, campaign, previous_status, carriers)
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

    # -- vetting ----------------------------------------------------------------------------

    def apply_vetting(self, item: _Event) -> Outcome:
        key = item.vetting
        if key is None:
            return Outcome.IGNORED
        brand_id, vetting_kind, _ = key
        brand = self.ensure_brand(item, brand_id)
        row = self.vettings.create(key, True, _new_vetting, item, key, self.now)
        if item.is_older(row):
            return Outcome.SUPERSEDED
        payload = item.payload
        values: dict[str, Any] = {}
        if (evp := _tcr_id(payload.get("evpId"))) is not None:
            values["evp_id"] = evp
        if (vetting_class := _text(payload, ("vettingClass",), 50)) is not None:
            values["vetting_class"] = vetting_class
        if (score := _int(payload, ("vettingScore", "score"))) is not None:
            values["score"] = score
        status = item.kind.status or _text(payload, ("vettingStatus",), 30)
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

    def apply_record(self, item: _Event) -> Outcome:
        """Nothing changes but the entity is known to exist and was heard from now."""
        if item.campaign_id is not None:
            self.set(campaigns, self.campaign(item, item.campaign_id), item.sync(self.now))
        elif item.brand_id is not None:
            self.set(brands, self.brand(item, item.brand_id), item.sync(self.now))
        else:
            return Outcome.IGNORED
        return Outcome.DONE


_ACTIONS: dict[Action, Callable[[_State, _Event], Outcome]] = {
    Action.BRAND: _State.apply_brand,
    Action.CAMPAIGN: _State.apply_campaign,
    Action.CARRIER: _State.apply_carrier,
    Action.VETTING: _State.apply_vetting,
    Action.RECORD: _State.apply_record,
}


@dataclass(slots=True)
class _Plan:
    """The rows a batch's events will create, each with the values of the first event that
    creates it (the one that would insert it handling the events one at a time)."""

    brands: dict[str, Row] = field(default_factory=dict)
    locked_brands: set[str] = field(default_factory=set)  # brands of brand events
    campaigns: dict[str, Row] = field(default_factory=dict)
    vettings: dict[VettingKey, Row] = field(default_factory=dict)

    @classmethod
    def of(
        cls, todo: Sequence[_Event], known: Mapping[str, Row], tenant: str | None, now: datetime
    ) -> _Plan:
        plan = cls()
        # Whether each campaign exists by then, and its brand: the events change both.
        brand_of: dict[str, str | None] = {key: row["brand_id"] for key, row in known.items()}
        for item in todo:
            brand_id, campaign_id = item.brand_id, item.campaign_id
            if item.names_campaign:
                assert campaign_id is not None
                if campaign_id not in brand_of or (
                    brand_id is not None and brand_of[campaign_id] is None
                ):
                    if brand_id is not None and brand_id not in plan.brands:
                        plan.brands[brand_id] = _new_brand(item, tenant, now)
                    if campaign_id not in brand_of:
                        plan.campaigns[campaign_id] = _new_campaign(item, campaign_id, now)
                    brand_of[campaign_id] = brand_id
            elif item.names_brand or item.vetting is not None:
                assert brand_id is not None
                if item.names_brand:
                    plan.locked_brands.add(brand_id)
                if brand_id not in plan.brands:
                    plan.brands[brand_id] = _new_brand(item, tenant, now)
                if item.vetting is not None and item.vetting not in plan.vettings:
                    plan.vettings[item.vetting] = _new_vetting(item, item.vetting, now)
        return plan


def _new_brand(item: _Event, tenant: str | None, now: datetime) -> Row:
    return {"brand_id": item.brand_id, "tenant": tenant, "created_at": now} | item.sync(now)


def _new_campaign(item: _Event, campaign_id: str, now: datetime) -> Row:
    values = {"campaign_id": campaign_id, "brand_id": item.brand_id, "created_at": now}
    return values | item.sync(now)


def _new_carrier(item: _Event, campaign_id: str, mno_id: str, status: str, now: datetime) -> Row:
    """A carrier row as its first event creates it (in memory: see `_State.new_carriers`)."""
    values = {"campaign_id": campaign_id, "mno_id": mno_id, "status": status, "created_at": now}
    return values | {"last_event_type": None, "last_event_at": None} | item.sync(now)


def _new_vetting(item: _Event, key: VettingKey, now: datetime) -> Row:
    brand_id, kind, vetting_key = key
    values = {"brand_id": brand_id, "kind": kind, "vetting_key": vetting_key, "created_at": now}
    return values | item.sync(now)


# -- brands, campaigns, carriers: what a payload says ---------------------------------------


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
