"""Generic senders: Standard Webhooks, a plain HMAC header, or a shared token."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import model_validator
from sqlalchemy import Connection

from hookyard.providers.base import (
    Adapter,
    Outcome,
    ParsedEvent,
    SourceConfig,
    StoredEvent,
    Verifier,
    WebhookRequest,
    body_hash,
    load_json,
)
from hookyard.providers.verify import HmacHeader, SharedToken, StandardWebhooks

Handler = Callable[[StoredEvent, Connection], Outcome | None]


class GenericConfig(SourceConfig):
    secret_fields = ("secret",)
    scheme: Literal["standard", "hmac", "token"] = "standard"
    secret: str
    header: str | None = None  # hmac: signature header; token: token header
    prefix: str = ""  # hmac: e.g. "sha256="
    encoding: Literal["hex", "base64"] = "hex"
    # A header carrying the sender's delivery id, the dedup key (token scheme only: no HMAC of
    # the body covers a header, so under `hmac` anyone replaying a signed body with a new id
    # would make a new event; Standard Webhooks signs its own `webhook-id`).
    id_header: str | None = None
    event_type_field: str = "type"
    tolerance_seconds: int = 300
    handler: str | None = None  # "package.module:function", run inside the worker's transaction

    @model_validator(mode="after")
    def _id_header_is_signed(self) -> GenericConfig:
        if self.id_header and self.scheme != "token":
            raise ValueError(
                f"id_header is unsigned under scheme {self.scheme!r}: remove it (the dedup key"
                " is then the body's hash, or Standard Webhooks' signed webhook-id)"
            )
        return self


def load_handler(dotted: str) -> Handler:
    module_name, _, attr = dotted.partition(":")
    if not attr:
        raise ValueError(f"handler {dotted!r} must look like 'package.module:function'")
    handler: Handler = getattr(importlib.import_module(module_name), attr)
    return handler


class GenericAdapter(Adapter):
    provider = "generic"
    config_model = GenericConfig
    config: GenericConfig

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        assert isinstance(config, GenericConfig)
        self._handler = load_handler(config.handler) if config.handler else None

    def build_verifiers(self) -> Sequence[Verifier]:
        c = self.config
        setting = f"secret of source {c.name!r}"
        if c.scheme == "standard":
            return [StandardWebhooks(c.secrets("secret"), setting, c.tolerance_seconds)]
        if c.scheme == "hmac":
            return [
                HmacHeader(
                    c.secrets("secret"),
                    (c.header or "x-signature").lower(),
                    c.prefix,
                    c.encoding,
                    setting,
                )
            ]
        return [
            SharedToken(
                c.secrets("secret"), header=(c.header or "x-webhook-token").lower(), setting=setting
            )
        ]

    def parse(self, request: WebhookRequest) -> list[ParsedEvent]:
        c = self.config
        payload = load_json(request.body) if request.body.strip() else None
        event_type = "webhook"
        if isinstance(payload, dict) and isinstance(payload.get(c.event_type_field), str):
            event_type = payload[c.event_type_field] or "webhook"
        delivery_id = request.headers.get("webhook-id") if c.scheme == "standard" else None
        if c.id_header:
            delivery_id = request.headers.get(c.id_header.lower()) or delivery_id
        dedup_key = f"id:{delivery_id}" if delivery_id else f"sha256:{body_hash(request.body)}"
        provider_ts = None
        if c.scheme == "standard":
            stamp = request.headers.get("webhook-timestamp", "")
            if stamp.isascii() and stamp.isdigit() and len(stamp) <= 11:
                provider_ts = datetime.fromtimestamp(int(stamp), UTC)
        return [
            ParsedEvent(
                event_type, dedup_key, payload, provider_ts=provider_ts, payload_is_body=True
            )
        ]

    def handle(self, event: StoredEvent, tx: Connection) -> Outcome:
        if self._handler is None:
            return Outcome.DONE
        return self._handler(event, tx) or Outcome.DONE
