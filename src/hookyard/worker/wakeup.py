"""Waking idle workers: an in-process signal, plus LISTEN/NOTIFY on PostgreSQL and the local
bus (hookyard.bus) between the processes of a SQLite database."""

from __future__ import annotations

import threading

import psycopg
from sqlalchemy import Engine

from hookyard.bus import LocalBus
from hookyard.db.engine import libpq_dsn
from hookyard.inbox.store import NOTIFY_CHANNEL
from hookyard.logs import log

WAKE_CHANNEL = "events"  # the local bus's channel: new or replayed events are due


class Wakeup:
    """`signal` wakes this process's idle workers and, on SQLite, every other process's
    (through `bus`); PostgreSQL's commits notify the other processes themselves."""

    def __init__(self, bus: LocalBus | None = None) -> None:
        self._event = threading.Event()
        self._bus = bus

    def signal(self) -> None:
        self._event.set()
        if self._bus is not None:
            self._bus.send(WAKE_CHANNEL)

    def signal_local(self, _payload: bytes = b"") -> None:
        """Wake this process's workers only (what another process's signal arrives as)."""
        self._event.set()

    def listen(self) -> None:
        """Be woken by the other processes of this database (worker processes)."""
        if self._bus is not None:
            self._bus.listen(WAKE_CHANNEL, self.signal_local)

    def wait(self, timeout: float) -> bool:
        woken = self._event.wait(timeout)
        self._event.clear()
        return woken


class PostgresListener(threading.Thread):
    """Turns NOTIFYs from any process's commits into local wake-ups."""

    def __init__(self, engine: Engine, wakeup: Wakeup) -> None:
        super().__init__(name="hookyard-listen", daemon=True)
        self._dsn = libpq_dsn(engine)
        self._wakeup = wakeup
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=3) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    # Anything committed while we were not listening is found by this wake.
                    self._wakeup.signal_local()
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wakeup.signal_local()
            except psycopg.Error as exc:
                log.warning("listen_failed", error=str(exc)[:200])
                self._stopping.wait(1.0)
