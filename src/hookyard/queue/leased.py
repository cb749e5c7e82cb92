"""Leased work: the one claim → lease → finish | retry | dead mechanism.

Every background queue (events, lead enrichment, e-mail deliveries, the HubSpot outbox, the
scheduler's jobs) is a table with the same five columns under its own names: a status, an
attempt count, when the next attempt is due, who holds the lease and until when. A `Spec`
names them; a `LeasedQueue` runs the statements on them:

- `claim` leases due rows to an owner in one statement: `UPDATE … WHERE id IN (SELECT … FOR
  UPDATE SKIP LOCKED) RETURNING` on PostgreSQL (several claimers pass each other's rows), the
  same without the lock clause on SQLite (one writer at a time: nobody to pass). The attempt
  count goes up at claim time, so a crash mid-attempt still counts.
- `finish` ends the leased rows with the owner check, in the caller's transaction (the effects
  and "done" commit together); a row whose lease was lost raises `LeaseLost`.
- `retry_or_dead` records a failed attempt under the owner check: due again after the one
  `Backoff` (jitter, never before Retry-After), or dead once the attempts are used up.
- `recover` takes back expired leases (the holder died or was too slow): due again, or dead
  when the attempts are used up, so a crash loop ends.
- `extend` moves a lease forward (the heartbeat of long work); `next_due_at` tells an idle
  worker when to wake; time comes from an injectable clock.

A spec without a status column (the scheduler's jobs) is a plain mutex with a next run time:
a row is due when its time has come and no live lease holds it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    RowMapping,
    Select,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql

from hookyard.db.engine import writer
from hookyard.logs import log
from hookyard.queue.backoff import Backoff

Clock = Callable[[], datetime]
LEASE_EXPIRED = "lease expired: the worker stopped or was too slow"


def utcnow() -> datetime:
    return datetime.now(UTC)


class LeaseLost(RuntimeError):
    """Another owner took the row after our lease expired: our effects must roll back."""


@dataclass(frozen=True)
class Spec:
    """Which columns of `table` carry the queue, and what its statuses are called.

    `due` are the statuses that wait their turn; `leased` is the status while held; `retry`
    the status of a failed attempt that will run again; `dead` the status once attempts are
    used up. `due_sql`, when given, is the exact text of the due condition (it must match a
    partial index's predicate to use it). `null_is_due`: a NULL next-attempt time means now.
    """

    table: Table
    due: tuple[str, ...] = ("pending",)
    leased: str = "processing"
    retry: str = "pending"
    dead: str = "dead"
    status: str | None = "status"
    attempts: str | None = "attempts"
    next_attempt_at: str = "next_attempt_at"
    lease_owner: str = "lease_owner"
    lease_until: str = "lease_until"
    error: str | None = None  # where a lost lease or a failure is written
    key: str = "id"  # the primary key
    dead_at: str | None = None  # stamped with the time a row dies
    expired_error: str = LEASE_EXPIRED  # the error of a row whose lease ran out
    keep_error: bool = True  # on expiry, keep an earlier attempt's error if there is one
    due_sql: str | None = None
    null_is_due: bool = False

    def col(self, name: str | None) -> Column[Any]:
        assert name is not None
        return self.table.c[name]

    @property
    def id(self) -> Column[Any]:
        return self.table.c[self.key]

    def is_due(self, now: Any) -> ColumnElement[bool]:
        """Waiting its turn and its time has come (no lock or lease considered)."""
        at = self.col(self.next_attempt_at)
        time_ok: ColumnElement[bool] = at <= now
        if self.null_is_due:
            time_ok = or_(at.is_(None), time_ok)
        if self.status is None:
            until = self.col(self.lease_until)
            return and_(time_ok, or_(until.is_(None), until < now))
        return and_(self.waiting(), time_ok)

    def waiting(self) -> ColumnElement[bool]:
        if self.status is None:
            return true()
        if self.due_sql is not None:
            return text(self.due_sql)  # type: ignore[return-value]
        return self.col(self.status).in_(self.due)

    def is_held(self) -> ColumnElement[bool]:
        if self.status is None:
            return self.col(self.lease_until).is_not(None)
        return self.col(self.status) == self.leased

    def expired(self, now: Any) -> ColumnElement[bool]:
        return and_(self.is_held(), self.col(self.lease_until) < now)

    def released(self) -> dict[str, Any]:
        return {self.lease_owner: None, self.lease_until: None}


def ids_in(column: Any, postgres: bool, name: str = "ids") -> ColumnElement[bool]:
    """`column` is one of the list bound as `name`. PostgreSQL: `= ANY(array)`, one parameter,
    so the statement's text is the same for any count and psycopg prepares it once (an
    expanding IN is new text per count, converted in Python each time)."""
    if postgres:
        item = BigInteger() if isinstance(column.type, Integer) else column.type
        return column == func.any(bindparam(name, type_=postgresql.ARRAY(item)))  # type: ignore[no-any-return]
    return column.in_(bindparam(name, expanding=True))  # type: ignore[no-any-return]


def skip_locked(query: Select[Any]) -> Select[Any]:
    """`query` passes the rows other transactions hold (PostgreSQL's FOR UPDATE SKIP LOCKED;
    SQLite has one writer and ignores it): work that is taken and done in one transaction,
    such as a batch of notifications fanned out, without a lease."""
    return query.with_for_update(skip_locked=True)


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed attempt became: due again at `retry_at`, or dead (`retry_at` None);
    `recorded` is False when the lease was lost and nothing was written."""

    recorded: bool
    retry_at: datetime | None
    row: Any = None  # the columns asked for, when recorded

    @property
    def dead(self) -> bool:
        return self.recorded and self.retry_at is None


@dataclass
class LeasedQueue:
    engine: Engine
    spec: Spec
    backoff: Backoff = field(default_factory=Backoff)
    lease_seconds: float = 60.0
    clock: Clock = utcnow
    writer_engine: Engine | None = None  # SQLite: the engine that holds the writer lock

    def __post_init__(self) -> None:
        self.postgres = self.engine.dialect.name == "postgresql"
        if self.writer_engine is None:
            self.writer_engine = writer(self.engine)

    @property
    def writer(self) -> Engine:
        assert self.writer_engine is not None
        return self.writer_engine

    # -- statements (built with bound parameters, so each compiles once) ----------------

    def claim_statement(
        self,
        returning: Sequence[Any],
        *,
        where: Iterable[ColumnElement[bool]] = (),
        order_by: Sequence[Any] | None = None,
        values: Mapping[str, Any] | None = None,
        chosen: Any = None,
    ) -> Any:
        """`UPDATE … SET leased WHERE id IN (due rows, locked rows skipped) RETURNING …`
        with parameters `now`, `limit`, `owner`, `until`. `chosen` replaces the selection
        of ids (it must select ids of due rows; the lock clause is added here)."""
        s = self.spec
        now: Any = bindparam("now")
        if chosen is None:
            order = order_by if order_by is not None else (s.col(s.next_attempt_at), s.id)
            chosen = (
                select(s.id).where(s.is_due(now), *where).order_by(*order).limit(bindparam("limit"))
            )
        ids: Any = chosen.scalar_subquery()
        if self.postgres:
            # Materialized once: a subquery with LIMIT and SKIP LOCKED that the planner
            # re-scans (a nested loop) may pick other rows on each scan, and lease more than
            # `limit` of them.
            cte = skip_locked(chosen).cte("chosen")
            ids = select(cte.prefix_with("MATERIALIZED").c[s.key]).scalar_subquery()
        leased: dict[str, Any] = {
            s.lease_owner: bindparam("owner"),
            s.lease_until: bindparam("until"),
        }
        if s.status is not None:
            leased[s.status] = s.leased
        if s.attempts is not None:
            leased[s.attempts] = s.col(s.attempts) + 1
        leased.update(values or {})
        return update(s.table).where(s.id.in_(ids)).values(leased).returning(*returning)

    def finish_statement(
        self,
        values: Mapping[str, Any],
        returning: Sequence[Any] = (),
        where: Iterable[ColumnElement[bool]] = (),
    ) -> Any:
        """`UPDATE … SET values, lease released WHERE id in :ids AND held by :owner`."""
        s = self.spec
        stmt = (
            update(s.table)
            .where(ids_in(s.id, self.postgres), *self._held_by(bindparam("owner")), *where)
            .values({**values, **s.released()})
        )
        return stmt.returning(*(returning or (s.id,)))

    def _held_by(self, owner: Any) -> list[ColumnElement[bool]]:
        s = self.spec
        return [s.is_held(), s.col(s.lease_owner) == owner]

    def params(self, owner: str, limit: int, lease_seconds: float | None = None) -> dict[str, Any]:
        now = self.clock()
        seconds = self.lease_seconds if lease_seconds is None else lease_seconds
        return {
            "now": now,
            "limit": limit,
            "owner": owner,
            "until": now + timedelta(seconds=seconds),
        }

    # -- the operations ------------------------------------------------------------------

    def claim(
        self,
        owner: str,
        limit: int,
        returning: Sequence[Any] = (),
        *,
        where: Iterable[ColumnElement[bool]] = (),
        order_by: Sequence[Any] | None = None,
        values: Mapping[str, Any] | None = None,
        lease_seconds: float | None = None,
        tx: Connection | None = None,
    ) -> list[RowMapping]:
        """Lease up to `limit` due rows to `owner` (committed at once unless `tx` is given,
        so others skip them); the rows' `returning` columns, by id."""
        stmt = self.claim_statement(
            (self.spec.id, *returning), where=where, order_by=order_by, values=values
        )
        params = self.params(owner, limit, lease_seconds)
        if tx is not None:
            rows = tx.execute(stmt, params).mappings().all()
        else:
            with self.writer.begin() as own:
                rows = own.execute(stmt, params).mappings().all()
        return sorted(rows, key=lambda r: r[self.spec.key])

    def finish(
        self,
        tx: Connection,
        ids: Sequence[Any],
        owner: str,
        values: Mapping[str, Any],
        returning: Sequence[Any] = (),
        *,
        where: Iterable[ColumnElement[bool]] = (),
    ) -> list[Any]:
        """End `ids` with `values` in the caller's transaction; raise LeaseLost (so the caller
        rolls back its effects) unless every row was still held by `owner` (and matches
        `where`)."""
        if not ids:
            return []
        stmt = self.finish_statement(values, returning, where)
        rows = tx.execute(stmt, {"ids": list(ids), "owner": owner}).all()
        if len(rows) != len(ids):
            raise LeaseLost(f"{self.spec.table.name}: lease lost on some of {list(ids)}")
        return list(rows)

    def retry_or_dead(
        self,
        row_id: Any,
        owner: str,
        attempts: int,
        *,
        error: str | None = None,
        retry_after: float | None = None,
        transient: bool = True,
        values: Mapping[str, Any] | None = None,
        dead_values: Mapping[str, Any] | None = None,
        where: Iterable[ColumnElement[bool]] = (),
        returning: Sequence[Any] = (),
        tx: Connection | None = None,
    ) -> Failure:
        """A failed attempt (the `attempts`-th): due again after the backoff (never before
        `retry_after`), or dead when it was not `transient` or the attempts are used up.
        Written only while `owner` still holds the row."""
        s = self.spec
        now = self.clock()
        retry_at = self.backoff.next_attempt(attempts, now, retry_after) if transient else None
        written: dict[str, Any] = {**s.released(), **(values or {})}
        if s.error is not None and error is not None:
            written[s.error] = error[:2000]
        if retry_at is None:
            if s.status is not None:
                written[s.status] = s.dead
            if s.dead_at is not None:
                written[s.dead_at] = now
            written.update(dead_values or {})
        else:
            if s.status is not None:
                written[s.status] = s.retry
            written[s.next_attempt_at] = retry_at
        stmt = (
            update(s.table)
            .where(s.id == row_id, *self._held_by(owner), *where)
            .values(written)
            .returning(*(returning or (s.id,)))
        )
        if tx is not None:
            row = tx.execute(stmt).first()
        else:
            with self.writer.begin() as own:
                row = own.execute(stmt).first()
        return Failure(row is not None, retry_at, row)

    def extend(self, ids: Sequence[Any], owner: str, seconds: float | None = None) -> set[Any]:
        """Move the lease of `ids` held by `owner` forward (heartbeat); the ids still held."""
        if not ids:
            return set()
        s = self.spec
        until = self.clock() + timedelta(seconds=seconds or self.lease_seconds)
        with self.writer.begin() as tx:
            rows = tx.execute(
                update(s.table)
                .where(ids_in(s.id, self.postgres), *self._held_by(bindparam("owner")))
                .values({s.lease_until: until})
                .returning(s.id),
                {"ids": list(ids), "owner": owner},
            ).all()
        return {r[0] for r in rows}

    def recover_statement(
        self, returning: Sequence[Any] = (), where: Iterable[ColumnElement[bool]] = ()
    ) -> Any:
        """Expired leases taken back: due again now, or dead once the attempts are used up
        (parameters `now` and `max_attempts`); only rows matching `where`, when given."""
        s = self.spec
        now: Any = bindparam("now")
        values: dict[str, Any] = {**s.released(), s.next_attempt_at: now}
        if s.status is not None:
            if s.attempts is not None:
                values[s.status] = case(
                    (s.col(s.attempts) >= bindparam("max_attempts"), literal(s.dead)),
                    else_=literal(s.due[0]),
                )
            else:
                values[s.status] = s.due[0]
        if s.error is not None:
            expired = literal(s.expired_error)
            values[s.error] = func.coalesce(s.col(s.error), expired) if s.keep_error else expired
        if s.dead_at is not None and s.status is not None and s.attempts is not None:
            dies = s.col(s.attempts) >= bindparam("max_attempts")
            values[s.dead_at] = case((dies, now), else_=s.col(s.dead_at))
        stmt = update(s.table).where(s.expired(now), *where).values(values)
        return stmt.returning(*(returning or (s.id,)))

    def recover(
        self,
        returning: Sequence[Any] = (),
        tx: Connection | None = None,
        *,
        where: Iterable[ColumnElement[bool]] = (),
    ) -> list[Any]:
        """Take back expired leases (see `recover_statement`); the rows taken back. `where`:
        only those rows (a queue whose rows differ in their attempt budget recovers each
        group with its own backoff)."""
        if self.spec.status is None:
            return []  # a mutex: an expired lease is simply due (see Spec.is_due)
        params = {"now": self.clock(), "max_attempts": self.backoff.max_attempts}
        stmt = self.recover_statement(returning, where)
        if tx is not None:
            return list(tx.execute(stmt, params).all())
        with self.writer.begin() as own:
            return list(own.execute(stmt, params).all())

    def anything_due(self, where: Iterable[ColumnElement[bool]] = ()) -> bool:
        """A read (no write lock): is a row due now, or a lease expired?"""
        s = self.spec
        now = self.clock()
        with self.engine.connect() as conn:
            return (
                conn.execute(
                    select(s.id).where(or_(s.is_due(now), s.expired(now)), *where).limit(1)
                ).first()
                is not None
            )

    def next_due_at(self, where: Iterable[ColumnElement[bool]] = ()) -> datetime | None:
        """When a row is next due: the earliest next attempt of a waiting row, or the
        earliest lease to expire (its holder may have died)."""
        s = self.spec
        at = s.col(s.next_attempt_at)
        conditions = list(where)
        with self.engine.connect() as conn:
            if (
                s.null_is_due
                and conn.execute(
                    select(s.id).where(s.waiting(), at.is_(None), *conditions).limit(1)
                ).first()
            ):
                return self.clock()
            waiting = s.waiting() if s.status is not None else s.col(s.lease_until).is_(None)
            times = [
                conn.execute(select(func.min(at)).where(waiting, *conditions)).scalar(),
                conn.execute(
                    select(func.min(s.col(s.lease_until))).where(s.is_held(), *conditions)
                ).scalar(),
            ]
        return min((t for t in times if t is not None), default=None)


class Heartbeat:
    """Keeps a lease alive while long work runs, and ends work that runs past its timeout.

    Every `interval` seconds it extends the lease of `ids` (unless `extend` is off: the work's
    own transaction holds SQLite's one write lock, so nobody can take the rows meanwhile, and
    an extension would only wait for it); once `timeout` has passed it stops extending and
    calls `on_timeout` (e.g. cancelling the work's database statement), so the lease runs out
    and another worker may take the rows; the late finisher is then refused.
    """

    def __init__(
        self,
        queue: LeasedQueue,
        ids: Sequence[Any],
        owner: str,
        *,
        interval: float | None = None,
        timeout: float | None = None,
        on_timeout: Callable[[], None] | None = None,
        extend: bool = True,
    ) -> None:
        self.queue = queue
        self.ids = list(ids)
        self.owner = owner
        self.interval = interval if interval is not None else queue.lease_seconds / 3
        self.timeout = timeout
        self.on_timeout = on_timeout
        self.extend = extend
        self.lost = False
        self.timed_out = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hookyard-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._started = self.queue.clock()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        deadline = self.timeout
        waited = 0.0
        while True:
            step = self.interval
            if deadline is not None:
                step = min(step, max(0.0, deadline - waited))
            if self._stop.wait(step):
                return
            waited += step
            if deadline is not None and waited >= deadline:
                log.warning("work_timed_out", ids=self.ids[:20], owner=self.owner, seconds=deadline)
                self.timed_out = True
                if self.on_timeout is not None:
                    try:
                        self.on_timeout()
                    except Exception as exc:  # best effort: the lease still runs out
                        log.warning("heartbeat_timeout_failed", error=str(exc)[:300])
                return
            if not self.extend:
                continue
            try:
                held = self.queue.extend(self.ids, self.owner)
            except Exception as exc:  # database away: the lease may run out; finish will tell
                log.warning("heartbeat_failed", error=str(exc)[:300])
                continue
            if len(held) != len(self.ids):
                self.lost = True
                return


__all__ = [
    "LEASE_EXPIRED",
    "Backoff",
    "Clock",
    "Failure",
    "Heartbeat",
    "LeaseLost",
    "LeasedQueue",
    "Spec",
    "ids_in",
    "skip_locked",
    "utcnow",
]
