"""Values of the inbox: statuses, origins, and a new event as ingress hands it over."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from hookyard.providers.base import ParsedEvent, Source


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"  # failed at least once; waits for `next_attempt_at`
    DEAD = "dead"
    SUPERSEDED = "superseded"
    IGNORED = "ignored"


FINISHED = (Status.DONE, Status.IGNORED, Status.SUPERSEDED)
DUE = (Status.PENDING, Status.FAILED)  # also spelled out in db/schema.py's DUE_SQL


class Origin(StrEnum):
    WEBHOOK = "webhook"
    POLLING = "polling"
    MANUAL = "manual"
    REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event as ingest (or a reconciler) hands it to the inbox. `headers` and `body` are
    those of the request that carried it: the events of one request name the same `request`
    (any object; ingress uses the parsed request) and are adjacent, so the request is stored
    once. Without `request`, the event is its request's only one."""

    source: str
    provider: str
    tenant: str | None
    event_type: str
    dedup_key: str
    entity_key: str | None
    provider_ts: datetime | None
    headers: dict[str, str]
    body: bytes
    payload: Any  # None when the payload is the body itself
    received_at: datetime
    origin: Origin = Origin.WEBHOOK
    request: object | None = None

    @classmethod
    def of(
        cls,
        source: Source,
        parsed: ParsedEvent,
        *,
        headers: dict[str, str],
        body: bytes,
        received_at: datetime,
        origin: Origin = Origin.WEBHOOK,
        tenant: str | None = None,
        request: object | None = None,
    ) -> NewEvent:
        """The row of one event `source`'s adapter parsed from a request (`tenant`: the
        source's unless given)."""
        return cls(
            source=source.name,
            provider=source.config.provider,
            tenant=tenant or source.config.tenant,
            event_type=parsed.event_type,
            dedup_key=parsed.dedup_key,
            entity_key=parsed.entity_key,
            provider_ts=parsed.provider_ts,
            headers=headers,
            body=body,
            payload=None if parsed.payload_is_body else parsed.payload,
            received_at=received_at,
            origin=origin,
            request=request,
        )


@dataclass(frozen=True, slots=True)
class RejectedRequest:
    source: str | None
    path: str
    status_code: int
    reason: str
    client_ip: str | None
    headers: dict[str, str]
    body_excerpt: bytes
    received_at: datetime
