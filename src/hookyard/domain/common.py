"""What every domain module shares: where a state came from, and portable row helpers that
run inside the worker's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, Table, and_, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hookyard.db.schema import events
from hookyard.providers.base import StoredEvent


class SyncSource(StrEnum):
    WEBHOOK = "webhook"
    POLLING = "polling"
    MANUAL = "manual"

    @classmethod
    def of_origin(cls, origin: str) -> SyncSource:
        # A replay re-applies what was received, so it keeps the delivery's kind: events
        # replayed from the inbox were webhooks unless they say otherwise.
        try:
            return cls(origin)
        except ValueError:
            return cls.WEBHOOK


def is_older(ts: datetime | None, applied: datetime | None) -> bool:
    """Guarantee 4: an event older than the state it would change is superseded. Without a
    provider time there is nothing to order by, so the event applies; equal times apply too
    (providers' clocks have coarse resolution; the later-handled one wins)."""
    return ts is not None and applied is not None and ts < applied


def locked(tx: Connection, table: Table, where: ColumnElement[bool]) -> RowMapping | None:
    """The row, locked until the transaction ends (FOR UPDATE on PostgreSQL; SQLite has one
    writer at a time and SQLAlchemy leaves the clause out)."""
    return tx.execute(select(table).where(where).with_for_update()).mappings().first()


def insert_missing(
    tx: Connection, table: Table, values: Mapping[str, Any], keys: Sequence[str]
) -> None:
    """Insert the row unless one with the same `keys` exists (a concurrent insert waits)."""
    if tx.dialect.name == "postgresql":
        tx.execute(
            postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=keys)
        )
    elif tx.dialect.name == "sqlite":
        tx.execute(sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=keys))
    else:  # pragma: no cover - another engine: its transaction isolation has to do
        where = and_(*(table.c[k] == values[k] for k in keys))
        if tx.execute(select(table).where(where)).first() is None:
            tx.execute(insert(table).values(values))


def attribute_event(tx: Connection, event: StoredEvent, owner: str | None) -> None:
    """The event belongs to the tenant that owns the entity it names (a TCR brand's owner, a
    WABA's, a lead's, a customer's), whatever the receiving source said: written in the
    handler's transaction, so the event's tenant and its effects commit together."""
    if owner is not None and owner != event.tenant:
        tx.execute(update(events).where(events.c.id == event.id).values(tenant=owner))
