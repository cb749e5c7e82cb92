"""What feeds a process's hub with committed changes.

- PostgreSQL: `LISTEN hookyard_live` on the process's one LISTEN connection
  (hookyard.db.listen, shared with the workers' wake-ups), so a change committed by any
  process — another API process, a `hookyard worker` — reaches the sockets of this one. If
  the connection is lost, clients are told they may have missed changes (`lagged`) once it
  is back.
- SQLite: the commit hooks of `publish.attach_local` hand this process's own commits to the
  hub, and send them over the local bus (hookyard.bus) to the other processes of the
  database; what the bus brings from them (a worker process's commits) goes to the hub too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from hookyard.bus import MAX_DATAGRAM, LocalBus
from hookyard.db.engine import libpq_dsn
from hookyard.db.listen import READY_SECONDS, Listener, Subscription
from hookyard.live.change import Change
from hookyard.live.hub import Hub
from hookyard.live.publish import CHANNEL, attach_local
from hookyard.logs import log

LIVE_CHANNEL = "live"  # the local bus's channel: encoded changes, one per line


class LiveFeed:
    """`listener`: the process's LISTEN connection (PostgreSQL); without one, the feed opens
    its own and closes it when it stops."""

    def __init__(
        self,
        engine: Engine,
        hub: Hub | None = None,
        bus: LocalBus | None = None,
        listener: Listener | None = None,
    ) -> None:
        self.engine = engine
        self.hub = hub or Hub()
        self.bus = bus
        self.listener = listener
        self._own_listener = False
        self._subscription: Subscription | None = None
        self._detach: Callable[[], None] | None = None

    async def start(self) -> None:
        self.hub.bind(asyncio.get_running_loop())
        if self.engine.dialect.name == "postgresql":
            if self.listener is None:
                self.listener = Listener(libpq_dsn(self.engine))
                self._own_listener = True
            self._subscription = self.listener.subscribe(
                CHANNEL,
                self._notified,
                # NOTIFYs sent while nobody here listened are gone for good.
                missed=lambda: self.hub.gap("live listener reconnected"),
            )
            # Changes committed once start-up is over reach the clients: LISTEN first.
            listening = self._subscription.listening
            ready = await asyncio.to_thread(listening.wait, READY_SECONDS)
            if not ready:
                log.warning("live_listen_not_ready", seconds=READY_SECONDS)
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

    def _notified(self, payloads: Sequence[str]) -> None:
        changes = []
        for payload in payloads:
            try:
                changes.append(Change.decode(payload))
            except ValueError as exc:
                log.warning("live_change_unreadable", error=str(exc)[:200])
        if changes:
            self.hub.deliver(changes)

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
        if self.listener is not None and self._subscription is not None:
            self.listener.unsubscribe(self._subscription)
            self._subscription = None
            if self._own_listener:
                await asyncio.to_thread(self.listener.stop)
                self.listener, self._own_listener = None, False
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
