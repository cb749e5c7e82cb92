"""Helpers for the fault-injection and multi-process tests: a client load that records every
answer, checks of what the database holds afterwards, and a private PostgreSQL cluster that a
test may stop and start without touching the shared server."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import Engine, func, select

from hookyard.db.schema import events
from hookyard.providers.base import Source
from hookyard.testing.simulate import Delivery
from tests.handlers import effects
from tests.support import delivery, free_port, wait_for

# -- load -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What one request got back: a status and its JSON, or no answer at all (`error`)."""

    dedup_key: str
    base: str
    status: int | None
    body: Any = None
    error: str | None = None
    seconds: float = 0.0  # how long the answer took
    delivery: Delivery | None = field(default=None, repr=False, compare=False)

    @property
    def acked(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def dedup_key_of(headers: dict[str, str]) -> str:
    # The generic Standard Webhooks adapter dedupes on the delivery's `webhook-id`.
    return f"id:{headers['webhook-id']}"


def post(client: httpx.Client, base: str, d: Delivery) -> Answer:
    """POST a delivery built for http://testserver to `base` instead."""
    key = dedup_key_of(d.headers)
    started = time.monotonic()
    try:
        response = client.post(
            d.url.replace("http://testserver", base), content=d.body, headers=d.headers
        )
    except httpx.HTTPError as exc:
        return Answer(
            key,
            base,
            None,
            error=f"{type(exc).__name__}: {exc}",
            seconds=time.monotonic() - started,
            delivery=d,
        )
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:500]
    return Answer(
        key, base, response.status_code, body, seconds=time.monotonic() - started, delivery=d
    )


def send(client: httpx.Client, base: str, source: Source, seq: int, **data: Any) -> Answer:
    return post(client, base, delivery(source, seq, **data))


def retry_unacknowledged(base: str, answers: Iterable[Answer]) -> list[Answer]:
    """What a provider does after a 503 or a lost connection: send the same delivery again.

    Each must now be answered 200: `accepted` if it was never stored, `duplicate` if its
    commit landed after all (the answer was lost, or came too late).
    """
    again = []
    with httpx.Client(timeout=30) as client:
        for answer in answers:
            if not answer.acked:
                assert answer.delivery is not None
                again.append(post(client, base, answer.delivery))
    refused = [a for a in again if a.status != 200]
    assert not refused, f"{len(refused)} retries not accepted: {refused[:5]}"
    return again


class Load:
    """`threads` clients sending distinct signed deliveries to `bases` (round-robin by thread).

    Bounded in count (`per_thread`) and time (`seconds`); `stop()` ends it early. Every
    request's answer is kept in `answers`.
    """

    def __init__(
        self,
        source: Source,
        bases: Sequence[str],
        *,
        threads: int = 4,
        per_thread: int = 1000,
        seconds: float = 60.0,
        timeout: float = 15.0,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.source = source
        self.bases = list(bases)
        self.per_thread = per_thread
        self.seconds = seconds
        self.timeout = timeout
        self.data = data or {}
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), name=f"load-{i}", daemon=True)
            for i in range(threads)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _client(self, index: int) -> None:
        base = self.bases[index % len(self.bases)]
        deadline = time.monotonic() + self.seconds
        with httpx.Client(timeout=self.timeout) as client:
            for i in range(self.per_thread):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                answer = send(client, base, self.source, index * self.per_thread + i, **self.data)
                with self._lock:
                    self.answers.append(answer)
                if not answer.acked:
                    # A server that is down or refusing: don't spin, a provider backs off too.
                    self._stop.wait(0.02)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"load clients still running: {alive}"

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def acked(self) -> list[Answer]:
        return [a for a in self.snapshot() if a.acked]

    def wait_acked(self, count: int, timeout: float = 60.0) -> None:
        wait_for(lambda: len(self.acked()) >= count, timeout)

    def statuses(self) -> Counter[int | None]:
        return Counter(a.status for a in self.snapshot())


# -- what the database holds ----------------------------------------------------------------


def rows_by_dedup_key(engine: Engine) -> dict[str, dict[str, Any]]:
    columns = (events.c.id, events.c.dedup_key, events.c.status, events.c.attempts)
    with engine.connect() as conn:
        return {r["dedup_key"]: dict(r) for r in conn.execute(select(*columns)).mappings()}


def status_counts(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.status, func.count()).group_by(events.c.status))
        return Counter({status: int(n) for status, n in rows})


def effects_per_event(engine: Engine) -> Counter[int]:
    with engine.connect() as conn:
        rows = conn.execute(select(effects.c.event_id, func.count()).group_by(effects.c.event_id))
        return Counter({int(event_id): int(n) for event_id, n in rows})


def effect_pids(engine: Engine) -> Counter[int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(effects.c.worker_pid, func.count()).group_by(effects.c.worker_pid)
        )
        return Counter({int(pid): int(n) for pid, n in rows})


def wait_all_done(engine: Engine, timeout: float = 90.0) -> Counter[str]:
    """Wait until no event is left unfinished; the final status counts."""

    def finished() -> Counter[str] | None:
        counts = status_counts(engine)
        unfinished = {s: n for s, n in counts.items() if s in ("pending", "processing", "failed")}
        return None if unfinished else counts

    try:
        result: Counter[str] = wait_for(finished, timeout, interval=0.25)
    except AssertionError:
        raise AssertionError(
            f"events still unfinished after {timeout}s: {dict(status_counts(engine))}"
        ) from None
    return result


def assert_acked_are_stored(engine: Engine, answers: Iterable[Answer]) -> dict[str, Any]:
    """Every 2xx names a stored row: the delivery's dedup key, and the id the answer gave."""
    rows = rows_by_dedup_key(engine)
    missing, wrong_id = [], []
    for answer in answers:
        if not answer.acked:
            continue
        row = rows.get(answer.dedup_key)
        if row is None:
            missing.append(answer)
            continue
        if answer.body.get("status") == "accepted" and answer.body["events"] != [row["id"]]:
            wrong_id.append((answer, row["id"]))
    assert not missing, f"{len(missing)} acknowledged deliveries have no row: {missing[:5]}"
    assert not wrong_id, f"acknowledged ids differ from the stored rows: {wrong_id[:5]}"
    return rows


def assert_processed_exactly_once(engine: Engine) -> Counter[int]:
    """Every stored event is `done` with exactly one effect row; no effect without an event."""
    rows = rows_by_dedup_key(engine)
    not_done = [r for r in rows.values() if r["status"] != "done"]
    assert not not_done, f"{len(not_done)} events not done: {not_done[:5]}"
    per_event = effects_per_event(engine)
    ids = {r["id"] for r in rows.values()}
    doubled = {i: n for i, n in per_event.items() if n != 1}
    assert not doubled, f"events with more than one effect: {dict(list(doubled.items())[:10])}"
    without_effect = ids - set(per_event)
    assert not without_effect, f"done events without an effect: {sorted(without_effect)[:10]}"
    orphans = set(per_event) - ids
    assert not orphans, f"effects of events that do not exist: {sorted(orphans)[:10]}"
    return per_event


# -- a private PostgreSQL cluster -----------------------------------------------------------

PG_BIN = Path(os.environ.get("HOOKYARD_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


class PrivatePostgres:
    """A throwaway cluster on a free port (127.0.0.1 only, trust auth) that a test may stop.

    initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="hookyard-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        self._frozen = False
        if self._as_postgres:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)

    @staticmethod
    def available() -> str | None:
        """None when a private cluster can be made here, else the reason it cannot."""
        if not (PG_BIN / "initdb").exists():
            return f"no initdb in {PG_BIN}"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no postgres user to own a cluster"
            if shutil.which("runuser") is None:
                return "running as root without runuser"
        return None

    def _run(self, *args: str, timeout: float = 60.0) -> str:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
                f"\n{self.server_log()[-2000:]}"
            )
        return done.stdout

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1"
            f" -c unix_socket_directories={self.root} -c max_connections=60"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop_immediately(self) -> None:
        """Like a crash: no checkpoint, connections cut; committed work survives in the WAL."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def pids(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, WAL writer, ...)."""
        try:
            postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP the whole cluster, like a database host that stops answering."""
        self._frozen = True
        for _ in range(2):  # again, for any backend forked while we were stopping them
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen = False

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        try:
            if self._frozen:
                self.thaw()
            if self.running():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""
