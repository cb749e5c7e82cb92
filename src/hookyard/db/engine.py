"""Engines: SQLite in WAL mode by default, PostgreSQL through psycopg 3."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import NullPool

from hookyard.config import normalise_database_url


def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # WAL lets readers run beside the single writer; FULL makes every commit durable
    # against power loss too (group commit keeps that to one fsync per batch).
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's own transaction handling is off (isolation_level=None below). Writers take
    # the write lock up front, so two writers queue on busy_timeout instead of failing on a
    # read-to-write lock upgrade; readers begin deferred and never block the writer (WAL).
    immediate = conn.get_execution_options().get(WRITER_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


WRITER_OPTION = "hookyard_writer"


def writer(engine: Engine) -> Engine:
    """The same engine, whose transactions take SQLite's write lock at BEGIN."""
    return engine.execution_options(**{WRITER_OPTION: True})


def libpq_dsn(engine: Engine) -> str:
    """The engine's PostgreSQL URL as psycopg's own connect() takes it."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            poolclass=NullPool if ":memory:" in url else None,
            connect_args={"check_same_thread": False, "timeout": 10, "isolation_level": None},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        connect_args={"connect_timeout": 3},
    )
