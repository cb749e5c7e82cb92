"""TCR: reconcilers for brands and campaigns, webhook subscriptions (brand registration is
`tcr_registration.py`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from hookyard.domain.tendlc.states import BrandStatus, CampaignStatus, CarrierStatus
from hookyard.domain.tendlc.tables import brands, campaign_carriers, campaigns
from hookyard.http import ApiError
from hookyard.logs import log
from hookyard.providers.base import Source
from hookyard.sync.reconcile import Drift, Finding
from hookyard.sync.tcr_api import CATEGORIES, TCRClient

# What TCR's operationStatus says, as the carrier statuses webhooks use. REGISTERED is how
# the registry reports a campaign a carrier has taken (approved); the rest are the same words.
CARRIER_STATUS_OF = {"REGISTERED": CarrierStatus.APPROVED.value}
CARRIER_EVENT = {
    CarrierStatus.APPROVED: "MNO_CAMPAIGN_OPERATION_APPROVED",
    CarrierStatus.REJECTED: "MNO_CAMPAIGN_OPERATION_REJECTED",
    CarrierStatus.REVIEW: "MNO_CAMPAIGN_OPERATION_REVIEW",
    CarrierStatus.PENDING: "MNO_CAMPAIGN_OPERATION_REVIEW",
    CarrierStatus.SUSPENDED: "MNO_CAMPAIGN_OPERATION_SUSPENDED",
}

# Which rows each scheduled job looks at (None: every row but the final ones).
BRAND_SCOPES: dict[str, tuple[str, ...] | None] = {
    "unverified": (BrandStatus.PENDING, BrandStatus.REGISTERED, BrandStatus.UNVERIFIED),
    "all": None,
}
CAMPAIGN_SCOPES: dict[str, tuple[str, ...] | None] = {
    "review": (CampaignStatus.PENDING, CampaignStatus.REVIEW),
    "active": (CampaignStatus.ACTIVE,),
    "all": None,
}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass
class BrandReconciler:
    engine: Engine
    client: TCRClient
    scope: str = "all"
    provider: str = "tcr"

    @property
    def job(self) -> str:
        return f"tcr.brands.{self.scope}"

    def check(self) -> Iterator[Finding]:
        statuses = BRAND_SCOPES[self.scope]
        query = select(brands.c.brand_id, brands.c.tenant, brands.c.identity_status,
                       brands.c.trust_score, brands.c.status)  # fmt: skip
        if statuses is None:
            query = query.where(
                (brands.c.status.is_(None)) | (brands.c.status != BrandStatus.DELETED)
            )
        else:
            query = query.where(brands.c.status.in_(statuses))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(brands.c.brand_id)).mappings().all()
        for row in rows:
            yield self._check(row)

    def _check(self, row: Any) -> Finding:
        entity = f"brand:{row['brand_id']}"
        remote = self.client.brand(row["brand_id"])
        if remote is None:
            return Finding(entity, row["tenant"], (Drift(entity, "exists", True, False),))
        drift = []
        identity = remote.get("identityStatus") or remote.get("brandIdentityStatus")
        if isinstance(identity, str) and identity.upper() != (row["identity_status"] or ""):
            drift.append(Drift(entity, "identity_status", row["identity_status"], identity))
        score = remote.get("trustScore")
        if isinstance(score, int) and score != row["trust_score"]:
            drift.append(Drift(entity, "trust_score", row["trust_score"], score))
        if not drift:
            return Finding(entity, row["tenant"])
        fields = {"identity_status"} & {d.field for d in drift}
        payload: dict[str, Any] = {
            "eventType": "BRAND_IDENTITY_STATUS_UPDATE" if fields else "BRAND_SCORE_UPDATE",
            "eventCategory": "BRAND",
            "brandId": row["brand_id"],
            "timestamp": _now_iso(),
        }
        if isinstance(identity, str):
            payload["brandIdentityStatus"] = identity
        if isinstance(score, int):
            payload["trustScore"] = score
        for key in ("displayName", "companyName", "entityType", "vertical"):
            if isinstance(remote.get(key), str):
                payload[key] = remote[key]
        return Finding(entity, row["tenant"], tuple(drift), (_body(payload),), source_hint="brand")


@dataclass
class CampaignReconciler:
    engine: Engine
    client: TCRClient
    scope: str = "all"
    provider: str = "tcr"

    @property
    def job(self) -> str:
        return f"tcr.campaigns.{self.scope}"

    def check(self) -> Iterator[Finding]:
        statuses = CAMPAIGN_SCOPES[self.scope]
        query = select(
            campaigns.c.campaign_id, campaigns.c.brand_id, campaigns.c.status, brands.c.tenant
        ).select_from(campaigns.outerjoin(brands, brands.c.brand_id == campaigns.c.brand_id))
        if statuses is None:
            query = query.where(
                (campaigns.c.status.is_(None)) | (campaigns.c.status != CampaignStatus.EXPIRED)
            )
        else:
            query = query.where(campaigns.c.status.in_(statuses))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(campaigns.c.campaign_id)).mappings().all()
            carriers: dict[str, dict[str, str]] = {}
            for campaign_id, mno_id, status in conn.execute(
                select(
                    campaign_carriers.c.campaign_id,
                    campaign_carriers.c.mno_id,
                    campaign_carriers.c.status,
                ).where(campaign_carriers.c.campaign_id.in_([r["campaign_id"] for r in rows]))
            ):
                carriers.setdefault(campaign_id, {})[mno_id] = status
        for row in rows:
            yield self._check(row, carriers.get(row["campaign_id"], {}))

    def _check(self, row: Any, ours: dict[str, str]) -> Finding:
        campaign_id = row["campaign_id"]
        entity = f"campaign:{campaign_id}"
        remote = self.client.campaign(campaign_id)
        if remote is None:
            return Finding(entity, row["tenant"], (Drift(entity, "exists", True, False),))
        drift: list[Drift] = []
        bodies: list[bytes] = []
        base = {"eventCategory": "CAMPAIGN", "campaignId": campaign_id, "timestamp": _now_iso()}
        if row["brand_id"] or remote.get("brandId"):
            base["brandId"] = row["brand_id"] or remote.get("brandId")
        if remote.get("status") == CampaignStatus.EXPIRED and row["status"] != "EXPIRED":
            drift.append(Drift(entity, "status", row["status"], "EXPIRED"))
            bodies.append(_body({"eventType": "CAMPAIGN_EXPIRED", **base}))
        changed: dict[str, dict[str, str]] = {}
        for mno_id, raw in sorted(self.client.operation_status(campaign_id).items()):
            status = CARRIER_STATUS_OF.get(raw.upper(), raw.upper())
            if ours.get(mno_id) != status:
                drift.append(Drift(f"{entity}/mno:{mno_id}", "status", ours.get(mno_id), status))
                changed.setdefault(status, {})[mno_id] = status
        for status, statuses in changed.items():
            try:
                event_type = CARRIER_EVENT[CarrierStatus(status)]
            except ValueError:
                event_type = "MNO_CAMPAIGN_OPERATION_REVIEW"  # an unknown word: kept as sent
            bodies.append(_body({"eventType": event_type, **base, "mnoStatuses": statuses}))
        return Finding(entity, row["tenant"], tuple(drift), tuple(bodies), source_hint="campaign")


def reconcilers(engine: Engine, client: TCRClient, scope: str = "all") -> list[Any]:
    """What `hookyard reconcile tcr` runs: every brand and campaign not in a final state."""
    return [BrandReconciler(engine, client, scope), CampaignReconciler(engine, client, scope)]


@dataclass(frozen=True, slots=True)
class Subscription:
    category: str
    endpoint: str
    status: str  # subscribed, unchanged, failed
    error: str | None = None


def subscribe_all(
    client: TCRClient, public_url: str, sources: Sequence[Source]
) -> list[Subscription]:
    """Point each category (BRAND, CAMPAIGN, VETTING) at hookyard's TCR source for it.

    The endpoint is hookyard's public URL plus the source's path, with its token (TCR signs
    nothing, so the token in the URL is the credential). Idempotent: a category already
    pointing at that endpoint is left alone; another endpoint is replaced."""
    tcr_sources = [s for s in sources if s.config.provider == "tcr"]
    if not tcr_sources:
        return []
    current = {s.get("eventCategory"): s.get("webhookEndpoint") for s in client.subscriptions()}
    results = []
    for category in CATEGORIES:
        source = _source_for(category, tcr_sources)
        endpoint = public_url.rstrip("/") + source.path
        token = getattr(source.config, "token", None)
        if token:
            endpoint += "?token=" + token
        shown = endpoint.split("?", 1)[0]  # never log or print the token
        if current.get(category) == endpoint:
            results.append(Subscription(category, shown, "unchanged"))
            continue
        try:
            client.subscribe(category, endpoint)
        except ApiError as exc:
            log.error("tcr_subscribe_failed", category=category, error=str(exc)[:300])
            results.append(Subscription(category, shown, "failed", str(exc)[:300]))
            continue
        log.info("tcr_subscribed", category=category, endpoint=shown)
        results.append(Subscription(category, shown, "subscribed"))
    return results


def category_of(path: str) -> str | None:
    """The TCR category a source's path names (…/brands, …/campaigns, …/vetting)."""
    for word, category in (("brand", "BRAND"), ("campaign", "CAMPAIGN"), ("vetting", "VETTING")):
        if word in path.lower():
            return category
    return None


def _source_for(category: str, sources: Iterable[Source]) -> Source:
    """The TCR source for the category; the first TCR source when none names it."""
    listed = list(sources)
    for source in listed:
        if category_of(source.path) == category:
            return source
    return listed[0]
