"""What feeds a process's hub with committed changes.

- PostgreSQL: a thread holding a `LISTEN hookyard_live` connection (like the workers'
  wake-up listener), so a change committed by any process — another API process, a
  `hookyard worker` — reaches the sockets of this one. If the connection is lost, clients
  are told they may have missed changes (`lagged`) once it is back.
- SQLite: the commit hooks of `publish.attach_local` hand this process's own commits to the
  hub, and send them over the local bus (hookyard.bus) to the other processes of the
  database; what the bus brings from them (a worker process's commits) goes to the hub too.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

import psycopg
from sqlalchemy import Engine

from hookyard.bus import MAX_DATAGRAM, LocalBus
from hookyard.db.engine import libpq_dsn
from hookyard.live.change import Change
from hookyard.live.hub import Hub
from hookyard.live.publish import CHANNEL, attach_local
from hookyard.logs import log

READY_TIMEOUT_SECONDS = 5.0  # start-up waits this long for LISTEN, then goes on without


LIVE_CHANNEL = "live"  # the local bus's channel: encoded changes, one per line


class LiveFeed:
    def __init__(self, engine: Engine, hub: Hub | None = None, bus: LocalBus | None = None) -> None:
        self.engine = engine
        self.hub = hub or Hub()
        self.bus = bus
        self._listener: ChangeListener | None = None
        self._detach: Callable[[], None] | None = None

    async def start(self) -> None:
        self.hub.bind(asyncio.get_running_loop())
        if self.engine.dialect.name == "postgresql":
            self._listener = ChangeListener(self.engine, self.hub)
            self._listener.start()
            # Changes committed once start-up is over reach the clients: LISTEN first.
            ready = await asyncio.to_thread(self._listener.ready.wait, READY_TIMEOUT_SECONDS)
            if not ready:
                log.warning("live_listen_not_ready", seconds=READY_TIMEOUT_SECONDS)
        else:
            self._detach = attach_local(self.engine, self._committed_here)
            if self.bus is not None:
                bus = self.bus
                bus.listen(LIVE_CHANNEL, self._from_bus)
                # Worker processes encode and send their changes only while some process
                # has a socket to tell (most of the time, under load, none has).
                self.hub.on_listening = lambda listening: bus.want(LIVE_CHANNEL, listening)

    def _committed_here(self, changes: Sequence[Change]) -> None:
        self.hub.deliver(changes)
        if self.bus is not None:
            send_changes(self.bus, changes)

    def _from_bus(self, payload: bytes) -> None:
        if not self.hub.clients:
            return  # nobody to tell: not worth decoding (ingest processes under load)
        changes = []
        for line in payload.splitlines():
            try:
                changes.append(Change.decode(line))
            except ValueError as exc:
                log.warning("live_change_unreadable", error=str(exc)[:200])
        if changes:
            self.hub.deliver(changes)

    async def stop(self) -> None:
        if self._detach is not None:
            self._detach()
            self._detach = None
        if self._listener is not None:
            self._listener.stop()
            await asyncio.to_thread(self._listener.join, 5.0)
            self._listener = None
        self.hub.close()


def send_changes(bus: LocalBus, changes: Sequence[Change]) -> None:
    """Committed changes to the other processes of a SQLite database whose hubs have sockets
    to tell (none: nothing is encoded)."""
    if not bus.wanted(LIVE_CHANNEL):
        return
    chunk: list[bytes] = []
    size = 0
    for change in changes:
        line = change.encode().encode()
        if chunk and size + len(line) + 1 > MAX_DATAGRAM:
            bus.send(LIVE_CHANNEL, b"\n".join(chunk), wait=True)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        bus.send(LIVE_CHANNEL, b"\n".join(chunk), wait=True)


class ChangeListener(threading.Thread):
    """Turns NOTIFYs on the live channel, from any process's commits, into hub deliveries."""

    def __init__(self, engine: Engine, hub: Hub) -> None:
        super().__init__(name="hookyard-live-listen", daemon=True)
        self._dsn = libpq_dsn(engine)
        self._hub = hub
        self._stopping = threading.Event()
        self.ready = threading.Event()  # set once LISTEN first succeeded

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        lost = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=3) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.ready.set()
                    if lost:
                        # NOTIFYs sent while nobody here listened are gone for good.
                        self._hub.gap("live listener reconnected")
                        lost = False
                    while not self._stopping.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            self._receive(notify.payload)
            except psycopg.Error as exc:
                lost = True
                log.warning("live_listen_failed", error=str(exc)[:200])
                self._stopping.wait(1.0)

    def _receive(self, payload: str) -> None:
        try:
            change = Change.decode(payload)
        except ValueError as exc:
            log.warning("live_change_unreadable", error=str(exc)[:200])
            return
        self._hub.deliver([change])
