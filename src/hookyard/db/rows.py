"""Portable row helpers, run inside the caller's transaction on either engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, Table, and_, insert, select
from sqlalchemy.dialects import postgresql, sqlite


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
