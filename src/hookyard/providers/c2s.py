"""Contact2Sale (C2S) leads, authenticated with `X-Webhook-Token`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from hookyard.domain.leads import service as leads
from hookyard.providers.base import (
    Adapter,
    Outcome,
    ParsedEvent,
    ParseError,
    SourceConfig,
    StoredEvent,
    Verifier,
    WebhookRequest,
    canonical_json,
    load_json,
)
from hookyard.providers.verify import SharedToken


class C2SConfig(SourceConfig):
    secret_fields = ("token",)
    token: str


def parse_iso(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


class C2SAdapter(Adapter):
    provider = "c2s"
    config_model = C2SConfig
    config: C2SConfig

    def build_verifiers(self) -> Sequence[Verifier]:
        return [
            SharedToken(
                self.config.secrets("token"),
                header="x-webhook-token",
                setting=f"token of source {self.config.name!r}",
            )
        ]

    def parse(self, request: WebhookRequest) -> list[ParsedEvent]:
        body = load_json(request.body)
        if not isinstance(body, dict):
            raise ParseError("C2S sends a JSON object")
        lead_id, action = body.get("id"), body.get("hook_action")
        if not isinstance(lead_id, str | int) or isinstance(lead_id, bool) or not str(lead_id):
            raise ParseError("C2S lead without an 'id'")
        if not isinstance(action, str) or not action:
            raise ParseError("C2S lead without a 'hook_action'")
        attributes = body.get("attributes")
        updated = attributes.get("updated_at") if isinstance(attributes, dict) else None
        stamp = updated if isinstance(updated, str) else canonical_json(updated)
        key = f"lead:{lead_id}:{action}:{stamp}"
        return [
            ParsedEvent(
                action,
                key,
                body,
                f"lead:{lead_id}",
                parse_iso(updated),
                payload_is_body=True,
            )
        ]

    def handle(self, event: StoredEvent, tx: Connection) -> Outcome:
        # on_create_lead, on_update_lead, on_close_lead; any other action is stored and ignored.
        return leads.apply(event, tx, self.config.tenant)

    def handle_batch(self, events: Sequence[StoredEvent], tx: Connection) -> dict[int, Outcome]:
        return leads.apply_batch(events, tx, self.config.tenant)
