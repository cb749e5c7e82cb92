"""Each provider's real example payloads (tests/payloads, from shared/providers) become these
events: type, dedup key, entity key and provider time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hookyard.providers.base import ParseError, WebhookRequest
from hookyard.sources import SourceSet

PAYLOADS = Path(__file__).parent / "payloads"


def parse(sources: SourceSet, name: str, body: bytes):  # type: ignore[no-untyped-def]
    source = sources.by_name()[name]
    return source.adapter.parse(
        WebhookRequest("POST", "http://x" + source.path, source.path, {}, {}, body)
    )


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def test_hubspot_property_change(sources: SourceSet) -> None:
    [event] = parse(sources, "hubspot", payload("hubspot_company_property_change.json"))
    assert event.event_type == "company.propertyChange"
    assert event.dedup_key == "event:1887716504"
    assert event.entity_key == "company:18442069817"
    assert event.provider_ts == datetime.fromtimestamp(1763800000, UTC)
    assert event.payload["propertyValue"] == "Ringer Network Solutions"
    assert not event.payload_is_body


@pytest.mark.parametrize(
    "name, field, entity, ts",
    [
        (
            "meta_template_status.json",
            "message_template_status_update",
            "template:594425479261596",
            1763800000,
        ),
        (
            "meta_template_quality.json",
            "message_template_quality_update",
            "template:594425479261596",
            1763800500,
        ),
    ],
)
def test_meta_template_changes(
    sources: SourceSet, name: str, field: str, entity: str, ts: int
) -> None:
    [event] = parse(sources, "meta", payload(name))
    assert event.event_type == field
    assert event.entity_key == entity
    assert event.provider_ts == datetime.fromtimestamp(ts, UTC)
    assert event.payload["waba_id"] == "102290129340398"
    assert event.dedup_key.startswith("sha256:")


def test_meta_request_with_several_changes_is_several_events(sources: SourceSet) -> None:
    body = json.loads(payload("meta_template_status.json"))
    quality = json.loads(payload("meta_template_quality.json"))
    body["entry"][0]["changes"] += quality["entry"][0]["changes"]
    body["entry"].append(
        {
            "id": "999",
            "time": 1763800900,
            "changes": [{"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}],
        }
    )
    events = parse(sources, "meta", json.dumps(body).encode())
    assert [e.event_type for e in events] == [
        "message_template_status_update",
        "message_template_quality_update",
        "account_update",
    ]
    assert events[2].entity_key == "waba:999"
    assert len({e.dedup_key for e in events}) == 3
    # The same change regrouped into another request keeps its key (Meta has no event id).
    [alone] = parse(sources, "meta", payload("meta_template_status.json"))
    assert alone.dedup_key == events[0].dedup_key


def test_c2s_lead(sources: SourceSet) -> None:
    [event] = parse(sources, "c2s", payload("c2s_lead_created.json"))
    assert event.event_type == "on_create_lead"
    assert event.dedup_key == "lead:c2s-lead-8a1f:on_create_lead:2025-11-21T04:35:00Z"
    assert event.entity_key == "lead:c2s-lead-8a1f"
    assert event.provider_ts == datetime(2025, 11, 21, 4, 35, tzinfo=UTC)
    assert event.payload_is_body


@pytest.mark.parametrize(
    "name, kind, entity",
    [
        ("tcr_brand_identity_status.json", "BRAND_IDENTITY_STATUS_UPDATE", "brand:BBPD732"),
        ("tcr_mno_campaign_approved.json", "MNO_CAMPAIGN_OPERATION_APPROVED", "campaign:CQ4ZKDM"),
    ],
)
def test_tcr_events(sources: SourceSet, name: str, kind: str, entity: str) -> None:
    [event] = parse(sources, "tcr-open", payload(name))
    assert (event.event_type, event.entity_key) == (kind, entity)
    assert event.provider_ts is not None and event.provider_ts.tzinfo is not None
    # Key order and whitespace do not change the key: it is the content that counts.
    reordered = json.dumps(dict(reversed(list(json.loads(payload(name)).items())))).encode()
    [again] = parse(sources, "tcr-open", reordered)
    assert again.dedup_key == event.dedup_key


@pytest.mark.parametrize(
    "name, body, message",
    [
        ("hubspot", b"{}", "non-empty JSON array"),
        ("hubspot", b"[]", "non-empty JSON array"),
        ("hubspot", b'[{"subscriptionType": "company.creation"}]', "eventId"),
        ("meta", b'{"object": "whatsapp_business_account"}', "entry"),
        ("meta", b'{"entry": [{"changes": [{"value": {}}]}]}', "field"),
        ("c2s", b'{"hook_action": "on_create_lead"}', "'id'"),
        ("c2s", b"[1]", "JSON object"),
        ("tcr-open", b'{"brandId": "B1"}', "eventType"),
        ("demo", b"\xff\xfe{", "JSON"),
    ],
)
def test_malformed_bodies_are_parse_errors(
    sources: SourceSet, name: str, body: bytes, message: str
) -> None:
    with pytest.raises(ParseError, match=message):
        parse(sources, name, body)
