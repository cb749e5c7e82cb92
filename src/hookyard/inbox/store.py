"""The inbox's queries: accept, claim, finish, fail, replay, retention, reads (and queries.py:
the reads other packages make, by name)."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    RowMapping,
    Select,
    String,
    bindparam,
    cast,
    delete,
    exists,
    extract,
    func,
    or_,
    select,
    text,
    update,
)

from hookyard.db.engine import hold_writer_lock, libpq_dsn, writer
from hookyard.db.schema import DUE_SQL, events, rejected_requests, requests
from hookyard.inbox.model import FINISHED, NewEvent, RejectedRequest, Status
from hookyard.live.change import Change, ChangeKind
from hookyard.live.publish import publish
from hookyard.providers.base import StoredEvent
from hookyard.queue.backoff import Backoff
from hookyard.queue.leased import Clock, Failure, LeasedQueue, LeaseLost, Spec, ids_in, utcnow

NOTIFY_CHANNEL = "hookyard_events"

_HANDLER_COLUMNS = (
    events.c.id,
    events.c.source,
    events.c.provider,
    events.c.tenant,
    events.c.event_type,
    events.c.dedup_key,
    events.c.entity_key,
    events.c.provider_ts,
    events.c.payload,
    events.c.request_id,
    events.c.attempts,
    events.c.origin,
)

# What a live client is told of an event whose status changed (never its body or error).
_LIVE_COLUMNS = (
    events.c.id,
    events.c.tenant,
    events.c.status,
    events.c.source,
    events.c.provider,
    events.c.event_type,
    events.c.attempts,
)


_ATTRIBUTE = (
    update(events).where(events.c.id == bindparam("event_id")).values(tenant=bindparam("owner"))
)


def attribute_events(tx: Connection, owners: Mapping[int, str]) -> None:
    """Events belong to the tenant owning the entity they name (a TCR brand's owner, a WABA's,
    a lead's, a customer's), whatever the receiving source said: written in the handler's
    transaction, so the events' tenants and their effects commit together."""
    if owners:
        tx.execute(_ATTRIBUTE, [{"event_id": i, "owner": t} for i, t in sorted(owners.items())])


def _event_change(row: Any, at: datetime) -> Change:
    return Change(
        ChangeKind.EVENT,
        row.id,
        row.tenant,
        row.status,
        {
            "source": row.source,
            "provider": row.provider,
            "event_type": row.event_type,
            "attempts": row.attempts,
        },
        at,
    )


def decode_payload(payload: Any, body: bytes | None) -> Any:
    if payload is not None or body is None or not body.strip():
        return payload
    try:
        return json.loads(body)
    except ValueError:
        return None


def stored_event(
    row: RowMapping | Mapping[str, Any], request: RowMapping | Mapping[str, Any] | None
) -> StoredEvent:
    """An event as handlers see it, from its row and the `request` row that carried it."""
    body = request["body"] if request is not None else None
    return StoredEvent(
        id=row["id"],
        source=row["source"],
        provider=row["provider"],
        tenant=row["tenant"],
        event_type=row["event_type"],
        dedup_key=row["dedup_key"],
        entity_key=row["entity_key"],
        provider_ts=row["provider_ts"],
        payload=decode_payload(row["payload"], body),
        headers=request["headers"] if request is not None else {},
        attempts=row["attempts"],
        origin=row["origin"],
    )


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


# The inbox as a leased queue (hookyard.queue): due while pending or failed (the text of the
# partial index ix_events_due's predicate, so the planner uses it), leased while processing.
EVENTS = Spec(
    events,
    due=(Status.PENDING.value, Status.FAILED.value),
    leased=Status.PROCESSING.value,
    retry=Status.FAILED.value,
    dead=Status.DEAD.value,
    error="last_error",
    due_sql=DUE_SQL.text,
)


class EventStore:
    def __init__(
        self,
        engine: Engine,
        backoff: Backoff | None = None,
        *,
        clock: Clock = utcnow,
        lease_seconds: float = 60.0,
    ) -> None:
        self.engine = engine
        self.writer = writer(engine)
        self.is_postgres = engine.dialect.name == "postgresql"
        self.queue = LeasedQueue(
            engine, EVENTS, backoff or Backoff(), lease_seconds, clock, self.writer
        )
        self._claim = self.queue.claim_statement(
            _HANDLER_COLUMNS, where=_claim_filter(self.is_postgres)
        )
        self._finish = self.queue.finish_statement(
            {
                "status": bindparam("status"),
                "processed_at": bindparam("now"),
                "last_error": None,
                "last_traceback": None,
            },
            _LIVE_COLUMNS,
        )
        self._recover = self.queue.recover_statement(_LIVE_COLUMNS)

    @property
    def backoff(self) -> Backoff:
        return self.queue.backoff

    # -- accept ---------------------------------------------------------------------------

    def insert_batch(
        self, new: Sequence[NewEvent], rejected: Sequence[RejectedRequest] = ()
    ) -> dict[tuple[str, str], int]:
        """Insert in one transaction; return the ids of the rows that were new.

        A (source, dedup_key) already stored is skipped by the unique constraint, so a
        duplicate never becomes a second row, whichever process received it. The requests that
        carried new events are stored with them, once each (`requests`); a request whose
        events were all duplicates is not. This is the hot path: one statement per batch
        inside one transaction (one fsync); on PostgreSQL a trigger (migration 0002) notifies
        the workers of every process.
        """
        # The raw driver connection (still from the engine's pool): this path runs for every
        # batch, and SQLAlchemy's Connection, events and result objects cost more CPU here
        # than the insert itself.
        conn = self.engine.raw_connection()
        rows: Sequence[Any] = ()
        try:
            cursor: Any = conn.cursor()  # psycopg's or sqlite3's own, with their own options
            if self.is_postgres:
                if new:
                    cursor.execute(_PG_INSERT, _pg_columns(new), prepare=True)
                    rows = cursor.fetchall()
                if rejected:
                    cursor.executemany(_PG_REJECTED, [_rejected_row(r) for r in rejected])
            else:
                # Rows are made before the write lock is taken: only SQL runs while it is held
                # (worker processes wait for it too).
                prepared = _SqliteRows.of(new)
                hold_writer_lock(self.engine, conn.info)  # released when `conn` is closed
                cursor.execute("BEGIN IMMEDIATE")
                if new:
                    rows = prepared.insert(cursor)
                if rejected:
                    cursor.executemany(
                        _SQLITE_REJECTED, [_rejected_row(r, sqlite=True) for r in rejected]
                    )
            cursor.close()
            conn.commit()
        except BaseException as exc:
            if _is_disconnect(exc):
                conn.invalidate()  # the pool opens a fresh one next time
            else:
                with contextlib.suppress(Exception):
                    conn.rollback()
            raise
        finally:
            conn.close()
        return {(row[1], row[2]): row[0] for row in rows}

    def async_writer(self) -> AsyncPostgresWriter:
        """PostgreSQL: a writer on the event loop itself (see AsyncPostgresWriter)."""
        return AsyncPostgresWriter(libpq_dsn(self.engine))

    def trim_rejected(self, keep: int) -> int:
        with self.writer.begin() as tx:
            cutoff = tx.execute(
                select(rejected_requests.c.id)
                .order_by(rejected_requests.c.id.desc())
                .offset(keep)
                .limit(1)
            ).scalar()
            if cutoff is None:
                return 0
            return tx.execute(
                delete(rejected_requests).where(rejected_requests.c.id <= cutoff)
            ).rowcount

    # -- claim and finish -----------------------------------------------------------------

    def claim(
        self, owner: str, limit: int, lease_seconds: float | None = None
    ) -> list[StoredEvent]:
        """Lease up to `limit` due events to `owner` (committed at once, so others skip them)."""
        params = self.queue.params(owner, limit, lease_seconds)
        with self.writer.begin() as tx:
            rows = tx.execute(self._claim, params).mappings().all()
        if not rows:
            return []
        # The requests' bodies and headers after the claim's commit (they never change), so
        # the write lock is held no longer than the claim itself.
        carried = self.requests({r["request_id"] for r in rows if r["request_id"] is not None})
        claimed = (stored_event(r, carried.get(r["request_id"])) for r in rows)
        return sorted(claimed, key=lambda e: e.id)

    def requests(self, ids: Iterable[int]) -> dict[int, RowMapping]:
        """Request rows by id (body, headers)."""
        wanted = sorted(ids)
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            found = conn.execute(_REQUESTS[self.is_postgres], {"ids": wanted}).mappings().all()
        return {row["id"]: row for row in found}

    def finish(self, tx: Connection, outcomes: Mapping[str, Sequence[int]], owner: str) -> None:
        """Mark events finished inside the handler's transaction; raise LeaseLost if a lease
        was lost (the handler's effects then roll back with it)."""
        now = self.queue.clock()
        changes: list[Change] = []
        for status, ids in outcomes.items():
            if not ids:
                continue
            params = {"ids": list(ids), "owner": owner, "status": status, "now": now}
            rows = tx.execute(self._finish, params).all()
            if len(rows) != len(ids):
                raise LeaseLost(f"lease lost on some of events {list(ids)}")
            changes.extend(_event_change(row, now) for row in rows)
        publish(tx, *changes)  # delivered only if this transaction commits

    def fail(self, event: StoredEvent, owner: str, error: str, tb: str) -> Failure:
        """Record a failed attempt: `failed` until the backoff's next attempt, or `dead` once
        the attempts are used up (nothing is written when the lease was lost)."""
        with self.writer.begin() as tx:
            failure = self.queue.retry_or_dead(
                event.id,
                owner,
                event.attempts,
                error=error,
                values={"last_traceback": tb[-20000:]},
                tx=tx,
            )
            if failure.recorded:
                live = tx.execute(select(*_LIVE_COLUMNS).where(events.c.id == event.id)).all()
                publish(tx, *(_event_change(row, self.queue.clock()) for row in live))
        return failure

    def recover_expired_leases(self, max_attempts: int | None = None) -> int:
        """Events whose worker died or was too slow: due again, or dead once they used their
        attempts (`max_attempts`, the backoff's by default)."""
        now = self.queue.clock()
        limit = self.queue.backoff.max_attempts if max_attempts is None else max_attempts
        with self.writer.begin() as tx:
            rows = tx.execute(self._recover, {"now": now, "max_attempts": limit}).all()
            publish(tx, *(_event_change(row, now) for row in rows))
        return len(rows)

    def _notify(self, tx: Connection) -> None:
        """Wake workers in every process when this transaction commits (PostgreSQL)."""
        if self.is_postgres:
            tx.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})

    def next_due_at(self) -> datetime | None:
        return self.queue.next_due_at()

    # -- replay and retention -------------------------------------------------------------

    def replay(self, ids: Iterable[int], *, tenant: str | None = None) -> int:
        """Make events due again, now, with a fresh attempt budget (any status but processing).

        With `tenant`, only that tenant's events among `ids` (an API caller's scope).
        """
        ids = list(ids)
        if not ids:
            return 0
        scope = [] if tenant is None else [events.c.tenant == tenant]
        now = utcnow()
        with self.writer.begin() as tx:
            self._notify(tx)
            rows = tx.execute(
                update(events)
                .where(events.c.id.in_(ids), events.c.status != Status.PROCESSING.value, *scope)
                .values(
                    status=Status.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                    replay_count=events.c.replay_count + 1,
                    processed_at=None,
                )
                .returning(*_LIVE_COLUMNS)
            ).all()
            publish(tx, *(_event_change(row, now) for row in rows))
            return len(rows)

    def replay_matching(self, flt: EventFilter, limit: int = 10_000) -> int:
        return self.replay(self.ids_matching(flt, limit), tenant=flt.tenant)

    def ids_matching(self, flt: EventFilter, limit: int) -> list[int]:
        with self.engine.connect() as conn:
            query = flt.apply(select(events.c.id)).order_by(events.c.id).limit(limit)
            return list(conn.execute(query).scalars())

    def purge_finished(self, older_than: datetime) -> int:
        """Retention: delete finished events received before `older_than`, and the requests
        left with no event."""
        with self.writer.begin() as tx:
            purged = tx.execute(
                delete(events).where(
                    events.c.status.in_([s.value for s in FINISHED]),
                    events.c.received_at < older_than,
                )
            ).rowcount
            tx.execute(
                delete(requests).where(
                    requests.c.received_at < older_than,
                    ~exists().where(events.c.request_id == requests.c.id),
                )
            )
            return purged

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

    def _utc_day(self, column: Any) -> ColumnElement[str]:
        """'YYYY-MM-DD' of a UTC timestamp column."""
        if self.is_postgres:
            return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD", type_=String)
        # SQLite keeps naive UTC text ("2025-01-31 23:59:59.123456"): its first ten characters.
        return func.substr(column, 1, 10, type_=String)

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


def _claim_filter(postgres: bool) -> tuple[ColumnElement[bool], ...]:
    if not postgres:
        return ()  # SQLite has one writer: nobody to wait for
    # PostgreSQL, several claimers: each passes the events of an entity another worker holds
    # now (its handler locks the entity's row until it commits: a worker taking the entity's
    # next events would only wait for it, and they wait their turn in order instead). Best
    # effort: two claims at the same instant may still share an entity.
    held = (
        select(events.c.entity_key)
        .where(events.c.status == Status.PROCESSING.value, events.c.entity_key.is_not(None))
        .scalar_subquery()
    )
    return (or_(events.c.entity_key.is_(None), events.c.entity_key.not_in(held)),)


_REQUESTS = {
    postgres: select(requests.c.id, requests.c.headers, requests.c.body).where(
        ids_in(requests.c.id, postgres)
    )
    for postgres in (False, True)
}

_EVENT_COLUMNS = (
    "source, provider, tenant, event_type, dedup_key, entity_key, provider_ts, status, attempts,"
    " next_attempt_at, origin, replay_count, payload, received_at"
)

# One statement for a whole batch: request ids drawn from the sequence, the events inserted
# (duplicates skipped), then only the requests that brought a new event.
_PG_INSERT = (
    "WITH ids AS MATERIALIZED (SELECT nextval('requests_id_seq') AS id, n"
    " FROM generate_series(1, %b::int) AS n),"
    f" new_events AS (INSERT INTO events ({_EVENT_COLUMNS}, request_id)"
    " SELECT u.source, u.provider, u.tenant, u.event_type, u.dedup_key, u.entity_key,"
    " u.provider_ts, u.status, u.attempts, u.next_attempt_at, u.origin, u.replay_count,"
    " u.payload, u.received_at, ids.id FROM unnest("
    "%b::varchar[], %b::varchar[], %b::varchar[], %b::varchar[], %b::varchar[], %b::varchar[],"
    " %b::timestamptz[], %b::varchar[], %b::int[], %b::timestamptz[], %b::varchar[], %b::int[],"
    " %b::text[]::json[], %b::timestamptz[], %b::int[]) AS u(source, provider, tenant,"
    " event_type, dedup_key, entity_key, provider_ts, status, attempts, next_attempt_at, origin,"
    " replay_count, payload, received_at, n) JOIN ids USING (n)"
    " ON CONFLICT (source, dedup_key) DO NOTHING RETURNING id, source, dedup_key, request_id),"
    " new_requests AS (INSERT INTO requests (id, source, headers, body, received_at)"
    " SELECT ids.id, r.source, r.headers, r.body, r.received_at FROM unnest("
    "%b::varchar[], %b::text[]::json[], %b::bytea[], %b::timestamptz[])"
    " WITH ORDINALITY AS r(source, headers, body, received_at, n) JOIN ids USING (n)"
    " WHERE ids.id IN (SELECT request_id FROM new_events))"
    " SELECT id, source, dedup_key FROM new_events"
)


@functools.lru_cache(maxsize=1024)
def _sqlite_insert(rows: int) -> str:
    # One statement for the whole batch: one call into SQLite, one GIL hand-over.
    values = ", ".join(["(" + ", ".join("?" * 15) + ")"] * rows)
    return (
        f"INSERT INTO events ({_EVENT_COLUMNS}, request_id) VALUES {values}"
        " ON CONFLICT (source, dedup_key) DO NOTHING RETURNING id, source, dedup_key, request_id"
    )


@functools.lru_cache(maxsize=1024)
def _sqlite_insert_requests(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO requests (id, source, headers, body, received_at) VALUES {values}"


@dataclass(frozen=True, slots=True)
class _SqliteRows:
    """A batch's rows for SQLite, made before the writer's lock is taken: each event's values
    but its request id, each request's values but its id, and which request an event is of."""

    events: list[tuple[Any, ...]]
    ordinals: list[int]
    requests: list[tuple[Any, ...]]

    @classmethod
    def of(cls, new: Sequence[NewEvent]) -> _SqliteRows:
        ordinals, carriers = _requests_of(new)
        return cls(
            [_sqlite_row(e) for e in new], ordinals, [_sqlite_request_row(r) for r in carriers]
        )

    def insert(self, cursor: Any) -> list[Any]:
        """Inside the writer's transaction: the events, then their new requests. Request ids
        are the next free ones (one writer at a time), so events can name them first."""
        (last,) = cursor.execute("SELECT coalesce(max(id), 0) FROM requests").fetchone()
        rows: list[Any] = []
        # At most _SQLITE_ROWS rows a statement: a statement takes at most 32,766 values, and
        # one batch must never fail for the size of another request in it.
        for start in range(0, len(self.events), _SQLITE_ROWS):
            part = range(start, min(start + _SQLITE_ROWS, len(self.events)))
            params = [v for i in part for v in (*self.events[i], last + self.ordinals[i])]
            rows += cursor.execute(_sqlite_insert(len(part)), params).fetchall()
        used = sorted({row[3] for row in rows})
        for start in range(0, len(used), _SQLITE_ROWS):
            ids = used[start : start + _SQLITE_ROWS]
            params = [v for rid in ids for v in (rid, *self.requests[rid - last - 1])]
            cursor.execute(_sqlite_insert_requests(len(ids)), params)
        return rows


_SQLITE_ROWS = 500


def _requests_of(new: Sequence[NewEvent]) -> tuple[list[int], list[NewEvent]]:
    """The request (1, 2, …) of each event, and the first event of each request: consecutive
    events of one request (`NewEvent.request`) share it."""
    ordinals: list[int] = []
    carriers: list[NewEvent] = []
    previous: NewEvent | None = None
    for event in new:
        if previous is None or event.request is None or event.request is not previous.request:
            carriers.append(event)
        ordinals.append(len(carriers))
        previous = event
    return ordinals, carriers


_compact = json.JSONEncoder(separators=(",", ":")).encode  # built once, not per call


_REJECTED_COLUMNS = (
    "source, path, status_code, reason, client_ip, headers, body_excerpt, received_at"
)
_PG_REJECTED = (
    f"INSERT INTO rejected_requests ({_REJECTED_COLUMNS})"
    " VALUES (%s, %s, %s, %s, %s, %s::json, %s, %s)"
)
_SQLITE_REJECTED = (
    f"INSERT INTO rejected_requests ({_REJECTED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _rejected_row(r: RejectedRequest, *, sqlite: bool = False) -> tuple[Any, ...]:
    received: Any = _sqlite_time(r.received_at) if sqlite else r.received_at
    return (
        r.source,
        r.path[:500],
        r.status_code,
        r.reason[:500],
        r.client_ip,
        _compact(r.headers),
        r.body_excerpt,
        received,
    )


class AsyncPostgresWriter:
    """The inbox's batch insert on one asyncio psycopg connection, owned by the committer.

    Waiting for PostgreSQL then costs the event loop nothing, and no thread has to win the
    GIL back from a busy loop after every round trip (which, under load, doubled the time a
    batch took on the thread path). Same statements as `EventStore.insert_batch`.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def insert_batch(
        self, new: Sequence[NewEvent], rejected: Sequence[RejectedRequest] = ()
    ) -> dict[tuple[str, str], int]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._dsn, connect_timeout=3)
        conn = self._conn
        rows: Sequence[Any] = ()
        try:
            async with conn.cursor() as cursor:
                if new:
                    await cursor.execute(_PG_INSERT, _pg_columns(new), prepare=True)
                    rows = await cursor.fetchall()
                if rejected:
                    await cursor.executemany(_PG_REJECTED, [_rejected_row(r) for r in rejected])
            await conn.commit()
        except BaseException as exc:
            # Cancelled (the deadline) or broken: the connection's state is unknown; drop it.
            if _is_disconnect(exc) or not isinstance(exc, Exception):
                await self.close()
            else:
                with contextlib.suppress(Exception):
                    await conn.rollback()
            raise
        return {(row[1], row[2]): row[0] for row in rows}

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None


def _is_disconnect(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) or (
        isinstance(exc, psycopg.Error) and exc.pgconn is None
    )


def _json_or_none(value: Any) -> str | None:
    return None if value is None else _compact(value)


def _pg_columns(new: Sequence[NewEvent]) -> list[Any]:
    pending = Status.PENDING.value
    ordinals, carriers = _requests_of(new)
    return [
        len(carriers),
        [e.source for e in new],
        [e.provider for e in new],
        [e.tenant for e in new],
        [e.event_type for e in new],
        [e.dedup_key for e in new],
        [e.entity_key for e in new],
        [e.provider_ts for e in new],
        [pending] * len(new),
        [0] * len(new),
        [e.received_at for e in new],
        [e.origin.value for e in new],
        [0] * len(new),
        [_json_or_none(e.payload) for e in new],
        [e.received_at for e in new],
        ordinals,
        [r.source for r in carriers],
        [_compact(r.headers) for r in carriers],
        [r.body for r in carriers],
        [r.received_at for r in carriers],
    ]


def _sqlite_time(value: datetime | None) -> str | None:
    # The text form SQLAlchemy's SQLite DateTime reads back (naive UTC, microseconds).
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_row(e: NewEvent) -> tuple[Any, ...]:
    """An event's values as `_sqlite_insert` takes them, but the request id (last)."""
    received = _sqlite_time(e.received_at)
    return (
        e.source,
        e.provider,
        e.tenant,
        e.event_type,
        e.dedup_key,
        e.entity_key,
        _sqlite_time(e.provider_ts),
        Status.PENDING.value,
        0,
        received,
        e.origin.value,
        0,
        _json_or_none(e.payload),
        received,
    )


def _sqlite_request_row(e: NewEvent) -> tuple[Any, ...]:
    """A request's values as `_sqlite_insert_requests` takes them, but its id (first)."""
    return (e.source, _compact(e.headers), e.body, _sqlite_time(e.received_at))


LIST_COLUMNS = tuple(
    c for c in events.c if c.name not in ("payload", "request_id", "last_traceback")
)
