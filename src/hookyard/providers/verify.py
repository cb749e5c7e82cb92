"""Stackable request verifiers. Each names what it checks and, on failure, what to fix.

Each takes the source's secrets, newest first: while a secret is rotated, a request signed
with the old one still passes (`client_secret = ["new", "old"]`). Every comparison is in
constant time. An empty configured secret never verifies anything: with no other secret, the
source is treated as disabled, because an empty HMAC key or token would accept whatever an
attacker sends.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hookyard.providers import signing
from hookyard.providers.base import WebhookRequest


def _disabled(setting: str) -> str:
    return f"source is disabled: its secret is empty (set {setting})"


Secrets = str | Sequence[str]  # one secret, or several newest first (a rotation)


def _usable(secrets: Secrets) -> list[str]:
    """The secrets that can verify something (an empty one never does)."""
    if isinstance(secrets, str):
        secrets = (secrets,)
    return [secret for secret in secrets if secret]


def _matches(sent: str, expected: Sequence[str]) -> bool:
    # Every candidate is compared (in constant time each), so the time taken says nothing
    # about which secret, if any, signed the request.
    found = False
    for value in expected:
        found |= signing.constant_time_equal(sent, value)
    return found


def _parse_timestamp(raw: str, *, milliseconds: bool) -> float | None:
    # ASCII digits only (str.isdigit() also takes "¹"), and few enough to be a time.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 16):
        return None
    value = int(raw)
    return value / 1000 if milliseconds else float(value)


@dataclass(frozen=True, slots=True)
class StandardWebhooks:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64> …` (Standard Webhooks)."""

    secrets: Secrets
    setting: str = "secret"
    tolerance_seconds: int = 300
    clock: Callable[[], float] = time.time
    secret_headers: tuple[str, ...] = ("webhook-signature",)

    def verify(self, request: WebhookRequest) -> str | None:
        keys = []
        for secret in _usable(self.secrets):
            try:
                key = signing.standard_webhooks_key(secret)
            except (binascii.Error, ValueError):
                return f"source secret is not a valid whsec_ base64 key (fix {self.setting})"
            if key:  # "whsec_" alone (an unset variable after it) is an empty key
                keys.append(key)
        if not keys:
            return _disabled(self.setting)
        msg_id = request.headers.get("webhook-id")
        timestamp = request.headers.get("webhook-timestamp")
        signatures = request.headers.get("webhook-signature")
        if not msg_id or not timestamp or not signatures:
            return "missing webhook-id, webhook-timestamp or webhook-signature header"
        sent_at = _parse_timestamp(timestamp, milliseconds=False)
        if sent_at is None:
            return "webhook-timestamp is not an integer"
        if abs(self.clock() - sent_at) > self.tolerance_seconds:
            return "webhook-timestamp outside the tolerance window"
        signed = f"{msg_id}.{timestamp}.".encode() + request.body
        expected = [base64.b64encode(signing.hmac_sha256(k, signed)).decode() for k in keys]
        for candidate in signatures.split():
            version, _, value = candidate.partition(",")
            if version == "v1" and _matches(value, expected):
                return None
        return "webhook-signature does not match"


@dataclass(frozen=True, slots=True)
class HmacHeader:
    """A hex or base64 HMAC-SHA256 of the raw body in one header, with an optional prefix."""

    secrets: Secrets
    header: str = "x-signature"
    prefix: str = ""
    encoding: str = "hex"
    setting: str = "secret"

    @property
    def secret_headers(self) -> tuple[str, ...]:
        return (self.header,)

    def verify(self, request: WebhookRequest) -> str | None:
        secrets = _usable(self.secrets)
        if not secrets:
            return _disabled(self.setting)
        sent = request.headers.get(self.header)
        if not sent:
            return f"missing {self.header} header"
        if self.prefix and not sent.startswith(self.prefix):
            return f"{self.header} must start with {self.prefix!r}"
        expected = []
        for secret in secrets:
            digest = signing.hmac_sha256(secret.encode(), request.body)
            expected.append(
                digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()
            )
        if not _matches(sent[len(self.prefix) :], expected):
            return f"{self.header} does not match"
        return None


@dataclass(frozen=True, slots=True)
class SharedToken:
    """A shared secret in a header, a basic-auth password or a `?token=` query parameter."""

    tokens: Secrets
    header: str | None = None
    basic_auth: bool = False
    query_param: str | None = None
    setting: str = "token"

    @property
    def secret_headers(self) -> tuple[str, ...]:
        # `authorization` and the query string are never stored anyway (ingress/app.py).
        return (self.header,) if self.header else ()

    def verify(self, request: WebhookRequest) -> str | None:
        tokens = _usable(self.tokens)
        if not tokens:
            return _disabled(self.setting)
        for candidate in self._candidates(request):
            if _matches(candidate, tokens):
                return None
        places = [
            p
            for p in (
                self.header and f"{self.header} header",
                self.basic_auth and "basic-auth password",
                self.query_param and f"?{self.query_param}=",
            )
            if p
        ]
        return f"missing or wrong token (expected in {' or '.join(places)})"

    def _candidates(self, request: WebhookRequest) -> list[str]:
        found: list[str] = []
        if self.header and (value := request.headers.get(self.header)):
            found.append(value)
        if self.basic_auth:
            auth = request.headers.get("authorization", "")
            scheme, _, encoded = auth.partition(" ")
            if scheme.lower() == "basic":
                try:
                    decoded = base64.b64decode(encoded, validate=True).decode()
                except (binascii.Error, UnicodeDecodeError):
                    decoded = ""
                found.append(decoded.partition(":")[2])
        if self.query_param and (value := request.query.get(self.query_param)):
            found.append(value)
        return found


@dataclass(frozen=True, slots=True)
class HubSpotSignature:
    """HubSpot v3 (HMAC, 5-minute window); the older v2/v1, which carry no time and so can be
    replayed for ever, only where the source allows them."""

    secrets: Secrets
    versions: Sequence[str] = ("v3",)
    max_age_seconds: int = 300
    setting: str = "client_secret"
    clock: Callable[[], float] = time.time
    secret_headers: tuple[str, ...] = ("x-hubspot-signature-v3", "x-hubspot-signature")

    def verify(self, request: WebhookRequest) -> str | None:
        secrets = _usable(self.secrets)
        if not secrets:
            return _disabled(self.setting)
        headers = request.headers
        if (v3 := headers.get("x-hubspot-signature-v3")) is not None:
            if "v3" not in self.versions:
                return "v3 signatures are not accepted by this source"
            timestamp = headers.get("x-hubspot-request-timestamp", "")
            sent_at = _parse_timestamp(timestamp, milliseconds=True)
            if sent_at is None:
                return "missing or invalid X-HubSpot-Request-Timestamp"
            if abs(self.clock() - sent_at) > self.max_age_seconds:
                return "X-HubSpot-Request-Timestamp outside the 5-minute window"
            expected = [
                signing.hubspot_v3(secret, request.method, request.url, request.body, timestamp)
                for secret in secrets
            ]
            return None if _matches(v3, expected) else "v3 signature mismatch"
        sent = headers.get("x-hubspot-signature")
        if sent is None:
            return "missing X-HubSpot-Signature-v3 header"
        version = headers.get("x-hubspot-signature-version", "v1").lower()
        if version not in self.versions or version not in ("v1", "v2"):
            return (
                f"signature version {version!r} is not accepted by this source (HubSpot signs"
                " every request with v3; allow older ones with signature_versions)"
            )
        if version == "v2":
            expected = [
                signing.hubspot_v2(secret, request.method, request.url, request.body)
                for secret in secrets
            ]
        else:
            expected = [signing.hubspot_v1(secret, request.body) for secret in secrets]
        if not _matches(sent, expected):
            return f"{version} signature mismatch"
        return None


@dataclass(frozen=True, slots=True)
class MetaSignature:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>`."""

    app_secrets: Secrets
    setting: str = "app_secret"
    secret_headers: tuple[str, ...] = ("x-hub-signature-256", "x-hub-signature")

    def verify(self, request: WebhookRequest) -> str | None:
        secrets = _usable(self.app_secrets)
        if not secrets:
            return _disabled(self.setting)
        sent = request.headers.get("x-hub-signature-256")
        if not sent:
            return "missing X-Hub-Signature-256 header"
        expected = [signing.meta_signature(secret, request.body) for secret in secrets]
        if not _matches(sent, expected):
            return "X-Hub-Signature-256 does not match"
        return None


@dataclass(frozen=True, slots=True)
class IpAllowList:
    networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
    secret_headers: tuple[str, ...] = ()

    def verify(self, request: WebhookRequest) -> str | None:
        try:
            address = ipaddress.ip_address(request.client_ip or "")
        except ValueError:
            return "client address unknown; source has an IP allow-list"
        if any(address in network for network in self.networks):
            return None
        return "client address not in the source's allow-list"
