"""The inbox's reads for the API, the CLI and the metrics: lists and filters, one event,
the queue's size, per-source health and delivery statistics, the rejected requests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    Select,
    cast,
    extract,
    func,
    or_,
    select,
)

from hookyard.db.schema import events, rejected_requests, requests, utc_day
from hookyard.inbox.model import Status


def decode_payload(payload: Any, body: bytes | None) -> Any:
    if payload is not None or body is None or not body.strip():
        return payload
    try:
        return json.loads(body)
    except ValueError:
        return None


@dataclass(frozen=True)
class EventFilter:
    source: str | None = None
    provider: str | None = None
    event_type: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    tenant: str | None = None  # None: every tenant's events (and those of none)
    q: str | None = None  # contained in dedup_key, entity_key or event_type (any case)

    def apply(self, query: Select[Any]) -> Select[Any]:
        for column, value in (
            (events.c.source, self.source),
            (events.c.provider, self.provider),
            (events.c.event_type, self.event_type),
            (events.c.status, self.status),
            (events.c.tenant, self.tenant),
        ):
            if value is not None:
                query = query.where(column == value)
        if self.since is not None:
            query = query.where(events.c.received_at >= self.since)
        if self.until is not None:
            query = query.where(events.c.received_at < self.until)
        if self.q:
            # autoescape: a `%` or `_` in the search is that character, not a wildcard.
            query = query.where(
                or_(
                    *(
                        column.icontains(self.q, autoescape=True)
                        for column in (events.c.dedup_key, events.c.entity_key, events.c.event_type)
                    )
                )
            )
        return query


LIST_COLUMNS = tuple(
    c for c in events.c if c.name not in ("payload", "request_id", "last_traceback")
)


class EventReads:
    """`EventStore`'s reads (store.py builds the engine and dialect they use)."""

    engine: Engine
    is_postgres: bool

    # -- reads ----------------------------------------------------------------------------

    def list_events(
        self, flt: EventFilter, *, limit: int = 50, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        query = flt.apply(select(*LIST_COLUMNS))
        if before_id is not None:
            query = query.where(events.c.id < before_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(events.c.id.desc()).limit(limit)).mappings()
            return [dict(r) for r in rows]

    def get(self, event_id: int, *, tenant: str | None = None) -> dict[str, Any] | None:
        """One event (with `tenant`: only if it is that tenant's), with the raw `body` and the
        `headers` of the request that carried it: those may hold other tenants' events too,
        so the caller decides who sees them (superadmins only, api/events.py)."""
        query = select(events, requests.c.body, requests.c.headers).select_from(
            events.outerjoin(requests, requests.c.id == events.c.request_id)
        )
        query = query.where(events.c.id == event_id)
        if tenant is not None:
            query = query.where(events.c.tenant == tenant)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        data = dict(row)
        data["body"] = data["body"] or b""
        data["headers"] = data["headers"] or {}
        data["payload"] = decode_payload(data["payload"], data["body"])
        return data

    @staticmethod
    def payload_of(tx: Connection, event_id: int) -> Any:
        """An event's payload (decoded from its request's body where it is that body)."""
        row = tx.execute(
            select(events.c.payload, requests.c.body)
            .select_from(events.outerjoin(requests, requests.c.id == events.c.request_id))
            .where(events.c.id == event_id)
        ).first()
        return None if row is None else decode_payload(row.payload, row.body)

    def queue_stats(self) -> tuple[int, datetime | None]:
        """(events not yet finished or dead, received_at of the oldest of them)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(func.count(), func.min(events.c.received_at)).where(
                    events.c.status.in_(
                        [Status.PENDING.value, Status.FAILED.value, Status.PROCESSING.value]
                    )
                )
            ).one()
        return int(row[0]), row[1]

    def count_by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(events.c.status, func.count()).group_by(events.c.status))
            return {status: int(n) for status, n in rows}

    # -- statistics -----------------------------------------------------------------------

    def source_health(self, since: datetime, *, tenant: str | None = None) -> dict[str, Any]:
        """Per source: events received since `since` and the latest of them, and dead events.

        Both queries stay on an index (received_at; status): no scan of the whole table.
        Returns {source: {"received": n, "last_received_at": t | None, "dead": n}}.
        """
        scoped = [] if tenant is None else [events.c.tenant == tenant]
        recent = (
            select(events.c.source, func.count(), func.max(events.c.received_at))
            .where(events.c.received_at >= since, *scoped)
            .group_by(events.c.source)
        )
        dead = (
            select(events.c.source, func.count())
            .where(events.c.status == Status.DEAD.value, *scoped)
            .group_by(events.c.source)
        )
        health: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for source, n, last in conn.execute(recent):
                health[source] = {"received": int(n), "last_received_at": last, "dead": 0}
            for source, n in conn.execute(dead):
                entry = health.setdefault(
                    source, {"received": 0, "last_received_at": None, "dead": 0}
                )
                entry["dead"] = int(n)
        return health

    def delivery_stats(
        self,
        since: datetime,
        until: datetime,
        *,
        tenant: str | None = None,
        source: str | None = None,
    ) -> list[dict[str, Any]]:
        """Per source and UTC day of receipt (in [since, until)): events by status, and the
        latency from received to processed of the finished ones (average, p95, max; seconds).

        p95 is the nearest-rank percentile (the ceil(0.95·n)-th smallest), found with window
        functions that SQLite and PostgreSQL both have. Rows come ordered by day, source:
        {"source", "day", "by_status": {status: n}, "latency": {"samples", "average",
        "p95", "max"}}.
        """
        conditions = [events.c.received_at >= since, events.c.received_at < until]
        if tenant is not None:
            conditions.append(events.c.tenant == tenant)
        if source is not None:
            conditions.append(events.c.source == source)
        # Only finished events have processed_at (fail and replay leave or clear it).
        rows = (
            select(
                events.c.source,
                self._utc_day(events.c.received_at).label("day"),
                events.c.status,
                self._seconds_between(events.c.received_at, events.c.processed_at).label("latency"),
            )
            .where(*conditions)
            .subquery()
        )
        by_status = select(
            rows.c.source,
            rows.c.day,
            rows.c.status,
            func.count(),
            func.count(rows.c.latency),
            func.sum(rows.c.latency),
            func.max(rows.c.latency),
        ).group_by(rows.c.source, rows.c.day, rows.c.status)
        ranked = (
            select(
                rows.c.source,
                rows.c.day,
                rows.c.latency,
                func.row_number()
                .over(partition_by=(rows.c.source, rows.c.day), order_by=rows.c.latency)
                .label("rank"),
                func.count().over(partition_by=(rows.c.source, rows.c.day)).label("n"),
            )
            .where(rows.c.latency.is_not(None))
            .subquery()
        )
        # `//`: integer division on both engines, so (95n + 99) // 100 is ceil(0.95·n).
        p95 = select(ranked.c.source, ranked.c.day, ranked.c.latency).where(
            ranked.c.rank == (ranked.c.n * 95 + 99) // 100
        )
        buckets: dict[tuple[str, str], dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for src, day, status, n, samples, total, longest in conn.execute(by_status):
                bucket = buckets.setdefault(
                    (src, day),
                    {"by_status": {}, "samples": 0, "sum": 0.0, "max": None, "p95": None},
                )
                bucket["by_status"][status] = int(n)
                if samples:
                    bucket["samples"] += int(samples)
                    bucket["sum"] += float(total)
                    bucket["max"] = max(float(longest), bucket["max"] or 0.0)
            for src, day, latency in conn.execute(p95):
                buckets[(src, day)]["p95"] = float(latency)
        return [
            {
                "source": src,
                "day": date.fromisoformat(day),
                "by_status": b["by_status"],
                "latency": {
                    "samples": b["samples"],
                    "average": b["sum"] / b["samples"] if b["samples"] else None,
                    "p95": b["p95"],
                    "max": b["max"],
                },
            }
            for (src, day), b in sorted(buckets.items(), key=lambda item: (item[0][1], item[0][0]))
        ]

    def event_types_per_day(
        self,
        since: datetime,
        until: datetime,
        *,
        provider: str,
        tenant: str | None = None,
        source: str | None = None,
    ) -> dict[date, dict[str, int]]:
        """How many of `provider`'s events were received per UTC day (in [since, until)) and
        event type, whatever their status: {day: {event_type: n}}, days without any left out.
        Stays on the received_at index, like `delivery_stats`."""
        conditions = [
            events.c.received_at >= since,
            events.c.received_at < until,
            events.c.provider == provider,
        ]
        if tenant is not None:
            conditions.append(events.c.tenant == tenant)
        if source is not None:
            conditions.append(events.c.source == source)
        rows = (
            select(self._utc_day(events.c.received_at).label("day"), events.c.event_type)
            .where(*conditions)
            .subquery()
        )
        counted = select(rows.c.day, rows.c.event_type, func.count()).group_by(
            rows.c.day, rows.c.event_type
        )
        found: dict[date, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for day, event_type, n in conn.execute(counted):
                found.setdefault(date.fromisoformat(day), {})[event_type] = int(n)
        return found

    def _utc_day(self, column: Any) -> ColumnElement[str]:
        """'YYYY-MM-DD' of a UTC timestamp column."""
        return utc_day(column, postgres=self.is_postgres)

    def _seconds_between(self, start: Any, end: Any) -> ColumnElement[float]:
        if self.is_postgres:
            return cast(extract("epoch", end) - extract("epoch", start), Float)
        # julianday keeps milliseconds: differences are exact to the millisecond.
        return cast((func.julianday(end) - func.julianday(start)) * 86400.0, Float)

    def rejected(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(rejected_requests).order_by(rejected_requests.c.id.desc()).limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))
