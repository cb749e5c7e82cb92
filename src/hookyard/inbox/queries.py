"""The reads other packages make of the inbox, by name: the alert rules measure it, a
reconciler asks whether a repair is queued already, and a destination's delivery reads the
bytes it sends. They run on the caller's connection.

Only the inbox queries `events` (tests/test_layers.py checks that no module outside `inbox/`
imports the table); the queue's own statements (claim, finish, replay, retention) are
store.py's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, case, func, or_, select

from hookyard.db.schema import DUE_SQL, events, requests
from hookyard.inbox.model import DUE, FINISHED, Origin, Status

# An event is judged once a handler ran it: finished, or failing. Failing: its last attempt
# failed (waiting for a retry, dead, or being retried right now).
_FAILING = or_(
    events.c.status.in_([Status.FAILED.value, Status.DEAD.value]),
    and_(events.c.status == Status.PROCESSING.value, events.c.attempts > 1),
)
_JUDGED = or_(events.c.status.in_([s.value for s in FINISHED]), _FAILING)


def judged_by_source(conn: Connection, since: datetime) -> list[tuple[str, int, int]]:
    """Per source, of the events received since `since` that a handler ran: how many, and
    how many of them are failing."""
    query = (
        select(events.c.source, func.count(), func.sum(case((_FAILING, 1), else_=0)))
        .where(events.c.received_at >= since, _JUDGED)
        .group_by(events.c.source)
    )
    return [(s, int(judged), int(failing or 0)) for s, judged, failing in conn.execute(query)]


def dead_by_source(conn: Connection) -> list[tuple[str, int]]:
    """Per source, how many events are dead (waiting for a person to replay them)."""
    query = (
        select(events.c.source, func.count())
        .where(events.c.status == Status.DEAD.value)
        .group_by(events.c.source)
    )
    return [(s, int(n)) for s, n in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class Due:
    id: int
    source: str
    next_attempt_at: datetime  # since when it is due


def oldest_due(conn: Connection, now: datetime) -> Due | None:
    """The due event that has waited longest for a worker, or None. Its query is the
    claim's own (the partial index ix_events_due)."""
    row = conn.execute(
        select(events.c.id, events.c.source, events.c.next_attempt_at)
        .where(DUE_SQL, events.c.next_attempt_at <= now)
        .order_by(events.c.next_attempt_at, events.c.id)
        .limit(1)
    ).first()
    return None if row is None else Due(int(row.id), row.source, row.next_attempt_at)


def polled_event_waiting(conn: Connection, source: str, entity_key: str) -> bool:
    """Whether an event a reconciler fed for this entity of `source` is not handled yet
    (due, or being handled)."""
    waiting = conn.execute(
        select(events.c.id)
        .where(
            events.c.source == source,
            events.c.entity_key == entity_key,
            events.c.origin == Origin.POLLING.value,
            events.c.status.in_([*(s.value for s in DUE), Status.PROCESSING.value]),
        )
        .limit(1)
    ).first()
    return waiting is not None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What a destination receives of an event: its own bytes and their content type."""

    body: bytes
    content_type: str


_compact = json.JSONEncoder(separators=(",", ":")).encode


def outgoing(conn: Connection, event_ids: Iterable[int]) -> dict[int, Outgoing]:
    """The bytes to forward of each event still stored: the raw body of the request that
    carried it when the event is that whole body (exactly as the provider sent it, with its
    content type), else the event's own JSON (one event of a batch request)."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return {}
    rows = conn.execute(
        select(events.c.id, events.c.payload, requests.c.body, requests.c.headers)
        .select_from(events.outerjoin(requests, requests.c.id == events.c.request_id))
        .where(events.c.id.in_(wanted))
    )
    found: dict[int, Outgoing] = {}
    for row in rows:
        if row.payload is None and row.body is not None:
            headers = row.headers if isinstance(row.headers, dict) else {}
            kind = headers.get("content-type") or "application/octet-stream"
            found[int(row.id)] = Outgoing(bytes(row.body), str(kind))
        else:
            found[int(row.id)] = Outgoing(_compact(row.payload).encode(), "application/json")
    return found
