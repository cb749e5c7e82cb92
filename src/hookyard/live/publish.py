"""Publishing a change inside the transaction that makes it: it reaches live clients if and
only if that transaction commits.

- PostgreSQL: `pg_notify('hookyard_live', <change>)`. PostgreSQL delivers a NOTIFY only when
  its transaction commits (and drops it on rollback), to every session that LISTENs: the
  LISTEN thread of each API process (`feed.py`), whichever process made the change.
- SQLite (one process): the changes are collected on the transaction's connection and handed
  to the process's hub once the COMMIT has succeeded. SQLAlchemy's `commit` event fires just
  *before* the COMMIT, so it only sets them aside. They are handed over when the connection
  next begins a transaction or goes back to the pool, and dropped by a rollback or by an
  error of the COMMIT itself (SQLAlchemy reports that error before either). Without a hub
  attached (`attach_local`) nothing is collected.

Ingest publishes one `event_accepted` change per new event (`accepted_change`), on a channel
of its own so that only processes with a socket asking for them receive them:
- PostgreSQL: the batch's insert statement itself calls `pg_notify('hookyard_accepted', …)`
  for each new row (inbox/insert.py builds the same text in SQL), so they commit with it.
- SQLite: the batch is written on a raw driver connection (no SQLAlchemy events), so the
  inbox hands its new events to `accepted_receivers` itself once its COMMIT has returned;
  while nothing attached (`attach_accepted`) wants them, none is even built.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import ExceptionContext

from hookyard.live.change import Change, ChangeKind

CHANNEL = "hookyard_live"
ACCEPTED_CHANNEL = "hookyard_accepted"  # ingest's `event_accepted` changes

# Keys in the DBAPI connection's `info` (it outlives one checkout, hence the care to empty it).
_PENDING = "hookyard_live_pending"  # this transaction's changes (present: a hub listens)
_COMMITTED = "hookyard_live_committed"  # set aside by the commit event; handed over after

Deliver = Callable[[Sequence[Change]], None]

_ONE = text("SELECT pg_notify(:channel, :payload)")
# Several changes as one JSON array of their texts: a text[] parameter would have psycopg
# escape every quote of every payload (a regex per change, a tenth of a worker's CPU).
_MANY = text(
    "SELECT pg_notify(:channel, p) FROM json_array_elements_text(CAST(:payloads AS json)) AS p"
)


def publish(tx: Connection, *changes: Change) -> None:
    """Publish `changes` when (and only if) `tx`'s transaction commits."""
    if not changes:
        return
    if tx.dialect.name == "postgresql":
        if len(changes) == 1:
            tx.execute(_ONE, {"channel": CHANNEL, "payload": changes[0].encode()})
        else:
            payloads = "[" + ",".join(json.dumps(c.encode()) for c in changes) + "]"
            tx.execute(_MANY, {"channel": CHANNEL, "payloads": payloads})
        return
    pending: _Pending | None = tx.info.get(_PENDING)
    if pending is not None and pending.local.delivers:
        pending.changes.extend(changes)


def attach_local(engine: Engine, deliver: Deliver) -> Callable[[], None]:
    """Hand the changes committed through `engine` (and its `writer`) to `deliver`, in this
    process (SQLite); several hubs may listen to one engine. Returns the function that
    detaches `deliver`."""
    local = _locals.get(engine)
    if local is None:
        local = _locals[engine] = _Local()
        local.add(engine)
    local.delivers.append(deliver)

    def detach() -> None:
        if deliver in local.delivers:
            local.delivers.remove(deliver)
        if not local.delivers and _locals.get(engine) is local:
            local.remove(engine)
            del _locals[engine]

    return detach


def accepted_change(
    event_id: int, tenant: str | None, source: str, event_type: str, received_at: datetime
) -> Change:
    """What a live client is told of an event ingest stored (never its payload)."""
    data = {"source": source, "event_type": event_type, "received_at": received_at}
    return Change(ChangeKind.EVENT_ACCEPTED, event_id, tenant, "pending", data, received_at)


def attach_accepted(
    engine: Engine, deliver: Deliver, wanted: Callable[[], bool]
) -> Callable[[], None]:
    """SQLite: hand the events the inbox accepts through `engine` to `deliver` (after their
    commit) while `wanted()` says so. Returns the function that detaches it."""
    receiver = _Receiver(deliver, wanted)
    _accepted.setdefault(engine, []).append(receiver)

    def detach() -> None:
        receivers = _accepted.get(engine, [])
        if receiver in receivers:
            receivers.remove(receiver)

    return detach


def accepted_receivers(engine: Engine) -> list[Deliver]:
    """Those attached to `engine` that want accepted events now (usually none: the inbox
    then builds no change at all)."""
    receivers = _accepted.get(engine)
    if not receivers:
        return []
    return [r.deliver for r in list(receivers) if r.wanted()]


@dataclass(eq=False, slots=True)
class _Receiver:
    deliver: Deliver
    wanted: Callable[[], bool]


@dataclass(slots=True)
class _Pending:
    local: _Local
    changes: list[Change] = field(default_factory=list)


class _Local:
    """The commit hooks of one engine, handing its committed changes to every `deliver`."""

    def __init__(self) -> None:
        self.delivers: list[Deliver] = []
        # `begin` first: before the engine's own BEGIN (engine.py), whose failure must not
        # be taken for a failed COMMIT of the previous transaction.
        self._listeners: list[tuple[str, Callable[..., None], bool]] = [
            ("begin", self._begin, True),
            ("commit", self._commit, False),
            ("rollback", self._rollback, False),
            ("handle_error", self._handle_error, False),
            ("checkin", self._checkin, False),
        ]

    def add(self, engine: Engine) -> None:
        for name, fn, first in self._listeners:
            event.listen(engine, name, fn, insert=first)

    def remove(self, engine: Engine) -> None:
        for name, fn, _ in self._listeners:
            event.remove(engine, name, fn)

    def _begin(self, conn: Connection) -> None:
        self._hand_over(conn.info)
        conn.info[_PENDING] = _Pending(self)

    def _commit(self, conn: Connection) -> None:
        pending: _Pending | None = conn.info.pop(_PENDING, None)
        if pending is not None and pending.changes:
            conn.info[_COMMITTED] = pending.changes

    def _rollback(self, conn: Connection) -> None:
        conn.info.pop(_PENDING, None)
        conn.info.pop(_COMMITTED, None)

    def _handle_error(self, context: ExceptionContext) -> None:
        # Between the commit event and the hand-over the only statement is the COMMIT: an
        # error then means it failed, and its changes never happened.
        if context.connection is not None:
            context.connection.info.pop(_COMMITTED, None)

    def _checkin(self, _dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            self._hand_over(record.info)

    def _hand_over(self, info: dict[Any, Any]) -> None:
        committed: list[Change] | None = info.pop(_COMMITTED, None)
        if committed:
            for deliver in list(self.delivers):
                deliver(committed)


_locals: weakref.WeakKeyDictionary[Engine, _Local] = weakref.WeakKeyDictionary()
_accepted: weakref.WeakKeyDictionary[Engine, list[_Receiver]] = weakref.WeakKeyDictionary()
