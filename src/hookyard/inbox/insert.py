"""The inbox's accept side, the hot path: one batch of new events, the requests that carried
them and the rejected requests in one transaction (`EventInserts.insert_batch` on a pooled
driver connection, `AsyncPostgresWriter` on the event loop), and the rejected log's bound."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from sqlalchemy import Engine, delete, select

from hookyard.db.engine import hold_writer_lock, libpq_dsn
from hookyard.db.schema import rejected_requests
from hookyard.inbox.model import NewEvent, RejectedRequest, Status


class Fanout(Protocol):
    """Rows written with the new events, in their transaction (the outbox idiom): the
    destinations' deliveries (hookyard.destinations.fanout). No rows: no statement."""

    def rows(
        self, new: Sequence[NewEvent], inserted: Mapping[tuple[str, str], int], *, sqlite: bool
    ) -> list[tuple[Any, ...]]:
        """The parameters of `statement`, one tuple per row, for the events that were new
        (`inserted`: their ids by (source, dedup_key))."""
        ...

    def statement(self, *, sqlite: bool) -> str:
        """An INSERT with positional parameters (`?` on SQLite, `%s` on PostgreSQL)."""
        ...


def _fanout_rows(
    fanout: Fanout | None, new: Sequence[NewEvent], rows: Sequence[Any], *, sqlite: bool
) -> list[tuple[Any, ...]]:
    if fanout is None or not rows:
        return []
    return fanout.rows(new, {(row[1], row[2]): row[0] for row in rows}, sqlite=sqlite)


class EventInserts:
    """`EventStore`'s accept half (store.py builds the engine, writer and dialect it uses)."""

    engine: Engine
    writer: Engine
    is_postgres: bool
    fanout: Fanout | None = None  # rows written with new events (the destinations' deliveries)

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
                if fanned := _fanout_rows(self.fanout, new, rows, sqlite=False):
                    assert self.fanout is not None
                    cursor.executemany(self.fanout.statement(sqlite=False), fanned)
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
                if fanned := _fanout_rows(self.fanout, new, rows, sqlite=True):
                    assert self.fanout is not None
                    cursor.executemany(self.fanout.statement(sqlite=True), fanned)
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
        return AsyncPostgresWriter(libpq_dsn(self.engine), self.fanout)

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

    def __init__(self, dsn: str, fanout: Fanout | None = None) -> None:
        self._dsn = dsn
        self._fanout = fanout
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
                if fanned := _fanout_rows(self._fanout, new, rows, sqlite=False):
                    assert self._fanout is not None
                    await cursor.executemany(self._fanout.statement(sqlite=False), fanned)
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
