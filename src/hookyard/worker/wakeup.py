"""Waking idle workers: an in-process signal, plus LISTEN/NOTIFY on PostgreSQL."""

from __future__ import annotations

import threading

import psycopg
from sqlalchemy import Engine

from hookyard.db.engine import libpq_dsn
from hookyard.inbox.store import NOTIFY_CHANNEL
from hookyard.logs import log


class Wakeup:
    def __init__(self) -> None:
        self._event = threading.Event()

    def signal(self) -> None:
        self._event.set()

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
                    self._wakeup.signal()
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._wakeup.signal()
            except psycopg.Error as exc:
                log.warning("listen_failed", error=str(exc)[:200])
                self._stopping.wait(1.0)
