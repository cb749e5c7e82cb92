"""What the management API shows of events."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class EventSummary(BaseModel):
    id: int
    source: str
    provider: str
    tenant: str | None
    event_type: str
    dedup_key: str
    entity_key: str | None
    provider_ts: datetime | None
    status: str
    attempts: int
    origin: str
    replay_count: int
    next_attempt_at: datetime
    received_at: datetime
    processed_at: datetime | None
    last_error: str | None


class EventDetail(EventSummary):
    headers: dict[str, str]
    payload: Any
    body: str = Field(description="the raw body: UTF-8 text, or base64 when body_encoding says so")
    body_encoding: str
    last_traceback: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> EventDetail:
        raw: bytes = row["body"]
        try:
            body, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            body, encoding = base64.b64encode(raw).decode(), "base64"
        return cls.model_validate({**row, "body": body, "body_encoding": encoding})


class EventPage(BaseModel):
    items: list[EventSummary]
    next_cursor: int | None = Field(description="pass as `before_id` for the next page")


class ReplayFilter(BaseModel):
    source: str | None = None
    provider: str | None = None
    event_type: str | None = None
    status: str | None = "dead"
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(1000, ge=1, le=10_000)


class ReplayResult(BaseModel):
    replayed: int


class SourceInfo(BaseModel):
    name: str
    provider: str
    path: str
    tenant: str | None


class RejectedInfo(BaseModel):
    id: int
    source: str | None
    path: str
    status_code: int
    reason: str
    client_ip: str | None
    received_at: datetime
