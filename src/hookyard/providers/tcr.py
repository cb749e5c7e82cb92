"""The Campaign Registry (TCR): unsigned flat JSON; optional token and IP allow-list."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from sqlalchemy import Connection

from hookyard.domain.tendlc import service as tendlc
from hookyard.providers.base import (
    Adapter,
    Outcome,
    ParsedEvent,
    ParseError,
    SourceConfig,
    StoredEvent,
    Verifier,
    WebhookRequest,
    body_hash,
    canonical_json,
    load_json,
)
from hookyard.providers.c2s import parse_iso
from hookyard.providers.verify import IpAllowList, SharedToken


class TCRConfig(SourceConfig):
    secret_fields = ("token",)
    # None: TCR does not sign, and no token is asked. A configured but empty token is a
    # mistake (an unset variable) and disables the source instead of opening it.
    token: str | None = None
    allowed_ips: tuple[str, ...] = ()


class TCRAdapter(Adapter):
    provider = "tcr"
    config_model = TCRConfig
    config: TCRConfig

    def build_verifiers(self) -> Sequence[Verifier]:
        c = self.config
        stack: list[Verifier] = []
        if c.token is not None:
            stack.append(
                SharedToken(
                    c.secrets("token"),
                    basic_auth=True,
                    query_param="token",
                    setting=f"token of source {c.name!r}",
                )
            )
        if c.allowed_ips:
            stack.append(
                IpAllowList([ipaddress.ip_network(n, strict=False) for n in c.allowed_ips])
            )
        return stack

    def parse(self, request: WebhookRequest) -> list[ParsedEvent]:
        body = load_json(request.body)
        if not isinstance(body, dict):
            raise ParseError("TCR sends a flat JSON object")
        event_type = body.get("eventType")
        if not isinstance(event_type, str) or not event_type:
            raise ParseError("TCR event without an 'eventType'")
        if (campaign := body.get("campaignId")) is not None:
            entity: str | None = f"campaign:{campaign}"
        elif (brand := body.get("brandId")) is not None:
            entity = f"brand:{brand}"
        else:
            entity = None
        # TCR has no delivery id; a redelivery repeats the same body.
        key = "sha256:" + body_hash(canonical_json(body))
        return [
            ParsedEvent(
                event_type,
                key,
                body,
                entity,
                parse_iso(body.get("timestamp")),
                payload_is_body=True,
            )
        ]

    def handle(self, event: StoredEvent, tx: Connection) -> Outcome:
        # Brands this source's events create belong to the source's tenant.
        return tendlc.apply(event, tx, self.config.tenant)

    def handle_batch(self, events: Sequence[StoredEvent], tx: Connection) -> dict[int, Outcome]:
        return tendlc.apply_batch(events, tx, self.config.tenant)
