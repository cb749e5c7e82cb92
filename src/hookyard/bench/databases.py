"""Fresh databases for each scenario, and what the bench reads from them while it runs.

PostgreSQL runs create their own databases (`hookyard_bench_<pid>_<tag>`) on the server named
by `--pg-url` and drop them afterwards; no other database is touched.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


def _pg_url(admin_url: str, database: str, driver: str = "postgresql+psycopg") -> str:
    from sqlalchemy.engine import make_url

    url = make_url(admin_url).set(drivername=driver, database=database)
    return url.render_as_string(hide_password=False)


def _admin_database(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).database or "postgres"


class Databases:
    """Fresh databases for each scenario: SQLite files in the work directory, or PostgreSQL
    databases named `hookyard_bench_<pid>_<tag>`, created here and dropped at the end."""

    def __init__(self, workdir: Path, pg_admin_url: str) -> None:
        self.workdir = workdir
        self.pg_admin_url = pg_admin_url
        self.prefix = f"hookyard_bench_{os.getpid()}_"
        self._created: list[str] = []

    def admin_connection(self) -> Any:
        import psycopg

        return psycopg.connect(
            _pg_url(self.pg_admin_url, _admin_database(self.pg_admin_url), "postgresql"),
            autocommit=True,
            connect_timeout=5,
        )

    def check_postgres(self) -> str | None:
        """None when the server is reachable, else why not."""
        try:
            with self.admin_connection() as conn:
                conn.execute("SELECT 1")
        except Exception as exc:
            return f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        return None

    @contextlib.contextmanager
    def fresh(self, backend: str, tag: str) -> Iterator[str]:
        """A SQLAlchemy URL of a new, empty database, removed on exit."""
        if backend == "sqlite":
            path = self.workdir / f"{tag}.sqlite"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            yield f"sqlite:///{path}"
            return
        from psycopg import sql

        name = self.prefix + tag.replace("-", "_")
        with self.admin_connection() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)
        try:
            yield _pg_url(self.pg_admin_url, name)
        finally:
            self.drop(name)

    def backend_pids(self, url: str) -> list[int]:
        """PostgreSQL server processes connected to the database of `url` (none for SQLite)."""
        from sqlalchemy.engine import make_url

        name = make_url(url).database
        if not url.startswith("postgresql") or not name:
            return []
        try:
            with self.admin_connection() as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)
                ).fetchall()
        except Exception:
            return []
        return [int(r[0]) for r in rows]

    def drop(self, name: str) -> None:
        from psycopg import sql

        # Only ever a database this run created.
        if name not in self._created or not name.startswith(self.prefix):
            return
        with self.admin_connection() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self._created.remove(name)

    def drop_all(self) -> None:
        for name in list(self._created):
            with contextlib.suppress(Exception):
                self.drop(name)


class WaitSampler:
    """What the PostgreSQL backends of one database are doing, sampled: running, or waiting
    on what (`Lock:transactionid` is a row lock held by another transaction, `IO:WALSync` a
    commit's flush, `Client:ClientRead` the client's turn). Tells whether extra workers wait
    on each other or on the disk. Nothing on SQLite."""

    def __init__(self, databases: Databases, url: str) -> None:
        from sqlalchemy.engine import make_url

        self.samples: Counter[str] = Counter()
        self._name = make_url(url).database
        self._conn: Any = None
        if url.startswith("postgresql") and self._name:
            with contextlib.suppress(Exception):
                self._conn = databases.admin_connection()

    def sample(self) -> None:
        if self._conn is None:
            return
        try:
            rows = self._conn.execute(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
                "WHERE datname = %s AND backend_type = 'client backend'",
                (self._name,),
            ).fetchall()
        except Exception:
            return
        for state, kind, event in rows:
            if state == "idle":
                continue  # a pooled connection between transactions
            if kind is None:
                self.samples["running"] += 1
            else:
                self.samples[f"{kind}:{event}"] += 1

    def shares(self, top: int = 5) -> dict[str, float]:
        """The commonest states, in % of the samples of busy backends."""
        total = sum(self.samples.values())
        if not total:
            return {}
        return {what: round(100 * n / total, 1) for what, n in self.samples.most_common(top)}

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()


def count_rows(url: str, table: str) -> int | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    except Exception:
        return None
    finally:
        engine.dispose()


def prepare(
    url: str,
    tenant: str | None,
    companies: Sequence[tuple[int, str, str]],
    changed_at: datetime,
) -> None:
    """Migrate a fresh database and create the customers linked to HubSpot companies
    (`(company id, name, BAN)`), as a deployment's would already be; our side of their fields
    last changed at `changed_at` (before the workload's changes, so that HubSpot's newer
    values apply)."""
    from hookyard.db.engine import make_engine
    from hookyard.db.migrate import upgrade
    from hookyard.domain.crm.service import create_customer

    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as tx:
            for company_id, name, ban in companies:
                create_customer(
                    tx,
                    tenant,
                    name,
                    credit_limit="10000",
                    services=("voice",),
                    hubspot_company_id=company_id,
                    ban=ban,
                    at=changed_at,
                )
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Tracked:
    """A queue table the bench watches, by its statuses."""

    table: str
    finished: tuple[str, ...]  # nothing will pick these up again
    in_flight: tuple[str, ...]  # what the workers still have to do
    failed: tuple[str, ...]  # waiting for a retry, not counted in flight
    with_errors: tuple[str, ...]  # whose `last_error` is worth showing


EVENTS = Tracked(
    "events",
    finished=("done", "ignored", "superseded", "dead"),
    in_flight=("pending", "processing"),
    failed=("failed",),
    with_errors=("failed", "dead"),
)
# Destinations' deliveries: waiting until delivered or dead, a retry included.
DELIVERIES = Tracked(
    "destination_deliveries",
    finished=("delivered", "dead"),
    in_flight=("pending", "sending", "failed"),
    failed=(),
    with_errors=("failed", "dead"),
)


def _in(statuses: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{s}'" for s in statuses) + ")"  # the bench's own constants


@dataclass(frozen=True)
class QueueCount:
    total: int  # every row stored
    finished: int  # done, ignored, superseded, dead (deliveries: delivered, dead)
    in_flight: int  # pending or processing: what the workers still have to do
    failed: int  # waiting for a retry after a handler error

    @property
    def unfinished(self) -> int:
        return self.in_flight + self.failed


class Queue:
    """Counts of the inbox (or another queue table: `tracked`), read the way an operator
    would (plain SELECTs, no writer lock)."""

    def __init__(self, url: str, tracked: Tracked = EVENTS) -> None:
        self.engine: Engine = create_engine(url, pool_size=1, max_overflow=0)
        self.tracked = tracked

    def by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT status, count(*) FROM {self.tracked.table} GROUP BY status")
            )
            return {str(status): int(n) for status, n in rows}

    def count(self) -> QueueCount:
        """Every status (reads the whole table: at the ends of a run, not while it runs)."""
        by_status = self.by_status()
        t = self.tracked
        return QueueCount(
            total=sum(by_status.values()),
            finished=sum(by_status.get(s, 0) for s in t.finished),
            in_flight=sum(by_status.get(s, 0) for s in t.in_flight),
            failed=sum(by_status.get(s, 0) for s in t.failed),
        )

    def in_flight(self) -> int:
        """Rows still to do (events pending or processing): an index range as long as the
        backlog, cheap to poll."""
        t = self.tracked
        with self.engine.connect() as conn:
            found = conn.execute(
                text(f"SELECT count(*) FROM {t.table} WHERE status IN {_in(t.in_flight)}")
            ).scalar_one()
        return int(found)

    def errors(self, limit: int = 3) -> list[str]:
        """The commonest first lines of `last_error` of failed and dead rows."""
        t = self.tracked
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT last_error FROM {t.table} WHERE status IN {_in(t.with_errors)} "
                    "AND last_error IS NOT NULL LIMIT 500"
                )
            )
            lines = [str(r[0]).strip().splitlines()[0][:200] for r in rows if str(r[0]).strip()]
        return [f"{n} x {line}" for line, n in Counter(lines).most_common(limit)]

    def wait_drained(self, timeout: float, interval: float = 0.05) -> tuple[float | None, int]:
        """Poll until nothing is in flight (events: pending or processing):
        (`time.perf_counter()` when that was seen, or None after `timeout` seconds; rows
        still in flight). Failed events wait for their retry and are reported, not waited
        for (a failed delivery is waited for)."""
        deadline = time.perf_counter() + timeout
        while True:
            left = self.in_flight()
            now = time.perf_counter()
            if left == 0:
                return now, 0
            if now >= deadline:
                return None, left
            time.sleep(interval)

    def close(self) -> None:
        self.engine.dispose()
