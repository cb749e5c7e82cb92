"""HubSpot webhooks: a JSON array of up to 100 events, each its own event (`eventId`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Connection

from hookyard.domain.crm import service as crm
from hookyard.providers.base import (
    Adapter,
    Outcome,
    ParsedEvent,
    ParseError,
    SourceConfig,
    StoredEvent,
    Verifier,
    WebhookRequest,
    load_json,
)
from hookyard.providers.verify import HubSpotSignature


class HubSpotConfig(SourceConfig):
    secret_fields = ("client_secret",)
    client_secret: str
    # v3 only: HubSpot signs every request with it. v1 and v2 carry no timestamp, so a
    # captured request could be sent again for ever; allow them only for an old app.
    signature_versions: tuple[Literal["v3", "v2", "v1"], ...] = ("v3",)
    max_age_seconds: int = 300


def _millis(value: object) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**14:
        return datetime.fromtimestamp(value / 1000, UTC)
    return None


class HubSpotAdapter(Adapter):
    provider = "hubspot"
    max_events = 100  # HubSpot sends at most 100 events in one request
    config_model = HubSpotConfig
    config: HubSpotConfig

    def build_verifiers(self) -> Sequence[Verifier]:
        c = self.config
        return [
            HubSpotSignature(
                c.secrets("client_secret"),
                c.signature_versions,
                c.max_age_seconds,
                setting=f"client_secret of source {c.name!r}",
            )
        ]

    def parse(self, request: WebhookRequest) -> list[ParsedEvent]:
        body = load_json(request.body)
        if not isinstance(body, list) or not body:
            raise ParseError("HubSpot sends a non-empty JSON array of events")
        events = []
        for item in body:
            if not isinstance(item, dict):
                raise ParseError("each HubSpot event must be a JSON object")
            event_id = item.get("eventId")
            kind = item.get("subscriptionType")
            if not isinstance(event_id, int | str) or isinstance(event_id, bool):
                raise ParseError("HubSpot event without an eventId")
            if not isinstance(kind, str) or not kind:
                raise ParseError("HubSpot event without a subscriptionType")
            object_id = item.get("objectId")
            object_type = kind.partition(".")[0]
            entity = f"{object_type}:{object_id}" if object_id is not None else None
            events.append(
                ParsedEvent(
                    kind, f"event:{event_id}", item, entity, _millis(item.get("occurredAt"))
                )
            )
        return events

    def handle(self, event: StoredEvent, tx: Connection) -> Outcome:
        # Company property changes and deletions, by the CRM field rules; others are ignored.
        return crm.apply(event, tx, self.config.tenant)

    def handle_batch(self, events: Sequence[StoredEvent], tx: Connection) -> dict[int, Outcome]:
        return crm.apply_batch(events, tx, self.config.tenant)
