"""Meta WhatsApp Business: GET handshake, `X-Hub-Signature-256`, `entry[].changes[]`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection

from hookyard.domain.whatsapp import service as whatsapp
from hookyard.providers import signing
from hookyard.providers.base import (
    Adapter,
    Outcome,
    ParsedEvent,
    ParseError,
    PlainResponse,
    SourceConfig,
    StoredEvent,
    Verifier,
    WebhookRequest,
    body_hash,
    canonical_json,
    load_json,
)
from hookyard.providers.verify import MetaSignature


class MetaConfig(SourceConfig):
    secret_fields = ("app_secret",)
    app_secret: str
    verify_token: str


class MetaAdapter(Adapter):
    provider = "meta"
    max_events = 1000  # changes of one request (entry[].changes[]); more are refused
    config_model = MetaConfig
    config: MetaConfig

    def build_verifiers(self) -> Sequence[Verifier]:
        c = self.config
        return [MetaSignature(c.secrets("app_secret"), f"app_secret of source {c.name!r}")]

    def handshake(self, request: WebhookRequest) -> PlainResponse | None:
        token = self.config.verify_token
        q = request.query
        if (
            token
            and q.get("hub.mode") == "subscribe"
            and signing.constant_time_equal(q.get("hub.verify_token", ""), token)
        ):
            return PlainResponse(200, q.get("hub.challenge", "").encode())
        return PlainResponse(403, b"verify token mismatch")

    def parse(self, request: WebhookRequest) -> list[ParsedEvent]:
        body = load_json(request.body)
        if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
            raise ParseError("Meta sends an object with an 'entry' array")
        events = []
        for entry in body["entry"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
                raise ParseError("each entry needs a 'changes' array")
            waba_id = str(entry.get("id", ""))
            sent = entry.get("time")
            ts = (
                datetime.fromtimestamp(sent, UTC)
                if isinstance(sent, int) and 0 <= sent < 10**11
                else None
            )
            for change in entry["changes"]:
                if not isinstance(change, dict) or not isinstance(change.get("field"), str):
                    raise ParseError("each change needs a 'field'")
                value = change.get("value")
                template = value.get("message_template_id") if isinstance(value, dict) else None
                entity = f"template:{template}" if template is not None else f"waba:{waba_id}"
                payload = {"waba_id": waba_id, "time": sent, **change}
                # Meta has no delivery id: the change's content (with its entry) is the key,
                # so a retry that regroups changes still deduplicates.
                key = "sha256:" + body_hash(canonical_json(payload))
                events.append(ParsedEvent(change["field"], key, payload, entity, ts))
        if not events:
            raise ParseError("no changes in the request")
        return events

    def handle(self, event: StoredEvent, tx: Connection) -> Outcome:
        # Template status and quality changes; every other field is stored and ignored.
        return whatsapp.apply(event, tx, self.config.tenant)

    def handle_batch(self, events: Sequence[StoredEvent], tx: Connection) -> dict[int, Outcome]:
        return whatsapp.apply_batch(events, tx, self.config.tenant)
