"""One PostgreSQL LISTEN connection per process, shared by whatever waits for NOTIFYs: the
workers' wake-ups (`hookyard_events`) and the live feed (`hookyard_live`).

A thread holds the connection and hands each channel's payloads to its subscribers, in the
order PostgreSQL delivered them (commit order). A NOTIFY sent while nobody here listened is
gone for good, so once a lost connection is back (after a growing pause: the one backoff),
every subscriber's `missed` hook runs and it looks again (the workers claim, the live feed
tells its clients they may have missed changes).

Subscribing starts the thread; `stop` ends it (the process is stopping). A subscriber's
callbacks run on this thread: they hand over and return (set an event, schedule on a loop).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import psycopg
from psycopg import sql
from sqlalchemy import Engine

from hookyard.db.engine import libpq_dsn
from hookyard.logs import log
from hookyard.queue.backoff import Backoff

APPLICATION_NAME = "hookyard-listen"  # how the connection shows in pg_stat_activity
READY_SECONDS = 5.0  # start-up waits this long for LISTEN to be in place, then goes on
TICK_SECONDS = 5.0  # the thread looks at its subscriptions at least this often
# Reconnecting: 0.25-0.5 s after the first failure, doubling up to 15-30 s.
RECONNECT = Backoff(base_seconds=0.5, max_seconds=30.0)


@dataclass(eq=False)
class Subscription:
    channel: str
    on_notify: Callable[[Sequence[str]], None]  # the payloads that arrived together
    missed: Callable[[], None] | None = None  # after a lost connection is back
    # Set once LISTEN on the channel is in place: what is committed from then on arrives.
    listening: threading.Event = field(default_factory=threading.Event)


class Listener:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._subscriptions: list[Subscription] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # Wakes the thread when the subscriptions change or it is to stop (made with it).
        self._wake_read = self._wake_write = -1
        self._thread = threading.Thread(target=self._run, name="hookyard-listen", daemon=True)
        self.backend_pid: int | None = None  # of the connection now held (tests, diagnosis)

    @classmethod
    def for_engine(cls, engine: Engine) -> Listener | None:
        """The engine's database's listener; None on SQLite (which has no NOTIFY)."""
        return cls(libpq_dsn(engine)) if engine.dialect.name == "postgresql" else None

    def subscribe(
        self,
        channel: str,
        on_notify: Callable[[Sequence[str]], None],
        missed: Callable[[], None] | None = None,
    ) -> Subscription:
        if self._stopping.is_set():
            raise RuntimeError("the listener is stopped")
        subscription = Subscription(channel, on_notify, missed)
        with self._lock:
            self._subscriptions.append(subscription)
            if self._thread.ident is None:
                self._wake_read, self._wake_write = os.pipe()
                os.set_blocking(self._wake_read, False)
                os.set_blocking(self._wake_write, False)
                self._thread.start()
        self._wake()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
        self._wake()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake()
        if self._thread.ident is None:
            return
        self._thread.join(timeout)
        if not self._thread.is_alive():
            with self._lock:
                for fd in (self._wake_read, self._wake_write):
                    with contextlib.suppress(OSError):
                        os.close(fd)
                self._wake_read = self._wake_write = -1

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _wake(self) -> None:
        with self._lock:  # never a closed descriptor (its number may be another file's now)
            if self._wake_write < 0:
                return  # no thread to wake
            with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
                os.write(self._wake_write, b"\0")

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self._dsn,
                    autocommit=True,
                    connect_timeout=3,
                    application_name=APPLICATION_NAME,
                    # A server that vanished without closing (a cable, a VM) is noticed
                    # within about a minute (TCP only; libpq's default count of probes).
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                ) as conn:
                    self.backend_pid = conn.info.backend_pid
                    lost, failures = failures > 0, 0
                    self._serve(conn, lost=lost)
            except (psycopg.Error, OSError) as exc:
                failures += 1
                self.backend_pid = None
                pause = RECONNECT.delay(failures)
                log.warning(
                    "listen_lost", error=str(exc)[:200], attempt=failures, retry_in=round(pause, 2)
                )
                self._stopping.wait(pause)

    def _serve(self, conn: psycopg.Connection[tuple[object, ...]], *, lost: bool) -> None:
        listening: set[str] = set()
        self._listen(conn, listening)
        if lost:
            log.info("listen_reconnected", channels=sorted(listening))
            for subscription in self._current():
                if subscription.missed is not None:
                    self._call(subscription, subscription.missed)
        with selectors.DefaultSelector() as selector:
            selector.register(conn.fileno(), selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select(TICK_SECONDS):
                    if key.fd == self._wake_read:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_read, 4096)
                self._listen(conn, listening)
                # What arrived on the socket, and what came along with LISTEN's answer.
                self._dispatch(list(conn.notifies(timeout=0)))

    def _listen(self, conn: psycopg.Connection[tuple[object, ...]], listening: set[str]) -> None:
        """LISTEN to the channels subscribed to, UNLISTEN the ones no longer."""
        subscriptions = self._current()
        wanted = {s.channel for s in subscriptions}
        for channel in wanted - listening:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            listening.add(channel)
        for channel in listening - wanted:
            conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(channel)))
            listening.discard(channel)
        for subscription in subscriptions:
            subscription.listening.set()

    def _dispatch(self, notifies: Sequence[psycopg.Notify]) -> None:
        if not notifies:
            return
        by_channel: dict[str, list[str]] = {}
        for notify in notifies:
            by_channel.setdefault(notify.channel, []).append(notify.payload)
        for subscription in self._current():
            payloads = by_channel.get(subscription.channel)
            if payloads:
                self._call(subscription, partial(subscription.on_notify, payloads))

    def _current(self) -> list[Subscription]:
        with self._lock:
            return list(self._subscriptions)

    def _call(self, subscription: Subscription, fn: Callable[[], None]) -> None:
        # One subscriber's failure must not end the others' deliveries.
        try:
            fn()
        except Exception as exc:
            log.warning(
                "listen_subscriber_failed", channel=subscription.channel, error=str(exc)[:200]
            )
