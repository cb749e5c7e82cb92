"""Domain rows as the tests make them: by the domains' own event handlers, as webhooks would
(10DLC brands and campaigns, WhatsApp templates and campaigns, leads), for two tenants. Used
by tests/test_api_domain.py and the dashboard's pages (tests/test_web_*.py)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from hookyard.alerts.evaluate import AlertEvaluator
from hookyard.config import Settings
from hookyard.domain.leads import service as leads_service
from hookyard.domain.leads.tables import leads
from hookyard.domain.tendlc import service as tendlc_service
from hookyard.domain.whatsapp import campaigns as whatsapp_campaigns
from hookyard.domain.whatsapp import service as whatsapp_service
from hookyard.domain.whatsapp.tables import templates
from hookyard.providers.base import Outcome, StoredEvent

T0 = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
_event_ids = itertools.count(1)


def stored(provider: str, event_type: str, payload: dict[str, Any], at: datetime) -> StoredEvent:
    """The event a worker would hand the domain's handler."""
    event_id = next(_event_ids)
    return StoredEvent(
        id=event_id,
        source="test",
        provider=provider,
        tenant=None,
        event_type=event_type,
        dedup_key=f"test-{event_id}",
        entity_key=None,
        provider_ts=at,
        payload=payload,
        headers={},
        attempts=1,
        origin="webhook",
    )


# -- the two tenants' rows, made by the domains' handlers ---------------------------------


def tcr(engine: Engine, tenant: str, event_type: str, at: datetime, **payload: Any) -> None:
    with engine.begin() as tx:
        event = stored("tcr", event_type, {"eventType": event_type, **payload}, at)
        assert tendlc_service.apply(event, tx, tenant) is Outcome.DONE


def meta(engine: Engine, tenant: str, waba: str, template: str, at: datetime, **value: Any) -> None:
    field = (
        whatsapp_service.QUALITY_FIELD
        if "new_quality_score" in value
        else whatsapp_service.STATUS_FIELD
    )
    payload = {"waba_id": waba, "field": field, "value": {"message_template_id": template, **value}}
    with engine.begin() as tx:
        assert (
            whatsapp_service.apply(stored("meta", field, payload, at), tx, tenant) is Outcome.DONE
        )


def template_id(engine: Engine, meta_id: str) -> int:
    with engine.connect() as conn:
        found = conn.execute(select(templates.c.id).where(templates.c.meta_template_id == meta_id))
        return int(found.scalar_one())


def campaign(engine: Engine, meta_id: str, name: str) -> int:
    with engine.begin() as tx:
        return whatsapp_campaigns.add_campaign(tx, template_id(engine, meta_id), name)


def lead(engine: Engine, tenant: str, c2s_id: str, **customer: Any) -> int:
    payload = {
        "id": c2s_id,
        "attributes": {"updated_at": "2025-11-21T04:35:00Z", "customer": customer},
    }
    with engine.begin() as tx:
        event = stored("c2s", leads_service.CREATE, payload, T0)
        assert leads_service.apply(event, tx, tenant) is Outcome.DONE
        return int(tx.execute(select(leads.c.id).where(leads.c.c2s_lead_id == c2s_id)).scalar_one())


def enriched(engine: Engine, lead_id: int, **values: Any) -> None:
    """What the enrichment pipeline would have left on the lead."""
    with engine.begin() as tx:
        tx.execute(update(leads).where(leads.c.id == lead_id).values(**values))


PERSON = {
    "name": "Maria Test",
    "document": "12345678909",
    "email": "maria.test@example.com",
    "mobile": "+5511987654321",
    "birth_date": "1990-04-01",
    "monthly_income": 8500,
    "contacts": [{"kind": "work", "value": "maria@acme-corp.example"}],
}
STEPS = [
    {"step": "identity", "ms": 12.5, "ok": True},
    {"step": "person", "ms": 30.1, "ok": True},
    {"step": "message", "ms": 8.0, "ok": True},
]


def tendlc_state(engine: Engine) -> None:
    """10DLC: acme has a verified brand with a campaign two carriers reviewed (and one MNO id
    not in the carrier table) and a vetting, and a registered brand; globex an unverified
    brand with a campaign a carrier rejected."""
    tcr(
        engine,
        "acme",
        "BRAND_IDENTITY_STATUS_UPDATE",
        T0,
        brandId="BACME01",
        brandIdentityStatus="VERIFIED",
        trustScore=85,
        displayName="Acme",
        entityType="PRIVATE_PROFIT",
        vertical="RETAIL",
    )
    tcr(
        engine,
        "acme",
        "MNO_CAMPAIGN_OPERATION_APPROVED",
        T0 + HOUR,
        brandId="BACME01",
        campaignId="CACME01",
        mnoStatuses={"10017": "APPROVED", "10035": "REVIEW", "20001": "APPROVED"},
    )
    tcr(
        engine,
        "acme",
        "EVP_REPORT_SCORE",
        T0 + HOUR,
        brandId="BACME01",
        vettingId="VET1",
        evpId="AEGIS",
        vettingClass="STANDARD",
        vettingScore=80,
    )
    tcr(engine, "acme", "BRAND_ADD", T0 + 2 * HOUR, brandId="BACME02", displayName="Acme Labs")
    tcr(
        engine,
        "globex",
        "BRAND_IDENTITY_STATUS_UPDATE",
        T0,
        brandId="BGLOB01",
        brandIdentityStatus="UNVERIFIED",
        displayName="Globex",
    )
    tcr(
        engine,
        "globex",
        "MNO_CAMPAIGN_OPERATION_REJECTED",
        T0 + HOUR,
        brandId="BGLOB01",
        campaignId="CGLOB01",
        mnoId="10999",
        rejectionReason="opt-in flow unclear",
    )


def whatsapp_state(engine: Engine, settings: Settings) -> tuple[int, int]:
    """WhatsApp: acme's order_update (5001) went RED (an alert), promo (5002) was PAUSED (its
    campaign paused), welcome (5003) is fine; globex's notice (6001) was DISABLED (an alert,
    its campaign paused). The alert rules' evaluation (the scheduled job) then opened the
    alerts. Returns the campaigns: (acme's "Spring sale", globex's "Globex launch")."""
    for meta_id, name in [("5001", "order_update"), ("5002", "promo"), ("5003", "welcome")]:
        meta(engine, "acme", "111", meta_id, T0, event="APPROVED", message_template_name=name)
    meta(
        engine,
        "acme",
        "111",
        "5003",
        T0 + HOUR,
        previous_quality_score="UNKNOWN",
        new_quality_score="GREEN",
    )
    meta(
        engine,
        "acme",
        "111",
        "5001",
        T0 + HOUR,
        previous_quality_score="GREEN",
        new_quality_score="RED",
    )
    acme_campaign = campaign(engine, "5002", "Spring sale")
    meta(engine, "acme", "111", "5002", T0 + HOUR, event="PAUSED", reason="low quality")
    meta(engine, "globex", "222", "6001", T0, event="APPROVED", message_template_name="notice")
    globex_campaign = campaign(engine, "6001", "Globex launch")
    meta(engine, "globex", "222", "6001", T0 + HOUR, event="DISABLED", reason="policy")
    AlertEvaluator(engine, settings).run()
    return acme_campaign, globex_campaign


def leads_state(engine: Engine) -> tuple[int, int, int]:
    """Leads: an enriched one and a failed one for acme, one pending for globex. Returns
    their ids in that order."""
    acme_lead = lead(
        engine,
        "acme",
        "c2s-acme-1",
        name="Maria Test",
        email="maria.test@example.com",
        phone="11987654321",
    )
    enriched(
        engine,
        acme_lead,
        enrichment_status="done",
        document="12345678909",
        enrichment_data=PERSON,
        enrichment_steps=STEPS,
        enrichment_attempts=1,
        enrichment_finished_at=T0,
    )
    failed = lead(
        engine,
        "acme",
        "c2s-acme-2",
        name="Maria Nova",
        email="maria.nova@example.com",
        phone="11912345678",
    )
    enriched(
        engine,
        failed,
        enrichment_status="failed",
        enrichment_attempts=5,
        enrichment_error="identity: unexpected ValueError: no answer for "
        "maria.nova@example.com or +55 11 91234-5678",
    )
    globex_lead = lead(
        engine,
        "globex",
        "c2s-globex-1",
        name="John Smith",
        email="john@globex.example.com",
        phone="+1 650 253 0000",
    )
    return acme_lead, failed, globex_lead
