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

Ingest publishes nothing: only workers, domain services and the API do. (On SQLite an
ingest batch's pool check-in merely finds nothing to hand over.)
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import ExceptionContext

from hookyard.live.change import Change

CHANNEL = "hookyard_live"

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
