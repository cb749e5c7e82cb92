"""Destinations' state, their deliveries (an outbox of HTTP POSTs) and every attempt.

A destination is declared in the sources file (`[[destination]]`, config.py); its row here is
the state all processes share: the operator's switch (`state`), the circuit breaker's
(`circuit`), and the configuration last seen at start (url, tenant) for the API to show.
Migration 0020 creates exactly these tables (`tests/test_migrations.py` compares them).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from hookyard.db.schema import Id, UTCDateTime, metadata


class State(StrEnum):
    """The operator's (or the receiver's) switch. Only an active destination is sent to;
    the deliveries of a paused or disabled one wait (held), none is lost."""

    ACTIVE = "active"
    PAUSED = "paused"  # an operator paused it (pause/resume)
    DISABLED = "disabled"  # the receiver answered 410 Gone; `disabled_reason` says what


class Circuit(StrEnum):
    """The breaker: closed sends freely; open sends one probe per interval and closes on the
    first success."""

    CLOSED = "closed"
    OPEN = "open"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at (also: held while the destination is not sendable)
    SENDING = "sending"  # leased to a worker
    FAILED = "failed"  # an attempt failed; due again at next_attempt_at
    DELIVERED = "delivered"  # a 2xx answer
    DEAD = "dead"  # a 4xx refusal, or max_attempts used up: replayable


class Outcome(StrEnum):
    """What one attempt became."""

    DELIVERED = "delivered"  # 2xx
    RETRY = "retry"  # 429, 5xx, timeout, connection error: tried again after the backoff
    DEAD = "dead"  # another 4xx, or the last attempt failed
    DISABLED = "disabled"  # 410 Gone: the destination is disabled, the delivery waits
    LOST = "lost"  # our lease ran out meanwhile: another worker sends it again


DUE_STATUSES = (DeliveryStatus.PENDING.value, DeliveryStatus.FAILED.value)
DELIVERIES_DUE_SQL = text("status IN ('pending', 'failed')")


def webhook_id(delivery_id: int) -> str:
    """The `webhook-id` header of a delivery: the same on every attempt and replay, so the
    receiver dedupes on it."""
    return f"dlv_{delivery_id}"


destinations = Table(
    "destinations",
    metadata,
    Column("name", String(100), primary_key=True),
    # Written from the configuration at each start (config.py is the truth for these).
    Column("tenant", String(100), nullable=True),  # None: shared by every tenant
    Column("url", String(2000), nullable=False),
    Column("state", String(20), nullable=False),  # State
    Column("disabled_reason", Text, nullable=True),  # why it was disabled (the 410's answer)
    Column("circuit", String(20), nullable=False),  # Circuit
    Column("consecutive_failures", Integer, nullable=False),
    Column("circuit_opened_at", UTCDateTime(), nullable=True),
    # While open: the next probe is due at this time; whoever moves it forward sends it.
    Column("next_probe_at", UTCDateTime(), nullable=True),
    Column("state_changed_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# One row per (destination, event): written in the event's own ingest transaction (fanout.py),
# then sent by the workers on the one leased queue (deliver.py).
deliveries = Table(
    "destination_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "destination",
        String(100),
        ForeignKey("destinations.name", name="fk_destination_deliveries_destination"),
        nullable=False,
    ),
    Column("event_id", Id, nullable=False),  # events.id (no foreign key, like requests)
    Column("tenant", String(100), nullable=True),  # the event's at ingest
    Column("source", String(100), nullable=False),
    Column("event_type", String(200), nullable=False),
    # ordered destinations: one entity's deliveries go one at a time, in id order.
    Column("entity_key", String(300), nullable=True),
    Column("status", String(20), nullable=False),  # DeliveryStatus
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("replay_count", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),  # delivered or dead
    UniqueConstraint("destination", "event_id"),
    Index(  # a claim's rows, in its order, per destination (migration 0021)
        "ix_destination_deliveries_due",
        "destination",
        "next_attempt_at",
        "id",
        postgresql_where=DELIVERIES_DUE_SQL,
        sqlite_where=DELIVERIES_DUE_SQL,
    ),
    Index(None, "destination", "status", "id"),
    Index(None, "destination", "entity_key", "id"),
    Index(None, "event_id"),
    Index(None, "tenant", "id"),
)

# Every attempt of a delivery, as the receiver answered it (or how it failed).
attempts = Table(
    "destination_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        Id,
        ForeignKey(
            "destination_deliveries.id",
            name="fk_destination_attempts_delivery_id",
            ondelete="CASCADE",
        ),
        nullable=False,
    ),
    Column("destination", String(100), nullable=False),
    Column("attempt", Integer, nullable=False),  # the delivery's attempt number (1, 2, …)
    Column("started_at", UTCDateTime(), nullable=False),
    Column("latency_ms", Integer, nullable=True),
    Column("status_code", Integer, nullable=True),  # None: no answer (timeout, refused, …)
    Column("response_excerpt", Text, nullable=True),  # the first 2 KB of the answer's body
    Column("error", Text, nullable=True),
    Column("outcome", String(20), nullable=False),  # Outcome
    Column("probe", Boolean, nullable=False),  # sent as the open circuit's probe
    Index(None, "delivery_id", "id"),
    Index(None, "destination", "started_at"),
)

__all__ = [
    "DELIVERIES_DUE_SQL",
    "DUE_STATUSES",
    "Circuit",
    "DeliveryStatus",
    "Outcome",
    "State",
    "attempts",
    "deliveries",
    "destinations",
    "webhook_id",
]
