"""Sample data of each kind, as its recorder writes it: what `hookyard notify preview` and
`hookyard notify test` render (the templates name these fields; a test renders every kind
from them, so a template naming a field no sample has fails there, not in production)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hookyard.notify.kinds import Kind
from hookyard.notify.render import Item

_BRAND = {"brand_id": "BSAMPLE1", "brand_name": "Acme Telecom"}
_CAMPAIGN = _BRAND | {"campaign_id": "CSAMPLE1"}
_CARRIER = _CAMPAIGN | {"mno_id": "10017", "carrier": "AT&T", "campaign_status": "REJECTED"}
_TEMPLATE = {"template_name": "order_update", "language": "en_US",
             "meta_template_id": "594425479261596", "campaigns_paused": 2}  # fmt: skip

SAMPLES: Mapping[Kind, Mapping[str, Any]] = {
    Kind.BRAND_VERIFIED: _BRAND
    | {"status": "VERIFIED", "previous_status": "UNVERIFIED", "trust_score": 75},
    Kind.CAMPAIGN_APPROVED: _CARRIER
    | {"carrier": "T-Mobile", "mno_id": "10035", "carrier_status": "APPROVED",
       "previous_status": "REVIEW", "campaign_status": "ACTIVE", "rejection_reason": None},
    Kind.CAMPAIGN_REJECTED: _CARRIER
    | {"carrier_status": "REJECTED", "previous_status": "REVIEW",
       "rejection_reason": "Opt-in flow unclear"},
    Kind.VETTING_COMPLETE: _BRAND
    | {"vetting_kind": "EVP", "status": "SCORED", "score": 75, "vetting_class": "STANDARD",
       "evp_id": "AEGIS"},
    Kind.TEMPLATE_DISABLED: _TEMPLATE
    | {"status": "DISABLED", "previous_status": "APPROVED", "reason": "SCAM"},
    Kind.TEMPLATE_PAUSED: _TEMPLATE
    | {"status": "PAUSED", "previous_status": "APPROVED", "reason": None},
    Kind.TEMPLATE_RED_QUALITY: _TEMPLATE | {"quality": "RED", "previous_quality": "YELLOW"},
    Kind.LEAD_CLOSED: {"lead_name": "Maria Silva", "c2s_lead_id": "c2s-lead-8a1f",
                       "closed_at": "2025-11-21T05:00:00+00:00"},
    Kind.SYNC_FAILED: {"company_name": "Ringer Network Solutions", "ban": "AC000000001",
                       "outbox_id": 42, "attempts": 4, "error": "HubSpot: 503 unavailable"},
    Kind.CAMPAIGN_STATUS_REJECTED: _CAMPAIGN
    | {"previous_status": "REVIEW", "rejection_reason": "Opt-in flow unclear"},
    Kind.ALERT_OPENED: {
        "alert_id": 7, "alert_kind": "failure_rate", "subject": "source:tcr",
        "detail": "6 of the 20 events handled from source tcr (received in the last 15 min) "
        "are failing", "value": 0.3, "threshold": 0.2,
        "title": "failure rate: 6 of the 20 events handled from source tcr are failing",
    },
}  # fmt: skip
assert set(SAMPLES) == set(Kind), "every kind needs its sample"


def sample(kind: Kind, at: datetime | None = None) -> Item:
    return Item(kind, dict(SAMPLES[kind]), at or datetime.now(UTC))
