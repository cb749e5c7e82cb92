"""A claimed batch's database work, done with as few statements as the rules allow.

A worker hands a domain every claimed event of its provider at once, in one transaction
(the one that also marks them finished). The domain reads the rows its events name with one
statement per table (`rows`, `ensure`), applies each event in order to those rows in memory,
and records what changes here; `flush` then writes it with one statement per table and
column set (`executemany`), publishes the live changes together and attributes the events to
their owners. Statements are built once per shape and cached, so no event builds SQL.

Reads flush first, so a query always sees the batch's own writes; a rare path that needs a
statement of its own (`execute`) runs after everything recorded before it. Row locks
(`FOR UPDATE` on PostgreSQL; SQLite has one writer at a time) are taken in key order, so two
workers locking overlapping sets of rows wait for each other instead of deadlocking.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Result,
    Table,
    bindparam,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from hookyard.inbox.store import attribute_events
from hookyard.live.change import Change
from hookyard.live.publish import publish

Row = dict[str, Any]
Key = str | tuple[str, ...]  # a unique column, or the columns of a unique constraint


class Batch:
    """The reads and pending writes of one claimed batch inside `tx` (never commits)."""

    def __init__(self, tx: Connection) -> None:
        self.tx = tx
        self._dialect = tx.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):  # pragma: no cover - guarded by db/
            raise NotImplementedError(f"no batch writes for {self._dialect}")
        # table -> primary key -> the columns changed since the last flush (latest value wins)
        self._updates: dict[Table, dict[Any, Row]] = {}
        # (table, conflict keys) -> rows to insert, in the order they were recorded
        self._inserts: dict[tuple[Table, tuple[str, ...] | None], list[Row]] = {}
        self._changes: list[Change] = []
        self._owners: dict[int, str] = {}

    # -- reads ------------------------------------------------------------------------------

    def select(
        self, table: Table, column: Key, keys: Iterable[Any], *, lock: bool = False
    ) -> list[Row]:
        """Every row whose `column` (or tuple of columns) is one of `keys`, in key order
        (locked with `lock`)."""
        wanted = sorted(set(keys))
        if not wanted:
            return []
        self.flush()
        params: dict[str, Any] = {"keys": wanted}
        if not isinstance(column, str):
            params["leading"] = sorted({key[0] for key in wanted})
        found = self.tx.execute(_select_in(table, column, lock), params).mappings()
        return [dict(row) for row in found]

    def rows(
        self, table: Table, column: Key, keys: Iterable[Any], *, lock: bool = False
    ) -> dict[Any, Row]:
        """The rows of `keys` by key, where `column` is unique (a tuple of columns: keys are
        tuples)."""
        return {_key_of(row, column): row for row in self.select(table, column, keys, lock=lock)}

    def ensure(
        self, table: Table, column: Key, new: Mapping[Any, Row], *, lock: bool = False
    ) -> dict[Any, Row]:
        """The row of every key of `new` (by the unique `column`), inserting the missing ones
        from `new`'s values (insert-or-nothing: a concurrent insert of the same key wins and
        is read back)."""
        rows = self.rows(table, column, new, lock=lock)
        missing = {key: values for key, values in new.items() if key not in rows}
        if missing:
            rows |= self.create(table, column, missing)
            # A concurrent insert of the same key won: read its row (committed by now).
            rows |= self.rows(table, column, [k for k in missing if k not in rows], lock=lock)
        return rows

    def create(self, table: Table, column: Key, new: Mapping[Any, Row]) -> dict[Any, Row]:
        """Insert now the rows of `new` (by the unique `column`), insert-or-nothing as in
        `ensure`; the rows inserted, by key (a key missing there was inserted concurrently:
        read it with `rows`). Until the transaction ends no one else can lock or change the
        rows it inserted, so they need no lock. For a domain that reads its rows with several
        statements (some locked, some not) but inserts the missing ones together."""
        if not new:
            return {}
        self.flush()
        # Key order: two workers inserting overlapping keys wait instead of deadlocking.
        unique = (column,) if isinstance(column, str) else column
        rows = [new[key] for key in sorted(new)]
        inserted = self.tx.execute(_insert_returning(table, unique, self._dialect), rows)
        found = [dict(row) for row in inserted.mappings()]
        return {_key_of(row, column): row for row in found}

    def execute(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Result[Any]:
        """Any other statement (a read, a rare write), after everything recorded is written."""
        self.flush()
        return self.tx.execute(statement, params)

    # -- writes -----------------------------------------------------------------------------

    def update(self, table: Table, key: Any, values: Mapping[str, Any]) -> None:
        """Change the row of primary key `key` (written at the next flush, once per row)."""
        if values:
            self._updates.setdefault(table, {}).setdefault(key, {}).update(values)

    def insert(self, table: Table, values: Row, *, unless: Sequence[str] | None = None) -> None:
        """Insert a row; with `unless` (a unique key's columns), only if no row has that key."""
        self._inserts.setdefault((table, None if unless is None else tuple(unless)), []).append(
            values
        )

    def publish(self, *changes: Change) -> None:
        """Live changes, published with the batch's transaction (hookyard.live)."""
        self._changes.extend(changes)

    def attribute(self, event_id: int, tenant: str | None, current: str | None) -> None:
        """The event belongs to the tenant owning the entity it names (written at flush)."""
        if tenant is not None and tenant != current:
            self._owners[event_id] = tenant

    def flush(self) -> None:
        """Write everything recorded: inserts first (new rows of other tables may name rows
        updated here, never the reverse), then the updates, one statement per shape."""
        inserts, self._inserts = self._inserts, {}
        for (table, unless), rows in inserts.items():
            for _, same in _by_shape(rows):
                self.tx.execute(_insert(table, unless, self._dialect), same)
        updates, self._updates = self._updates, {}
        for table, by_key in updates.items():
            key = _primary_key(table)
            params = [{"_key": k, **{f"v_{c}": v for c, v in values.items()}}
                      for k, values in sorted(by_key.items())]  # fmt: skip
            for shape, same in _by_shape(params):
                columns = tuple(name[2:] for name in shape if name != "_key")
                self.tx.execute(_update(table, key, columns), same)
        if self._owners:
            owners, self._owners = self._owners, {}
            attribute_events(self.tx, owners)
        if self._changes:
            changes, self._changes = self._changes, []
            publish(self.tx, *changes)


def _by_shape(rows: Sequence[Row]) -> list[tuple[tuple[str, ...], list[Row]]]:
    """Rows grouped by their set of keys (one statement each), in first-seen order."""
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.items())


def _primary_key(table: Table) -> str:
    (column,) = table.primary_key.columns
    name: str = column.name
    return name


def _key_of(row: Row, column: Key) -> Any:
    return row[column] if isinstance(column, str) else tuple(row[c] for c in column)


@functools.cache
def _select_in(table: Table, column: Key, lock: bool) -> Executable:
    if isinstance(column, str):
        order: list[ColumnElement[Any]] = [table.c[column]]
        where = [order[0].in_(bindparam("keys", expanding=True))]
    else:
        order = [table.c[c] for c in column]
        # The leading column's values too: SQLite searches a composite unique index only by a
        # plain IN on its leading column (a tuple IN alone scans the whole index).
        where = [
            order[0].in_(bindparam("leading", expanding=True)),
            tuple_(*order).in_(bindparam("keys", expanding=True)),
        ]
    statement = select(table).where(*where).order_by(*order)
    return statement.with_for_update() if lock else statement


@functools.cache
def _insert(table: Table, unless: tuple[str, ...] | None, dialect: str) -> Executable:
    # Executed with a list of rows of one shape: the columns are the rows' keys.
    if unless is None:
        return insert(table)
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return dialect_insert(table).on_conflict_do_nothing(index_elements=list(unless))


@functools.cache
def _insert_returning(table: Table, unless: tuple[str, ...], dialect: str) -> Executable:
    # One statement for all the rows (SQLAlchemy's "insertmanyvalues"), returning those inserted.
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        dialect_insert(table)
        .on_conflict_do_nothing(index_elements=list(unless))
        .returning(*table.c)
    )


@functools.cache
def _update(table: Table, key: str, columns: Collection[str]) -> Executable:
    return (
        update(table)
        .where(table.c[key] == bindparam("_key"))
        .values({name: bindparam(f"v_{name}") for name in columns})
    )
