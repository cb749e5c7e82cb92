"""What a TCR event's payload says: the ids it names (`TcrEvent`), a brand's fields, a
carrier event's statuses. A field that is missing or malformed is None, never an error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hookyard.domain.batch import Row
from hookyard.domain.common import SyncSource, is_older
from hookyard.domain.tendlc.catalogue import Action, EventKind
from hookyard.domain.tendlc.states import (
    BRAND_STATUS_OF_IDENTITY,
    BrandStatus,
    IdentityStatus,
    VettingKind,
)
from hookyard.domain.tendlc.tables import TCR_ID_LENGTH
from hookyard.providers.base import StoredEvent, storable_text

_INT_LIMIT = 2**31 - 1

VettingKey = tuple[str, str, str]  # (brand id, kind, vetting key)


@dataclass(frozen=True, slots=True)
class TcrEvent:
    """An event the service acts on, with the ids its payload names (None: not usable)."""

    event: StoredEvent
    kind: EventKind
    payload: Mapping[str, Any]
    brand_id: str | None
    campaign_id: str | None
    sync_source: SyncSource
    carriers: dict[str, str]  # a carrier event's statuses by MNO id (`_carrier_statuses`)
    vetting: VettingKey | None  # a vetting event's row

    @classmethod
    def of(cls, event: StoredEvent, kind: EventKind) -> TcrEvent:
        payload = event.payload if isinstance(event.payload, Mapping) else {}
        brand_id = tcr_id(payload.get("brandId"))
        vetting: VettingKey | None = None
        if kind.action is Action.VETTING and brand_id is not None and kind.vetting is not None:
            key = tcr_id(payload.get("vettingId")) if kind.vetting is VettingKind.EVP else None
            vetting = (brand_id, kind.vetting.value, key or "")
        return cls(
            event,
            kind,
            payload,
            brand_id,
            tcr_id(payload.get("campaignId")),
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


# -- brands, campaigns, carriers: what a payload says ---------------------------------------


def brand_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for column, keys, limit in [
        ("display_name", ("displayName", "brandName"), 255),
        ("company_name", ("companyName",), 255),
        ("entity_type", ("entityType",), 50),
        ("vertical", ("vertical",), 50),
        ("feedback", ("rejectionReason", "feedback"), 4000),
    ]:
        if (value := text_field(payload, keys, limit)) is not None:
            values[column] = value
    if (score := int_field(payload, ("trustScore", "score"))) is not None:
        values["trust_score"] = score
    status = text_field(payload, ("status",), 20)
    if status is not None and status.upper() in BrandStatus.__members__:
        values["status"] = BrandStatus(status.upper())
    identity = text_field(payload, ("brandIdentityStatus", "identityStatus"), 30)
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
            mno_id = tcr_id(mno)
            if mno_id is not None and isinstance(status, str) and status.strip():
                found[mno_id] = storable_text(status.strip().upper(), 30)
    if not found and kind.status is not None:
        mno_id = tcr_id(payload.get("mnoId"))
        if mno_id is not None:
            found[mno_id] = kind.status
    return found


# -- payload fields -------------------------------------------------------------------------


def tcr_id(value: object) -> str | None:
    """A TCR id (brand, campaign, MNO, vetting) as text; None when it cannot be one."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not text or len(text) > TCR_ID_LENGTH or storable_text(text, TCR_ID_LENGTH) != text:
        return None
    return text


def text_field(payload: Mapping[str, Any], keys: Sequence[str], limit: int) -> str | None:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return storable_text(value.strip(), limit)
    return None


def int_field(payload: Mapping[str, Any], keys: Sequence[str]) -> int | None:
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
