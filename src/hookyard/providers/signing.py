"""The signature schemes, as pure functions. Verifiers and the simulator share them, so the
simulator signs exactly as a provider does and the verifiers check exactly that."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import unquote

# HubSpot's v3 recipe decodes these URL-encoded characters in the URI before signing.
_HUBSPOT_DECODED = (
    "%3A",
    "%2F",
    "%3F",
    "%40",
    "%21",
    "%24",
    "%27",
    "%28",
    "%29",
    "%2A",
    "%2C",
    "%3B",
)


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def standard_webhooks_key(secret: str) -> bytes:
    """The key of a `whsec_<base64>` secret; a secret without the prefix is used as base64 too."""
    raw = secret.removeprefix("whsec_")
    return base64.b64decode(raw, validate=True)


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac_sha256(standard_webhooks_key(secret), signed)).decode()


def standard_webhooks_secret() -> str:
    """A new Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def standard_webhooks_headers(
    secret: str,
    msg_id: str,
    body: bytes,
    timestamp: float,
    content_type: str = "application/json",
) -> dict[str, str]:
    """The headers of one message hookyard sends signed (a destination's delivery, a chat
    notification, a `hookyard listen` forward): `webhook-id` (the same on every attempt of a
    message, so the receiver can drop a repeat), `webhook-timestamp` (`timestamp`, seconds
    since the epoch, at sending) and `webhook-signature` over exactly `body`."""
    stamp = str(int(timestamp))
    return {
        "content-type": content_type,
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": standard_webhooks_signature(secret, msg_id, stamp, body),
    }


def hubspot_uri(uri: str) -> str:
    for encoded in _HUBSPOT_DECODED:
        if encoded in uri or encoded.lower() in uri:
            uri = uri.replace(encoded, unquote(encoded)).replace(encoded.lower(), unquote(encoded))
    return uri


def hubspot_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.encode() + hubspot_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac_sha256(secret.encode(), message)).decode()


def hubspot_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def hubspot_v1(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def meta_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac_sha256(app_secret.encode(), body).hex()


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac_sha256(secret.encode(), body).hex()
