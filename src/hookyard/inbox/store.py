"""The inbox's queue: claim, finish, fail, lease recovery, replay, retention. `EventStore`
is the one object callers use; it adds the batch insert (insert.py) and the reads (reads.py)
(and queries.py: the reads other packages make, by name)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    RowMapping,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    or_,
    select,
    text,
    update,
)

from hookyard.db.engine import writer
from hookyard.db.schema import DUE_SQL, events, requests
from hookyard.inbox.insert import EventInserts
from hookyard.inbox.model import FINISHED, Status
from hookyard.inbox.reads import EventFilter, EventReads, decode_payload
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


class Dependents(Protocol):
    """Rows another package keeps per event, without a foreign key (the destinations'
    deliveries: hookyard.destinations.retention). Retention keeps an event while they still
    need it, and deletes theirs with the events it purges, in its transaction."""

    def keeps(self, event_id: ColumnElement[Any]) -> ColumnElement[bool]:
        """True while the event `event_id` (a column of `events`) must stay."""
        ...

    def names(self, event_id: ColumnElement[Any]) -> ColumnElement[bool]:
        """True while any of their rows names the event."""
        ...

    def purge(self, tx: Connection, event_ids: Select[Any]) -> None:
        """Delete their rows of the events `event_ids` selects."""
        ...


class EventStore(EventReads, EventInserts):
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
        # Others' rows retention keeps events for and purges with them (`Dependents`).
        self.dependents: list[Dependents] = []

    @property
    def backoff(self) -> Backoff:
        return self.queue.backoff

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
                returning=_LIVE_COLUMNS,
                tx=tx,
            )
            if failure.recorded:  # the row as written, to live clients (on commit)
                publish(tx, _event_change(failure.row, self.queue.clock()))
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

    def purge_finished(
        self,
        older_than: datetime,
        *,
        audit_providers: Iterable[str] = (),
        audit_older_than: datetime | None = None,
    ) -> int:
        """Retention: delete finished events received before `older_than`, and the requests
        left with no event. The events of `audit_providers` are an audit trail: kept unless
        `audit_older_than` is given, and then deleted once received before it. An event a
        dependent still `keeps` (a delivery not yet delivered or dead) stays; the dependents'
        rows of the others go with them."""
        age = events.c.received_at < older_than
        if audit := sorted(set(audit_providers)):
            age = and_(events.c.provider.not_in(audit), age)
            if audit_older_than is not None:
                audited = and_(
                    events.c.provider.in_(audit), events.c.received_at < audit_older_than
                )
                age = or_(age, audited)
                older_than = max(older_than, audit_older_than)
        due = and_(
            events.c.status.in_([s.value for s in FINISHED]),
            age,
            *(~d.keeps(events.c.id) for d in self.dependents),
        )
        with self.writer.begin() as tx:
            for dependent in self.dependents:
                dependent.purge(tx, select(events.c.id).where(due))
            # An event named again meanwhile (PostgreSQL: a row that became finished since
            # the statement above) waits for the next purge rather than leave rows behind.
            named = (~d.names(events.c.id) for d in self.dependents)
            purged = tx.execute(delete(events).where(due, *named)).rowcount
            # A request goes once no event names it (an audit event keeps its request).
            tx.execute(
                delete(requests).where(
                    requests.c.received_at < older_than,
                    ~exists().where(events.c.request_id == requests.c.id),
                )
            )
            return purged


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
