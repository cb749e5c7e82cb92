"""Realistic, correctly signed deliveries for each provider, as the provider would send them.

Used by `hookyard simulate`, by the fake provider platforms (`testing/fakes`), by the tests and
by the benchmark. This module is the one place that knows each provider's webhook payload
shape and how it signs: the `*_payload`/`*_change`/`*_event` builders make the JSON, the
`*_delivery` functions sign it for a URL. The payload shapes follow the examples in the
providers' reference (`shared/providers/*.json`); the signing is the same code the verifiers
check against (`providers/signing.py`), and the tests cross-check it with the providers' own
SDKs where one exists.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hookyard.domain.tendlc.catalogue import CATALOGUE
from hookyard.providers import signing
from hookyard.providers.base import Source
from hookyard.providers.c2s import C2SConfig
from hookyard.providers.generic import GenericConfig
from hookyard.providers.hubspot import HubSpotConfig
from hookyard.providers.meta import MetaConfig
from hookyard.providers.tcr import TCRConfig

DEFAULT_EVENTS = {
    "generic": "invoice.paid",
    "hubspot": "company.propertyChange",
    "meta": "message_template_status_update",
    "c2s": "on_create_lead",
    "tcr": "BRAND_IDENTITY_STATUS_UPDATE",
}

USER_AGENT = "hookyard-simulator"

# The ids of the reference examples (shared/providers/*.json).
HUBSPOT_PORTAL_ID = 44974642
HUBSPOT_APP_ID = 1160452
HUBSPOT_SUBSCRIPTION_ID = 2174903
META_WABA_ID = "102290129340398"

META_STATUS_FIELD = "message_template_status_update"
META_QUALITY_FIELD = "message_template_quality_update"


@dataclass(frozen=True)
class Delivery:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _json_headers(user_agent: str) -> dict[str, str]:
    return {"content-type": "application/json", "user-agent": user_agent}


def iso_now() -> str:
    """The current UTC time as ISO-8601 with milliseconds and a `Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- HubSpot --------------------------------------------------------------------------------

_hubspot_sequence = itertools.count()


def hubspot_event_id() -> int:
    """A fresh event id: milliseconds since the epoch times 1000 plus a process-wide counter,
    so ids are unique within a process and grow with time like HubSpot's."""
    return int(time.time() * 1000) * 1000 + next(_hubspot_sequence) % 1000


def hubspot_event(
    subscription_type: str,
    object_id: int | str,
    *,
    event_id: int | None = None,
    occurred_at: int | None = None,
    portal_id: int = HUBSPOT_PORTAL_ID,
    app_id: int = HUBSPOT_APP_ID,
    subscription_id: int = HUBSPOT_SUBSCRIPTION_ID,
    attempt_number: int = 0,
    change_source: str | None = "CRM_UI",
    source_id: str | None = None,
    property_name: str | None = None,
    property_value: str | None = None,
) -> dict[str, Any]:
    """One item of HubSpot's webhook array; `occurred_at` in milliseconds since the epoch."""
    item: dict[str, Any] = {
        "eventId": hubspot_event_id() if event_id is None else event_id,
        "subscriptionId": subscription_id,
        "portalId": portal_id,
        "appId": app_id,
        "occurredAt": int(time.time() * 1000) if occurred_at is None else occurred_at,
        "subscriptionType": subscription_type,
        "attemptNumber": attempt_number,
        "objectId": int(object_id) if isinstance(object_id, str) else object_id,
    }
    if property_name is not None:
        item |= {"propertyName": property_name, "propertyValue": property_value}
    if change_source is not None:
        item["changeSource"] = change_source
    if source_id is not None:
        item["sourceId"] = source_id
    return item


def hubspot_property_change(
    object_id: int | str,
    property_name: str,
    property_value: str,
    *,
    object_type: str = "company",
    **fields: Any,
) -> dict[str, Any]:
    """A `company.propertyChange` item (`fields`: the keywords of `hubspot_event`)."""
    return hubspot_event(
        f"{object_type}.propertyChange",
        object_id,
        property_name=property_name,
        property_value=property_value,
        **fields,
    )


def hubspot_delivery(
    client_secret: str,
    url: str,
    events: Sequence[Mapping[str, Any]],
    *,
    timestamp_ms: int | None = None,
    user_agent: str = USER_AGENT,
) -> Delivery:
    """A POST of `events` (HubSpot sends up to 100 in one array) signed with signature v3."""
    body = _dumps(list(events))
    ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    headers = _json_headers(user_agent) | {
        "x-hubspot-signature-v3": signing.hubspot_v3(client_secret, "POST", url, body, ts),
        "x-hubspot-request-timestamp": ts,
    }
    return Delivery("POST", url, headers, body)


# -- Meta WhatsApp --------------------------------------------------------------------------


def meta_status_change(
    template_id: int | str,
    name: str,
    language: str,
    event: str,
    *,
    reason: str | None = "NONE",
    disable_info: Mapping[str, Any] | None = None,
    other_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A `message_template_status_update` change (`{"field", "value"}` of `entry[].changes`)."""
    value: dict[str, Any] = {"event": event}
    if reason is not None:
        value["reason"] = reason
    value |= {
        "message_template_id": template_id,
        "message_template_name": name,
        "message_template_language": language,
    }
    if disable_info is not None:
        value["disable_info"] = dict(disable_info)
    if other_info is not None:
        value["other_info"] = dict(other_info)
    return {"field": META_STATUS_FIELD, "value": value}


def meta_quality_change(
    template_id: int | str, name: str, language: str, previous: str, new: str
) -> dict[str, Any]:
    """A `message_template_quality_update` change."""
    value = {
        "previous_quality_score": previous,
        "new_quality_score": new,
        "message_template_id": template_id,
        "message_template_name": name,
        "message_template_language": language,
    }
    return {"field": META_QUALITY_FIELD, "value": value}


def meta_envelope(
    changes: Sequence[Mapping[str, Any]], *, waba_id: str = META_WABA_ID, sent: int | None = None
) -> dict[str, Any]:
    """Meta's webhook body: one entry of the business account carrying `changes`."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": waba_id,
                "time": int(time.time()) if sent is None else sent,
                "changes": [dict(c) for c in changes],
            }
        ],
    }


def meta_delivery(
    app_secret: str, url: str, envelope: Mapping[str, Any], *, user_agent: str = USER_AGENT
) -> Delivery:
    """A POST of `envelope` signed with `X-Hub-Signature-256`."""
    body = _dumps(envelope)
    headers = _json_headers(user_agent)
    headers["x-hub-signature-256"] = signing.meta_signature(app_secret, body)
    return Delivery("POST", url, headers, body)


# -- TCR ------------------------------------------------------------------------------------


def tcr_category(event_type: str) -> str:
    """The category TCR files `event_type` under (the catalogue's; a guess for unknown ones)."""
    if (kind := CATALOGUE.get(event_type)) is not None:
        return kind.category.value
    return "CAMPAIGN" if "CAMPAIGN" in event_type else "BRAND"


def tcr_payload(
    event_type: str,
    *,
    brand_id: str | None = None,
    campaign_id: str | None = None,
    category: str | None = None,
    timestamp: str | None = None,
    mock: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """TCR's flat webhook JSON; `fields` are added as given (camelCase), None values left out."""
    payload: dict[str, Any] = {
        "eventType": event_type,
        "eventCategory": category or tcr_category(event_type),
    }
    if brand_id is not None:
        payload["brandId"] = brand_id
    if campaign_id is not None:
        payload["campaignId"] = campaign_id
    payload |= {k: v for k, v in fields.items() if v is not None}
    payload["timestamp"] = timestamp or iso_now()
    payload["mock"] = mock
    return payload


def with_query_token(url: str, token: str) -> str:
    """`url` with `token=` added to its query (TCR's endpoints carry their secret so)."""
    parts = urlsplit(url)
    query = f"{parts.query}&token={token}" if parts.query else f"token={token}"
    return urlunsplit(parts._replace(query=query))


def tcr_delivery(
    url: str, payload: Mapping[str, Any], token: str | None = None, *, user_agent: str = USER_AGENT
) -> Delivery:
    """A POST of `payload` to `url` as given (TCR does not sign); `token` adds `?token=`."""
    if token:
        url = with_query_token(url, token)
    return Delivery("POST", url, _json_headers(user_agent), _dumps(payload))


# -- C2S ------------------------------------------------------------------------------------


def c2s_payload(
    lead_id: str,
    hook_action: str,
    *,
    updated_at: str | None = None,
    customer: Mapping[str, Any] | None = None,
    **attributes: Any,
) -> dict[str, Any]:
    """Contact2Sale's lead webhook JSON; `attributes` are added to its `attributes`."""
    attrs: dict[str, Any] = {
        "updated_at": updated_at or datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "customer": dict(customer)
        if customer is not None
        else {"name": "Maria Test", "email": "maria.test@example.com", "phone": "11987654321"},
    }
    attrs |= attributes
    return {"id": lead_id, "hook_action": hook_action, "attributes": attrs}


def c2s_delivery(
    url: str, payload: Mapping[str, Any], token: str, *, user_agent: str = USER_AGENT
) -> Delivery:
    """A POST of `payload` carrying the shared secret in `X-Webhook-Token`."""
    headers = _json_headers(user_agent)
    headers["x-webhook-token"] = token
    return Delivery("POST", url, headers, _dumps(payload))


# -- one delivery of a configured source ----------------------------------------------------


def build_delivery(
    source: Source, event: str | None, base_url: str, seq: int = 0, *, padding: int = 0
) -> Delivery:
    """One delivery of `event` to `source`; `seq` makes it unique, `padding` adds bytes."""
    config = source.config
    event = event or DEFAULT_EVENTS[config.provider]
    url = base_url.rstrip("/") + config.path
    unique = f"{seq}-{uuid.uuid4().hex[:12]}"
    filler = "x" * padding
    if isinstance(config, GenericConfig):
        return _generic_delivery(config, event, url, seq, unique, filler)
    if isinstance(config, HubSpotConfig):
        now_ms = int(time.time() * 1000)
        item = hubspot_event(
            event,
            18442069817 + seq,
            event_id=now_ms * 1000 + seq % 1000,
            occurred_at=now_ms,
        )
        if event.endswith("propertyChange"):
            item |= {
                "propertyName": "name",
                "propertyValue": f"Ringer Network Solutions {seq}{filler}",
            }
        return hubspot_delivery(config.client_secret, url, [item], timestamp_ms=now_ms)
    if isinstance(config, MetaConfig):
        template_id, name = 594425479261596 + seq, f"order_update{filler}"
        if event == META_QUALITY_FIELD:
            change = meta_quality_change(template_id, name, "en_US", "GREEN", "RED")
        else:
            change = meta_status_change(template_id, name, "en_US", "APPROVED")
            change["field"] = event
        envelope = meta_envelope([change], sent=int(time.time()) + seq)
        return meta_delivery(config.app_secret, url, envelope)
    if isinstance(config, C2SConfig):
        payload = c2s_payload(f"c2s-lead-{unique}", event, notes=filler)
        return c2s_delivery(url, payload, config.token)
    if isinstance(config, TCRConfig):
        fields: dict[str, Any]
        if "CAMPAIGN" in event:
            fields = {"campaignId": f"C{unique[:6].upper()}", "mnoStatuses": {"10035": "APPROVED"}}
        else:
            fields = {"brandIdentityStatus": "VERIFIED", "trustScore": 85}
        if filler:
            fields["note"] = filler
        payload = tcr_payload(
            event,
            brand_id=f"B{unique[:6].upper()}",
            timestamp=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            **fields,
        )
        return tcr_delivery(url, payload, config.token)
    raise ValueError(f"no simulator for provider {config.provider!r}")


def _generic_delivery(
    config: GenericConfig, event: str, url: str, seq: int, unique: str, filler: str
) -> Delivery:
    headers = _json_headers(USER_AGENT)
    body = _dumps({"type": event, "id": f"evt_{unique}", "data": {"seq": seq, "note": filler}})
    msg_id, ts = f"msg_{unique}", str(int(time.time()))
    if config.scheme == "standard":
        headers |= {
            "webhook-id": msg_id,
            "webhook-timestamp": ts,
            "webhook-signature": signing.standard_webhooks_signature(
                config.secret, msg_id, ts, body
            ),
        }
    elif config.scheme == "hmac":
        digest = signing.hmac_sha256(config.secret.encode(), body)
        signature = digest.hex() if config.encoding == "hex" else base64.b64encode(digest).decode()
        headers[(config.header or "x-signature").lower()] = config.prefix + signature
    else:
        headers[(config.header or "x-webhook-token").lower()] = config.secret
    return Delivery("POST", url, headers, body)
