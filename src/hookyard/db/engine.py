"""Engines: SQLite in WAL mode by default, PostgreSQL through psycopg 3."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, Pool

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system: SQLite's own waiting only
    fcntl = None  # type: ignore[assignment]

from hookyard.config import normalise_database_url


def _sqlite_setup(durable_commits: bool) -> Any:
    # WAL lets readers run beside the single writer. FULL makes every commit durable against
    # power loss too (group commit keeps that to one fsync per batch): what an acknowledgement
    # promises. A worker process's commits (claims, handler effects with "done") are NORMAL:
    # not fsynced one by one, still safe when a process is killed (the WAL is written), and
    # made durable by the next fsync of the WAL or checkpoint; a power loss before that can
    # only undo them together, so the events are handled again (at least once, never lost).
    synchronous = "FULL" if durable_commits else "NORMAL"

    def on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT_SECONDS * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return on_connect


LOCK_TIMEOUT_SECONDS = 10.0  # SQLite's busy timeout, below, and the writer lock's


class WriterLock:
    """SQLite's single writer, queued fairly across the threads and processes of a database.

    SQLite makes a second writer wait by sleeping and retrying (1, 2, 5, 10 … 100 ms), so a
    writer can wait far longer than the transaction it waits for, and a worker process that
    commits batch after batch starves ingest's commits (acknowledgements waited hundreds of
    milliseconds). An exclusive `flock` on a file beside the database is a kernel queue
    instead: a waiter wakes the moment the lock is released. Every writer transaction of
    hookyard holds it from its BEGIN IMMEDIATE until its connection goes back to the pool.
    """

    def __init__(self, path: str) -> None:
        self._local = threading.Lock()  # flock is per open file: threads queue here first
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)

    def acquire(self) -> None:
        # Bounded like SQLite's own busy timeout: a thread that already holds the lock and
        # asks again (a writer transaction opened inside another) fails instead of hanging.
        if not self._local.acquire(timeout=LOCK_TIMEOUT_SECONDS):
            raise OperationalError(
                "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
            )
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # releases the GIL while it waits
            except BaseException:
                self._local.release()
                raise

    def release(self) -> None:
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._local.release()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


_HOLDS_LOCK = "hookyard_writer_lock"  # in a pooled connection's info: it holds the lock
_locks: weakref.WeakKeyDictionary[Pool, WriterLock] = weakref.WeakKeyDictionary()


def hold_writer_lock(engine: Engine, info: dict[Any, Any]) -> None:
    """Take the engine's writer lock for the pooled connection whose `info` this is (SQLite;
    released when the connection goes back to the pool). A no-op without one, or if held."""
    lock = _locks.get(engine.pool)
    if lock is not None and _HOLDS_LOCK not in info:
        lock.acquire()
        info[_HOLDS_LOCK] = lock


def _release_writer_lock(_dbapi: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
    lock: WriterLock | None = record.info.pop(_HOLDS_LOCK, None)
    if lock is not None:
        lock.release()


def _released_on_invalidate(
    dbapi: DBAPIConnection | None, record: ConnectionPoolEntry, _exc: BaseException | None
) -> None:
    _release_writer_lock(dbapi, record)  # the connection is closed: SQLite's lock is gone too


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's own transaction handling is off (isolation_level=None below). Writers take
    # the write lock up front, so two writers queue instead of failing on a read-to-write
    # lock upgrade; readers begin deferred and never block the writer (WAL).
    immediate = conn.get_execution_options().get(WRITER_OPTION, False)
    if immediate:
        hold_writer_lock(conn.engine, conn.connection.info)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


WRITER_OPTION = "hookyard_writer"


def writer(engine: Engine) -> Engine:
    """The same engine, whose transactions take SQLite's write lock at BEGIN."""
    return engine.execution_options(**{WRITER_OPTION: True})


def libpq_dsn(engine: Engine) -> str:
    """The engine's PostgreSQL URL as psycopg's own connect() takes it."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(url: str, *, pool_size: int = 10, durable_commits: bool = True) -> Engine:
    """An engine for `url`. `durable_commits` False (SQLite, a worker process that acknowledges
    nothing): commits are not fsynced one by one (see `_sqlite_setup`)."""
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        memory = ":memory:" in url
        engine = create_engine(
            url,
            poolclass=NullPool if memory else None,
            connect_args={
                "check_same_thread": False,
                "timeout": LOCK_TIMEOUT_SECONDS,
                "isolation_level": None,
            },
        )
        event.listen(engine, "connect", _sqlite_setup(durable_commits))
        event.listen(engine, "begin", _sqlite_begin)
        if not memory and engine.url.database:
            _locks[engine.pool] = WriterLock(f"{engine.url.database}-lock")
            event.listen(engine.pool, "checkin", _release_writer_lock)
            event.listen(engine.pool, "invalidate", _released_on_invalidate)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        connect_args={"connect_timeout": 3},
    )
