"""Tables owned by the core: the inbox (`events`, and the `requests` that carried them) and the
bounded rejected-requests log.

Migrations in `db/migrations` must produce exactly this schema; `tests/test_migrations.py`
compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer(), "sqlite")

DUE_SQL = text("status IN ('pending', 'failed')")  # Status.PENDING, Status.FAILED


def utc_day(column: Any, *, postgres: bool) -> ColumnElement[str]:
    """'YYYY-MM-DD' of a `UTCDateTime` column: the UTC day, on either engine."""
    if postgres:
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD", type_=String)
    # SQLite keeps naive UTC text ("2025-01-31 23:59:59.123456"): its first ten characters.
    return func.substr(column, 1, 10, type_=String)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every engine (SQLite stores naive text; we re-attach UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - defensive
            raise TypeError(f"unexpected datetime value {value!r}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# One row per accepted request: its raw bytes and the headers kept of it, stored once however
# many events it carried (a HubSpot array, a Meta batch), and written only for a request that
# brought at least one new event. The raw bytes may hold several tenants' events: they are
# shown to superadmins only (each event keeps its own `payload`, or is the whole body).
requests = Table(
    "requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("headers", JSON, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Index(None, "received_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("provider", String(50), nullable=False),
    Column("tenant", String(100), nullable=True),
    Column("event_type", String(200), nullable=False),
    Column("dedup_key", String(300), nullable=False),
    Column("entity_key", String(300), nullable=True),
    Column("provider_ts", UTCDateTime(), nullable=True),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_until", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_traceback", Text, nullable=True),
    Column("origin", String(20), nullable=False),
    Column("replay_count", Integer, nullable=False, default=0),
    # The request that carried the event (requests.id). No foreign key: ingest inserts a
    # batch's events first and then only the requests that brought a new one (a redelivery
    # stores nothing), and retention deletes a request only once no event names it.
    Column("request_id", Id, nullable=True),
    # The event's own JSON; NULL when the event is its request's whole body (decoded from it).
    Column("payload", JSON(none_as_null=True), nullable=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("processed_at", UTCDateTime(), nullable=True),
    UniqueConstraint("source", "dedup_key"),
    Index(None, "status", "next_attempt_at"),
    # Claims: the due events in order. The predicate is literal SQL (not bound parameters)
    # so that both planners can match the queries in inbox/store.py to it.
    Index("ix_events_due", "next_attempt_at", "id", postgresql_where=DUE_SQL, sqlite_where=DUE_SQL),
    Index(None, "received_at"),
    Index(None, "entity_key"),
    Index(None, "request_id"),
)

rejected_requests = Table(
    "rejected_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=True),
    Column("path", String(500), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("reason", String(500), nullable=False),
    Column("client_ip", String(64), nullable=True),
    Column("headers", JSON, nullable=False),
    Column("body_excerpt", LargeBinary, nullable=True),
    Column("received_at", UTCDateTime(), nullable=False),
)
