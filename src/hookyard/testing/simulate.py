"""Realistic, correctly signed deliveries for each provider, as the provider would send them.

Used by `hookyard simulate`, by the tests and by the benchmark. The payload shapes follow the
examples in the providers' reference (`shared/providers/*.json`); the signing is the same code
the verifiers check against (`providers/signing.py`), and the tests cross-check it with the
providers' own SDKs where one exists.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


@dataclass(frozen=True)
class Delivery:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def build_delivery(
    source: Source, event: str | None, base_url: str, seq: int = 0, *, padding: int = 0
) -> Delivery:
    """One delivery of `event` to `source`; `seq` makes it unique, `padding` adds bytes."""
    config = source.config
    event = event or DEFAULT_EVENTS[config.provider]
    url = base_url.rstrip("/") + config.path
    unique = f"{seq}-{uuid.uuid4().hex[:12]}"
    filler = "x" * padding
    headers = {"content-type": "application/json", "user-agent": "hookyard-simulator"}
    if isinstance(config, GenericConfig):
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
            signature = (
                digest.hex() if config.encoding == "hex" else base64.b64encode(digest).decode()
            )
            headers[(config.header or "x-signature").lower()] = config.prefix + signature
        else:
            headers[(config.header or "x-webhook-token").lower()] = config.secret
        return Delivery("POST", url, headers, body)
    if isinstance(config, HubSpotConfig):
        now_ms = int(time.time() * 1000)
        item: dict[str, Any] = {
            "eventId": int(time.time() * 1000) * 1000 + seq % 1000,
            "subscriptionId": 2174903,
            "portalId": 44974642,
            "appId": 1160452,
            "occurredAt": now_ms,
            "subscriptionType": event,
            "attemptNumber": 0,
            "objectId": 18442069817 + seq,
            "changeSource": "CRM_UI",
        }
        if event.endswith("propertyChange"):
            item |= {
                "propertyName": "name",
                "propertyValue": f"Ringer Network Solutions {seq}{filler}",
            }
        body = _dumps([item])
        ts = str(now_ms)
        headers |= {
            "x-hubspot-signature-v3": signing.hubspot_v3(
                config.client_secret, "POST", url, body, ts
            ),
            "x-hubspot-request-timestamp": ts,
        }
        return Delivery("POST", url, headers, body)
    if isinstance(config, MetaConfig):
        if event == "message_template_quality_update":
            value: dict[str, Any] = {"previous_quality_score": "GREEN", "new_quality_score": "RED"}
        else:
            value = {"event": "APPROVED", "reason": "NONE"}
        value |= {
            "message_template_id": 594425479261596 + seq,
            "message_template_name": f"order_update{filler}",
            "message_template_language": "en_US",
        }
        envelope = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "time": int(time.time()) + seq,
                    "changes": [{"field": event, "value": value}],
                }
            ],
        }
        body = _dumps(envelope)
        headers["x-hub-signature-256"] = signing.meta_signature(config.app_secret, body)
        return Delivery("POST", url, headers, body)
    if isinstance(config, C2SConfig):
        body = _dumps(
            {
                "id": f"c2s-lead-{unique}",
                "hook_action": event,
                "attributes": {
                    "updated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "customer": {
                        "name": "Maria Test",
                        "email": "maria.test@example.com",
                        "phone": "11987654321",
                    },
                    "notes": filler,
                },
            }
        )
        headers["x-webhook-token"] = config.token
        return Delivery("POST", url, headers, body)
    if isinstance(config, TCRConfig):
        payload: dict[str, Any] = {
            "eventType": event,
            "eventCategory": "CAMPAIGN" if "CAMPAIGN" in event else "BRAND",
            "brandId": f"B{unique[:6].upper()}",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "mock": False,
        }
        if "CAMPAIGN" in event:
            payload |= {
                "campaignId": f"C{unique[:6].upper()}",
                "mnoStatuses": {"10035": "APPROVED"},
            }
        else:
            payload |= {"brandIdentityStatus": "VERIFIED", "trustScore": 85}
        if filler:
            payload["note"] = filler
        if config.token:
            url += "?token=" + config.token
        return Delivery("POST", url, headers, _dumps(payload))
    raise ValueError(f"no simulator for provider {config.provider!r}")
